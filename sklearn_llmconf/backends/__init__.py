"""Language-model backends behind one small protocol."""

from ._base import (
    BackendCapabilities,
    BaseBackend,
    GenerationResult,
    Prompt,
    ScoreResult,
    Usage,
)
from ._checkpoints import checkpoint_path
from .llamacpp import LlamaCppBackend, default_model_path
from .openai import OpenAIBackend
from .openai._batch import OpenAIBatchBackend
from .transformers import TransformersBackend

__all__ = [
    "BackendCapabilities",
    "BaseBackend",
    "GenerationResult",
    "LlamaCppBackend",
    "OpenAIBackend",
    "OpenAIBatchBackend",
    "Prompt",
    "ScoreResult",
    "TransformersBackend",
    "Usage",
    "checkpoint_path",
    "default_model_path",
]
