"""What the stages exchange: prompts, scores, generations, usage, failed rows.

This module sits below every stage (backends, prompts, cache, scoring,
calibration, the classifier, routing, the service): it imports nothing from the
package, so that every stage can import it and imports point one way. The
stages re-export the names they hand out (``sklearn_llmconf.backends.Prompt``,
``sklearn_llmconf.scoring.ScoredRows``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "NOT_SENT",
    "BackendCapabilities",
    "GenerationResult",
    "Prompt",
    "ScoreResult",
    "ScoredRows",
    "Usage",
    "finite_rows",
]


def finite_rows(values) -> np.ndarray:
    """Boolean mask of the rows whose every value is finite.

    Parameters
    ----------
    values : ndarray of shape (n_rows,) or (n_rows, n_columns)

    Returns
    -------
    mask : ndarray of shape (n_rows,), dtype=bool
    """
    finite = np.isfinite(np.asarray(values, dtype=float))
    return finite if finite.ndim == 1 else finite.all(axis=1)


@dataclass(frozen=True)
class Prompt:
    """A rendered prompt, kept as literal segments interleaved with field values.

    Parameters
    ----------
    segments : tuple of str
        ``segments[0::2]`` are literal template text (instructions, demonstrations,
        the answer cue); ``segments[1::2]`` are the user's field values (the text to
        classify, or one value per named column). Keeping them apart lets a backend
        whose context is too small shorten the user's text, never the instructions.
    """

    segments: tuple[str, ...]

    @property
    def text(self) -> str:
        """The full prompt string."""
        return "".join(self.segments)

    @property
    def fields(self) -> tuple[str, ...]:
        """The user-supplied field values, in template order."""
        return self.segments[1::2]

    def replace_fields(self, values) -> Prompt:
        """Return a copy whose field values are replaced by ``values``."""
        segments = list(self.segments)
        segments[1::2] = list(values)
        return Prompt(tuple(segments))


@dataclass
class Usage:
    """Token and call accounting for one or more backend calls.

    Attributes
    ----------
    calls : int
        Model evaluations or HTTP requests actually made.
    cache_hits : int
        Prompts answered from the response cache without a model call.
    prompt_tokens : int
        Prompt tokens the model had to process (tokens reused from a cached prefix
        are not counted for local models).
    completion_tokens : int
        Tokens generated or scored after the prompt.
    failed_rows : int
        Rows that could not be scored and were handled by the ``on_error`` policy.
    unmatched_answers : int
        Generated answers (self-consistency samples) that named no label.
    """

    calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    failed_rows: int = 0
    unmatched_answers: int = 0
    # Several threads may predict with one estimator: its account adds under a lock.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False,
                                  compare=False)

    def __iadd__(self, other: Usage) -> Usage:
        with self._lock:
            self.calls += other.calls
            self.cache_hits += other.cache_hits
            self.prompt_tokens += other.prompt_tokens
            self.completion_tokens += other.completion_tokens
            self.failed_rows += other.failed_rows
            self.unmatched_answers += other.unmatched_answers
        return self

    def __getstate__(self):
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def as_dict(self) -> dict:
        """Return the counts as a plain dict."""
        return {
            "calls": self.calls,
            "cache_hits": self.cache_hits,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "failed_rows": self.failed_rows,
            "unmatched_answers": self.unmatched_answers,
        }


@dataclass
class ScoreResult:
    """Per-label log-probabilities for a batch of prompts.

    Attributes
    ----------
    log_probs : ndarray of shape (n_prompts, n_labels)
        ``log P(label | prompt)`` for each label string. NaN where the backend could
        not observe a label (absent from a top-k list) or the whole row failed.
    errors : list of (str or None)
        One entry per prompt: None when the row was scored, otherwise a short,
        secret-free description of why it was not.
    usage : Usage
        What producing this result cost.
    extra : dict
        Optional per-backend diagnostics, e.g. ``"uncovered_mass"``: an array of
        shape (n_prompts,) with ``1 - sum_k P(label_k | prompt)``.
    """

    log_probs: np.ndarray
    errors: list = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        self.log_probs = np.asarray(self.log_probs, dtype=np.float64)
        if not self.errors:
            self.errors = [None] * self.log_probs.shape[0]

    @property
    def failed(self) -> np.ndarray:
        """Boolean mask of the rows without a finite score for every label."""
        return ~finite_rows(self.log_probs)


@dataclass
class GenerationResult:
    """Generated texts for a batch of prompts.

    Attributes
    ----------
    texts : list of list of str
        ``texts[i]`` holds the ``n_samples`` completions of prompt ``i`` (empty
        when the prompt failed). Completions exclude the prompt and the stop
        string.
    errors : list of (str or None)
        One entry per prompt: None when it was answered, otherwise a short,
        secret-free description of why it was not.
    usage : Usage
        What producing these texts cost.
    """

    texts: list
    errors: list = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)

    def __post_init__(self):
        self.texts = [list(t) for t in self.texts]
        if not self.errors:
            self.errors = [None] * len(self.texts)


@dataclass(frozen=True)
class BackendCapabilities:
    """What a backend can do, so that a classifier can fail early and clearly.

    Attributes
    ----------
    logprobs : bool
        Returns log-probabilities of label tokens.
    full_sequence : bool
        Scores every token of a multi-token label exactly, not only the first one.
    max_top_logprobs : int or None
        Largest number of alternatives returned per position (None: whole vocabulary).
    sampling : bool
        Can generate text at a sampling temperature (:meth:`BaseBackend.generate`).
    n_per_request : bool
        Can draw several samples in one request (``n=``); otherwise
        :meth:`BaseBackend.generate` draws them one request at a time.
    """

    logprobs: bool = True
    full_sequence: bool = True
    max_top_logprobs: int | None = None
    sampling: bool = False
    n_per_request: bool = False


#: Reason of a row whose prompt was not sent because an earlier row had failed
#: and the caller would raise anyway (``on_error="raise"``).
NOT_SENT = "not sent: an earlier row failed and on_error='raise' stops at the first"


@dataclass
class ScoredRows:
    """Log-probabilities of some rows with the rows that failed and why.

    Attributes
    ----------
    log_proba : ndarray of shape (n_rows, n_classes)
        Corrected log-scores; NaN rows failed.
    failed : ndarray of shape (n_rows,), dtype=bool
    reasons : list of (str or None)
        Why each failed row failed; for a row that was scored but should not
        be trusted blindly (a text holding a fake answer, scored with it
        removed) why it is suspect; None for the others.
    extra : dict
        Per-row diagnostics reported by the backend, each an ndarray of shape
        (n_rows,) with NaN where unknown (e.g. answered from the cache), such
        as ``"uncovered_mass"``: ``1 - sum_k P(label_k | prompt)``.
    """

    log_proba: np.ndarray
    failed: np.ndarray
    reasons: list
    extra: dict = field(default_factory=dict)
