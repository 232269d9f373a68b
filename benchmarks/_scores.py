"""Real embedded-model scores for the calibration benchmarks, computed once.

Scores go through the package's :class:`~sklearn_llmconf.ResponseCache`, one
SQLite file per data set under ``benchmarks/_cache/`` (git-ignored). Every
estimator built by :func:`make_classifier` uses it, so fitting calibrators,
prior corrections or plots after the first run makes no model call, and an
interrupted run resumes where it stopped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from sklearn_llmconf import LLMClassifier, PromptTemplate, ResponseCache
from sklearn_llmconf.datasets import load_bbc_news, load_sms_spam, load_trec

CACHE_DIR = Path(__file__).parent / "_cache"

# BBC articles are ~500 tokens; their first 300 characters (the headline and
# lead) carry the topic, cost ~5x less and fit the 500-character demo limit.
BBC_CHARS = 300

# One prompt per data set, chosen to give the 135M model a cloze cue with
# meaningful label words; demonstrations are one per class (stratified).
DATASETS = {
    "sms_spam": dict(
        load=lambda: load_sms_spam(return_X_y=True),
        prompt="Classify each text as one of: {labels}.\n\nText: {text}\nAnswer:",
        verbalizer=None,
        n_shots=4,
        sizes=(150, 300, 500),  # demo pool, calibration, test splits
        n_used=(300, 300),  # calibration and test rows used (prefixes)
    ),
    "trec": dict(
        load=lambda: load_trec(return_X_y=True),
        prompt=(
            "Classify each question by the type of its answer: {labels}.\n\n"
            "Question: {text}\nAnswer type:"
        ),
        verbalizer={
            "ABBR": "abbreviation",
            "DESC": "description",
            "ENTY": "entity",
            "HUM": "person",
            "LOC": "location",
            "NUM": "number",
        },
        n_shots=6,
        sizes=(150, 240, 360),
        n_used=(150, 200),
    ),
    "bbc_news": dict(
        load=lambda: _truncated(load_bbc_news(return_X_y=True), BBC_CHARS),
        prompt=(
            "Classify each news article by topic: {labels}.\n\n"
            "Article: {text}\nTopic:"
        ),
        verbalizer=None,
        n_shots=5,
        sizes=(150, 150, 250),
        n_used=(64, 64),
    ),
}


def _truncated(Xy, n_chars):
    X, y = Xy
    return np.array([x[:n_chars] for x in X], dtype=object), y


def score_all(name, n_threads=1, content_free=("N/A", "", "[MASK]")):
    """Score the calibration and test splits (and content-free inputs) once."""
    (X_pool, y_pool), (X_cal, _), (X_test, _) = splits(name)
    clf = make_classifier(name, n_threads=n_threads, progress=True, batch_size=16)
    clf.fit(X_pool, y_pool)
    clf.predict_proba(list(content_free))
    clf.predict_proba(X_cal)
    clf.predict_proba(X_test)
    return clf.usage_


def splits(name, random_state=0):
    """Disjoint stratified (demo pool, calibration, test) splits of a data set.

    The calibration and test splits are the first ``n_used`` rows of larger
    stratified splits (shuffled, so a prefix is close to stratified): a later
    run with more rows re-uses every score already cached.
    """
    spec = DATASETS[name]
    X, y = spec["load"]()
    n_pool, n_cal, n_test = spec["sizes"]
    X_pool, X_rest, y_pool, y_rest = train_test_split(
        X, y, train_size=n_pool, stratify=y, random_state=random_state
    )
    X_cal, X_rest, y_cal, y_rest = train_test_split(
        X_rest, y_rest, train_size=n_cal, stratify=y_rest, random_state=random_state
    )
    X_test, _, y_test, _ = train_test_split(
        X_rest, y_rest, train_size=n_test, stratify=y_rest, random_state=random_state
    )
    n_cal, n_test = spec["n_used"]
    return (
        (list(X_pool), y_pool),
        (list(X_cal[:n_cal]), y_cal[:n_cal]),
        (list(X_test[:n_test]), y_test[:n_test]),
    )


def make_classifier(name, n_threads=1, **params):
    """The data set's LLMClassifier on the embedded model, through the cache.

    One thread by default: on a shared 2-core machine, two llama.cpp threads
    competing with other processes ran 6x slower than one (measured).
    """
    from sklearn_llmconf.backends import LlamaCppBackend

    spec = DATASETS[name]
    params = {"calibration": None, **params}  # raw scores: what is compared
    return LLMClassifier(
        PromptTemplate(spec["prompt"], verbalizer=spec["verbalizer"]),
        n_shots=spec["n_shots"],
        demo_selection="stratified",
        cache=ResponseCache(CACHE_DIR / f"{name}.sqlite"),
        random_state=0,
        backend=LlamaCppBackend(n_threads=n_threads),
        **params,
    )
