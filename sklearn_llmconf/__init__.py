"""Turn any large language model into a scikit-learn classifier with calibrated
probabilities."""

from ._cache import ResponseCache
from ._calibration import TemperatureScaler
from ._classifier import LLMClassifier
from .prompts import PromptTemplate

__version__ = "0.1.0.dev0"

__all__ = [
    "LLMClassifier",
    "PromptTemplate",
    "ResponseCache",
    "TemperatureScaler",
    "__version__",
]
