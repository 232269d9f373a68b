"""scikit-learn's estimator checks on TemperatureScaler."""

from sklearn.linear_model import LogisticRegression
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_llmconf import TemperatureScaler

# Expected failures, with the reason each one is not a bug. Kept empty unless a
# check is known to clash with the documented behaviour.
EXPECTED_FAILED_CHECKS = {}


@parametrize_with_checks(
    [TemperatureScaler(LogisticRegression())],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
