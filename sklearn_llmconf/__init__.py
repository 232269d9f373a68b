"""Turn any large language model into a scikit-learn classifier with calibrated
probabilities."""

from ._classifier import LLMClassifier
from .cache import PostgresResponseCache, ResponseCache
from .calibration import InFitCalibration, TemperatureScaler
from .prompts import PromptTemplate, SimilarDemos
from .scoring import LogProbs, SelfConsistency, Verbalized

__version__ = "0.1.0.dev0"

__all__ = [
    "InFitCalibration",
    "LLMClassifier",
    "LogProbs",
    "PostgresResponseCache",
    "PromptTemplate",
    "ResponseCache",
    "SelfConsistency",
    "SimilarDemos",
    "TemperatureScaler",
    "Verbalized",
    "__version__",
]
