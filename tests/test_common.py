"""scikit-learn's estimator checks on LLMClassifier, with a deterministic backend."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_llmconf import LLMClassifier
from sklearn_llmconf.testing import KeywordBackend

EXPECTED_FAILED_CHECKS = {}


@parametrize_with_checks(
    [LLMClassifier(backend=KeywordBackend())],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
