"""Language-model backends behind one small protocol."""

from ._base import BackendCapabilities, BaseBackend, Prompt, ScoreResult, Usage
from ._llamacpp import LlamaCppBackend, default_model_path

__all__ = [
    "BackendCapabilities",
    "BaseBackend",
    "LlamaCppBackend",
    "Prompt",
    "ScoreResult",
    "Usage",
    "default_model_path",
]
