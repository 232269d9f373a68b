"""scikit-learn's estimator checks on LLMClassifier, with a deterministic backend."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_llmconf import LLMClassifier
from sklearn_llmconf.testing import KeywordBackend

EXPECTED_FAILED_CHECKS = {
    # LLMClassifier(**moved) accepts the parameters that moved into the prompt,
    # strategy and calibration objects, for one release (FutureWarning); the
    # check passes every signature parameter, "moved" included, by name.
    "check_do_not_raise_errors_in_init_or_set_params": (
        "the one-release **moved keywords of LLMClassifier's old parameters"),
}


@parametrize_with_checks(
    [LLMClassifier(backend=KeywordBackend())],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
