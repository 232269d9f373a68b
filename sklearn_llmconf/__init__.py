"""Turn any large language model into a scikit-learn classifier with calibrated
probabilities."""

from ._classifier import LLMClassifier
from .cache import PostgresResponseCache, ResponseCache
from .calibration import TemperatureScaler
from .prompts import PromptTemplate

__version__ = "0.1.0.dev0"

__all__ = [
    "LLMClassifier",
    "PostgresResponseCache",
    "PromptTemplate",
    "ResponseCache",
    "TemperatureScaler",
    "__version__",
]
