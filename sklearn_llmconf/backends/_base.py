"""The backend protocol: what every language-model backend must provide.

A backend turns rendered prompts into per-label log-probabilities. It knows
nothing about scikit-learn estimators, classes or calibration; the classifier
knows nothing about tokens, HTTP or model files.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator

from .._types import (
    BackendCapabilities,
    GenerationResult,
    Prompt,
    ScoreResult,
    Usage,
)

__all__ = [
    "BackendCapabilities",
    "BaseBackend",
    "GenerationResult",
    "Prompt",
    "ScoreResult",
    "Usage",
]


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
    :meth:`cache_identity`, :meth:`capabilities` and :meth:`prepare`.
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

    def prepare(self):
        """Learn, once, what :meth:`cache_identity` needs from the model's server.

        Scoring calls it before it looks the response cache up (in ``fit``
        when the classifier calibrates), and so does a router's certificate;
        :meth:`cache_identity` itself never sends a request. The default learns
        nothing.

        Returns
        -------
        self : backend
        """
        return self

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
