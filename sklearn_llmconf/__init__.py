"""Turn any large language model into a scikit-learn classifier with calibrated
probabilities."""

from ._cache import ResponseCache
from ._cache_postgres import PostgresResponseCache
from ._calibration import TemperatureScaler
from ._classifier import LLMClassifier
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
