"""Language-model backends behind one small protocol."""

from ._base import BackendCapabilities, BaseBackend, Prompt, ScoreResult, Usage
from ._openai import OpenAIBackend

__all__ = [
    "BackendCapabilities",
    "BaseBackend",
    "OpenAIBackend",
    "Prompt",
    "ScoreResult",
    "Usage",
]
