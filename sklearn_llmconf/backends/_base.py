"""The backend protocol: what every language-model backend must provide.

A backend turns rendered prompts into per-label log-probabilities. It knows
nothing about scikit-learn estimators, classes or calibration; the classifier
knows nothing about tokens, HTTP or model files.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator

from ..scoring._failures import finite_rows

__all__ = [
    "BackendCapabilities",
    "BaseBackend",
    "GenerationResult",
    "Prompt",
    "ScoreResult",
    "Usage",
]


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


# Servers round log-probs; a value above this is no log-probability.
_LOGPROB_TOLERANCE = 1e-6


def _fail_impossible_rows(result) -> None:
    """Fail, in place, the rows holding a log-probability above 0 (or +inf)."""
    with np.errstate(invalid="ignore"):
        bad = np.flatnonzero((result.log_probs > _LOGPROB_TOLERANCE).any(axis=1))
    for i in bad:
        value = float(np.nanmax(result.log_probs[i]))
        result.log_probs[i] = np.nan
        result.errors[i] = (
            f"the backend returned a log-probability of {value:.4g} > 0, which is "
            "no probability (a server bug or a proxy rewriting responses); row "
            "not scored"
        )


def _check_prompts(prompts) -> list[Prompt]:
    """Return ``prompts`` as a list of :class:`Prompt` (a str is one literal)."""
    if isinstance(prompts, (str, Prompt)):
        raise TypeError(
            "prompts must be a sequence of Prompt or str, got a single "
            f"{type(prompts).__name__}: wrap it in a list."
        )
    out = []
    for i, p in enumerate(prompts):
        if isinstance(p, Prompt):
            out.append(p)
        elif isinstance(p, str):
            out.append(Prompt((p,)))
        else:
            raise TypeError(
                f"prompts[{i}] is a {type(p).__name__}; expected a Prompt or a str."
            )
    return out


def _check_labels(labels) -> list[str]:
    """Return ``labels`` as a list of distinct, non-empty str."""
    if isinstance(labels, str):
        raise TypeError("labels must be a sequence of str, got a single str.")
    labels = list(labels)
    if not labels or not all(isinstance(lab, str) and lab for lab in labels):
        raise ValueError(f"labels must be a non-empty sequence of non-empty str, "
                         f"got {labels!r}.")
    if len(set(labels)) != len(labels):
        raise ValueError(f"labels must be distinct, got {labels!r}.")
    return labels


class BaseBackend(BaseEstimator):
    """Base class for backends: a small estimator holding only configuration.

    Subclasses keep their constructor parameters plain (strings, numbers), so that
    ``backend__model`` can be grid-searched, and create live resources (a loaded
    model, an HTTP client) lazily; those are dropped on pickling.

    The public methods :meth:`score_labels` and :meth:`generate` validate the
    parameters (``_parameter_constraints``) and the arguments once, for every
    backend, then call the subclass's :meth:`_score_labels` and
    :meth:`_generate` with clean arguments (a list of :class:`Prompt`, a list of
    distinct str). Subclasses implement those two and may extend
    :meth:`cache_identity` and :meth:`capabilities`.
    """

    # Attributes holding live resources; never pickled, never cloned.
    _live_attributes: tuple[str, ...] = ()

    _parameter_constraints: dict = {}

    def score_labels(self, prompts, labels) -> ScoreResult:
        """Return ``log P(label | prompt)`` for every prompt and label.

        Parameters
        ----------
        prompts : sequence of Prompt or str
            Rendered prompts (a str is a prompt made of literal text only).
        labels : sequence of str
            The label strings the model should produce, exactly as they would
            follow the prompt (verbalized class names, letter codes, ...);
            non-empty and distinct.

        Returns
        -------
        result : ScoreResult
            ``log_probs`` of shape (n_prompts, n_labels): NaN where a label was
            not observed or the row failed, with the reason in ``errors``.
        """
        self._validate_params()
        prompts = _check_prompts(prompts)
        labels = _check_labels(labels)
        if not prompts:
            return ScoreResult(np.empty((0, len(labels))))
        result = self._score_labels(prompts, labels)
        expected = (len(prompts), len(labels))
        if result.log_probs.shape != expected or len(result.errors) != len(prompts):
            raise RuntimeError(
                f"{type(self).__name__}._score_labels returned log_probs of shape "
                f"{result.log_probs.shape} and {len(result.errors)} errors for "
                f"{expected[0]} prompts and {expected[1]} labels."
            )
        _fail_impossible_rows(result)
        return result

    def _score_labels(self, prompts: list[Prompt], labels: list[str]) -> ScoreResult:
        """Score validated arguments; see :meth:`score_labels`."""
        raise NotImplementedError(
            f"{type(self).__name__} does not return label log-probabilities, so it "
            "supports only the generation strategies ('verbalized', "
            "'consistency')."
        )

    def generate(self, prompts, *, n_samples=1, temperature=0.0, max_tokens=16,
                 seed=None, stop=None) -> GenerationResult:
        """Generate ``n_samples`` completions of every prompt.

        Used by the ``"verbalized"`` and ``"consistency"`` strategies of
        :class:`~sklearn_llmconf.LLMClassifier`. The arguments map one to one onto
        an OpenAI-style completion request (``n``, ``temperature``,
        ``max_tokens``, ``seed``, ``stop``).

        Parameters
        ----------
        prompts : sequence of Prompt or str
            Rendered prompts.
        n_samples : int, default=1
            Completions per prompt. At ``temperature=0`` they are identical, and a
            backend may generate one and repeat it.
        temperature : float, default=0.0
            Sampling temperature; 0 is greedy decoding.
        max_tokens : int, default=16
            Largest number of generated tokens per completion.
        seed : int or None, default=None
            Makes sampling reproducible where the backend supports it; sample
            ``j`` of every prompt uses the same seed stream.
        stop : list of str or None, default=None
            Generation stops before any of these strings (at most 4).

        Returns
        -------
        result : GenerationResult
        """
        if type(self)._generate is BaseBackend._generate:
            self._generate(prompts, n_samples=n_samples, temperature=temperature,
                           max_tokens=max_tokens, seed=seed, stop=stop)  # raises
        self._validate_params()
        prompts = _check_prompts(prompts)
        if isinstance(n_samples, bool) or not isinstance(n_samples, Integral) \
                or n_samples < 1:
            raise ValueError(f"n_samples must be a positive int, got {n_samples!r}.")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, Integral) \
                or max_tokens < 1:
            raise ValueError(f"max_tokens must be a positive int, got {max_tokens!r}.")
        if not isinstance(temperature, Real) or not temperature >= 0:
            raise ValueError(f"temperature must be >= 0, got {temperature!r}.")
        if seed is not None and (isinstance(seed, bool)
                                 or not isinstance(seed, Integral)):
            raise ValueError(f"seed must be an int or None, got {seed!r}.")
        if isinstance(stop, str):
            stop = [stop]
        stop = list(stop or [])
        if not all(isinstance(s, str) and s for s in stop):
            raise ValueError(f"stop must be a list of non-empty str, got {stop!r}.")
        if len(stop) > 4:
            raise ValueError(f"At most 4 stop strings are allowed, got {len(stop)}.")
        if not prompts:
            return GenerationResult([])
        return self._generate(
            prompts, n_samples=int(n_samples), temperature=float(temperature),
            max_tokens=int(max_tokens), seed=None if seed is None else int(seed),
            stop=stop,
        )

    def _generate(self, prompts, *, n_samples, temperature, max_tokens, seed,
                  stop) -> GenerationResult:
        """Generate from validated arguments; see :meth:`generate`."""
        raise NotImplementedError(
            f"{type(self).__name__} cannot generate text, so it supports only "
            "strategy='logprobs'; the 'verbalized' and 'consistency' strategies "
            "need a backend implementing generate()."
        )

    def capabilities(self) -> BackendCapabilities:
        """Describe what this backend can do."""
        return BackendCapabilities()

    def cache_identity(self) -> dict:
        """Everything that changes the scores, and nothing secret.

        The response cache keys on this dict together with the rendered prompt and
        the labels. The default is the class name and all constructor parameters;
        backends whose parameters include secrets or pure performance knobs
        override it.
        """
        params = {
            k: v
            for k, v in self.get_params(deep=False).items()
            if k not in self._cache_irrelevant_params()
        }
        return {"backend": type(self).__name__, **params}

    def _cache_irrelevant_params(self) -> set:
        """Parameters that change speed or cost but never the scores."""
        return set()

    def __getstate__(self):
        # A copy: on Python 3.11 the parent returns the live __dict__, and
        # popping from it would unload the model from the pickled object.
        state = dict(super().__getstate__())
        for name in self._live_attributes:
            state.pop(name, None)
        return state
