"""The default LLMClassifier on the real embedded model beats the dummies (slow).

Issue #12: ``LLMClassifier().fit(X_train, y_train)`` must do at least as well as
``DummyClassifier(most_frequent)`` in accuracy and ``DummyClassifier(prior)`` in
log loss. A small SMS split keeps it under a minute on idle cores: fit scores
the 44 labelled texts that are not (16) demonstrations, predict 40 test texts.
"""

import numpy as np
import pytest

pytest.importorskip("llama_cpp")

from sklearn.dummy import DummyClassifier  # noqa: E402
from sklearn.metrics import accuracy_score, log_loss  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from sklearn_llmconf import LLMClassifier  # noqa: E402
from sklearn_llmconf.backends import LlamaCppBackend  # noqa: E402
from sklearn_llmconf.datasets import load_sms_spam  # noqa: E402

pytestmark = pytest.mark.slow


def test_default_classifier_beats_dummy_classifiers_on_sms():
    X, y = load_sms_spam(return_X_y=True)
    X_rest, X_te, y_rest, y_te = train_test_split(
        X, y, test_size=40, stratify=y, random_state=0)
    X_tr, _, y_tr, _ = train_test_split(
        X_rest, y_rest, train_size=60, stratify=y_rest, random_state=0)
    # Long texts cost most of the time and carry little extra signal here.
    X_tr = np.array([x[:300] for x in X_tr], dtype=object)
    X_te = np.array([x[:300] for x in X_te], dtype=object)
    clf = LLMClassifier(backend=LlamaCppBackend(n_threads=1), random_state=0)
    clf.fit(X_tr, y_tr)
    assert clf.usage_.calls == len(clf.calibration_indices_) == 60 - 16
    proba = clf.predict_proba(X_te)
    majority = DummyClassifier(strategy="most_frequent").fit(X_tr, y_tr)
    prior = DummyClassifier(strategy="prior").fit(X_tr, y_tr)
    acc = accuracy_score(y_te, clf.classes_[proba.argmax(axis=1)])
    assert acc >= accuracy_score(y_te, majority.predict(X_te))
    assert log_loss(y_te, proba, labels=clf.classes_) <= log_loss(
        y_te, prior.predict_proba(X_te), labels=clf.classes_)
