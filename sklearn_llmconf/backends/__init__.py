"""Language-model backends behind one small protocol."""

from ._base import (
    BackendCapabilities,
    BaseBackend,
    GenerationResult,
    Prompt,
    ScoreResult,
    Usage,
)
from ._llamacpp import LlamaCppBackend, default_model_path
from ._openai_batch import OpenAIBatchBackend
from .openai import OpenAIBackend

__all__ = [
    "BackendCapabilities",
    "BaseBackend",
    "GenerationResult",
    "LlamaCppBackend",
    "OpenAIBackend",
    "OpenAIBatchBackend",
    "Prompt",
    "ScoreResult",
    "Usage",
    "default_model_path",
]
