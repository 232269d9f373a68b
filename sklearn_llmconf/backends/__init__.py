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
from .openai import OpenAIBackend

__all__ = [
    "BackendCapabilities",
    "BaseBackend",
    "GenerationResult",
    "LlamaCppBackend",
    "OpenAIBackend",
    "Prompt",
    "ScoreResult",
    "Usage",
    "default_model_path",
]
