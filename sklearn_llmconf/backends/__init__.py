"""Language-model backends behind one small protocol."""

from ._base import BackendCapabilities, BaseBackend, Prompt, ScoreResult, Usage

__all__ = ["BackendCapabilities", "BaseBackend", "Prompt", "ScoreResult", "Usage"]
