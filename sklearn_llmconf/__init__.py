"""Turn any large language model into a scikit-learn classifier with calibrated
probabilities."""

__version__ = "0.1.0.dev0"

from sklearn_llmconf._calibration import TemperatureScaler

__all__ = ["TemperatureScaler"]
