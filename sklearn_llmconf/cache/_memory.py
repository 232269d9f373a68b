"""An in-memory response cache holding the scores ``fit`` computed."""

from __future__ import annotations

__all__ = ["MemoryCache"]


class MemoryCache:
    """In-memory stand-in for :class:`~sklearn_llmconf.ResponseCache`.

    With no ``cache`` set, the calibration rows that ``LLMClassifier.fit``
    scores are kept here so that ``predict*`` on the same texts does not score
    them again. Only ``fit`` writes to it (``frozen=True`` afterwards), so it
    never grows with the data predicted later.
    """

    def __init__(self):
        self.store = {}
        self.frozen = False

    def get_many(self, keys):
        """The stored rows of ``keys`` (missing keys are left out)."""
        return {k: self.store[k] for k in keys if k in self.store}

    def set_many(self, items):
        """Store ``items`` unless frozen."""
        if not self.frozen:
            self.store.update(items)

    def __len__(self):
        return len(self.store)
