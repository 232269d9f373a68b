"""Where a classifier's log-scores come from: label log-probs, words, or votes.

Three strategies turn a rendered prompt into one row of per-class log-scores:

``"logprobs"``
    The backend's ``score_labels``: ``log P(label | prompt)``. Needs a backend
    that exposes log-probabilities.
``"verbalized"``
    The model is asked to answer in JSON with its label and the probability
    that the label is correct; the stated probability is turned back into
    log-scores (:func:`verbalized_log_scores`).
``"consistency"``
    ``n_samples`` answers are sampled at a temperature; each is mapped to the
    first label it names, and the additive-smoothed vote shares are the
    probabilities (:func:`consistency_log_scores`).

The last two need only text generation, so they also work with models or APIs
that hide log-probabilities (e.g. reasoning models). Every strategy returns a
:class:`~sklearn_llmconf.backends.ScoreResult`: rows that cannot be scored are
NaN with an error message, and the classifier's ``on_error`` policy handles them.
"""

from __future__ import annotations

import ast
import json
import re
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator

from .._types import BackendCapabilities, Prompt, ScoreResult
from ..utils._sklearn_compat import Interval, StrOptions
from ..utils._warn import warn_external

__all__ = [
    "STRATEGIES",
    "LogProbs",
    "SelfConsistency",
    "Verbalized",
    "consistency_log_scores",
    "make_strategy",
    "match_label",
    "parse_verbalized",
    "resolve_strategy",
    "verbalized_log_scores",
]

STRATEGIES = ("logprobs", "verbalized", "consistency")

# A verbalized probability of exactly 0 or 1 would give an infinite log-score,
# which no calibrator can rescale; clipping to [EPS, 1 - EPS] bounds the binary
# logit at +-log((1 - EPS) / EPS) ~ +-6.9.
VERBALIZED_EPS = 1e-3

# Prepended to the rendered prompt. The JSON object is then started after the
# template's answer cue ("Answer:"), which a completion model continues; a chat
# model answering the whole object is parsed just as well.
VERBALIZED_INSTRUCTION = (
    "Answer with JSON only, in the form "
    '{{"label": "<one of: {labels}>", "probability": <a number from 0 to 1, the '
    'probability that the label is correct>}}.'
)
VERBALIZED_PREFILL = '{"label": "'
# Generation stops at the end of the object (the stop string is not returned).
VERBALIZED_STOP = ["}", "\n\n"]
CONSISTENCY_STOP = ["\n\n"]


# -- the strategy parameter ------------------------------------------------------
class LogProbs(BaseEstimator):
    """Score each label by its log-probability under the model (the default).

    ``log P(label | prompt)`` from the backend's ``score_labels``: exact for
    local backends, the first label token for top-k APIs. Needs a backend that
    exposes log-probabilities. Pass as ``LLMClassifier(strategy=LogProbs())``
    (the same as ``strategy="logprobs"``).

    Parameters
    ----------
    multilabel : {"label_vs_none", "yes_no"}, default="label_vs_none"
        How each label is scored when the classifier is fitted on several
        labels per text (an indicator matrix ``Y``); unused otherwise.
        ``"label_vs_none"``: each label word and ``"none"`` after the text,
        the label's log-odds ``log P(label) - log P(none)``. ``"yes_no"``:
        the strings ``"<label>: yes"`` and ``"<label>: no"`` after the text,
        for every label, ``log P(yes) - log P(no)`` read after
        ``"<label>:"``. Both score all labels of a text in one prompt (the
        label tree evaluates shared tokens once). ``"label_vs_none"`` is the
        default by ``benchmarks/bench_multilabel.py``: after the per-label
        calibration the two were level (held-out log loss 0.492 / 0.491 on
        movie genres, 0.430 / 0.431 on word emotions) and it costs less
        (1.0-1.7x one label per text against 1.8-4.4x: ``"yes_no"`` scores
        every label name, which outweighs a short text); it also works with
        a top-k API, where ``"yes_no"`` sees only the first token, shared by
        ``yes`` and ``no``.
    """

    name = "logprobs"
    _parameter_constraints: dict = {
        "multilabel": [StrOptions({"yes_no", "label_vs_none"})],
    }

    def __init__(self, multilabel="label_vs_none"):
        self.multilabel = multilabel


class Verbalized(BaseEstimator):
    """Ask the model for its label and the probability that it is right, in JSON.

    The stated probability ``p`` of label ``j`` becomes the scores
    ``log p`` for ``j`` and ``log((1 - p) / (k - 1))`` for the others (clipped
    to ``[1e-3, 1 - 1e-3]``); an answer that cannot be parsed is a failed row.
    Needs only text generation (models or APIs that hide log-probabilities).

    Parameters
    ----------
    max_new_tokens : int, default=32
        Tokens generated per answer.
    """

    name = "verbalized"
    _parameter_constraints: dict = {
        "max_new_tokens": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, max_new_tokens=32):
        self.max_new_tokens = max_new_tokens


class SelfConsistency(BaseEstimator):
    """Sample several answers and let them vote (self-consistency).

    Each of ``n_samples`` answers sampled at ``temperature`` counts for the
    first label it names; ``P(j) = (count_j + smoothing) / (n_matched +
    n_classes * smoothing)``. Answers naming no label are counted in
    ``usage_.unmatched_answers``; a text whose answers name none is a failed
    row. Needs only text generation.

    Parameters
    ----------
    n_samples : int, default=10
        Answers sampled per text (one request with ``n=`` where the backend
        supports it).
    temperature : float, default=0.7
        Sampling temperature of the answers.
    smoothing : float, default=1.0
        Additive (Laplace) smoothing of the vote counts.
    max_new_tokens : int, default=8
        Tokens generated per answer.
    """

    name = "consistency"
    _parameter_constraints: dict = {
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "temperature": [Interval(Real, 0, None, closed="left")],
        "smoothing": [Interval(Real, 0, None, closed="neither")],
        "max_new_tokens": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, n_samples=10, temperature=0.7, smoothing=1.0,
                 max_new_tokens=8):
        self.n_samples = n_samples
        self.temperature = temperature
        self.smoothing = smoothing
        self.max_new_tokens = max_new_tokens


#: The strategy objects by name, for the ``strategy="name"`` shorthand.
STRATEGY_CLASSES = {cls.name: cls for cls in (LogProbs, Verbalized, SelfConsistency)}


# -- choosing a strategy ---------------------------------------------------------
def _capabilities(backend) -> BackendCapabilities:
    caps = getattr(backend, "capabilities", None)
    return caps() if callable(caps) else BackendCapabilities()


def _can_generate(backend) -> bool:
    """True when ``backend`` implements generation (not the base-class stub)."""
    from ..backends._base import BaseBackend

    if isinstance(backend, BaseBackend):
        return type(backend)._generate is not BaseBackend._generate
    return callable(getattr(backend, "generate", None))


def supported_strategies(backend) -> list[str]:
    """Strategies ``backend`` can serve, in order of preference.

    Parameters
    ----------
    backend : backend object

    Returns
    -------
    names : list of str
    """
    caps = _capabilities(backend)
    names = []
    if caps.logprobs and callable(getattr(backend, "score_labels", None)):
        names.append("logprobs")
    if _can_generate(backend):
        if caps.sampling:
            names.append("consistency")
        names.append("verbalized")
    return names


def resolve_strategy(strategy: str, backend) -> str:
    """Return the strategy to use with ``backend``, or raise a clear error.

    ``"auto"`` takes log-probabilities when the backend exposes them, otherwise
    self-consistency when it can sample, otherwise verbalized confidence.

    Parameters
    ----------
    strategy : {"auto", "logprobs", "verbalized", "consistency"}
    backend : backend object

    Returns
    -------
    strategy : str
        One of :data:`STRATEGIES`.

    Raises
    ------
    ValueError
        If the backend cannot give the requested signal; the message names the
        strategies it does support.
    """
    supported = supported_strategies(backend)
    name = type(backend).__name__
    if strategy == "auto":
        if not supported:
            raise ValueError(
                f"{name} can neither return log-probabilities nor generate text: "
                "no strategy can use it."
            )
        reason = getattr(backend, "no_logprobs_reason", None)
        if reason and supported[0] != "logprobs":
            warn_external(
                f"strategy='auto': {reason}; using strategy={supported[0]!r} "
                "(strategy_ says so). Pass strategy= to choose."
            )
        return supported[0]
    if strategy in supported:
        return strategy
    why = {
        "logprobs": "does not return log-probabilities",
        "consistency": "cannot sample text at a temperature",
        "verbalized": "cannot generate text",
    }[strategy]
    alternatives = (
        "use strategy=" + " or ".join(repr(s) for s in supported) + " or 'auto'"
        if supported
        else "no strategy can use it"
    )
    raise ValueError(f"strategy={strategy!r} is not available: {name} {why}; "
                     f"{alternatives}.")


# -- label matching ---------------------------------------------------------------
def _alias_key(text: str) -> str:
    """Lower-case, strip quotes and punctuation at the ends, collapse spaces."""
    text = " ".join(str(text).lower().replace("_", " ").split())
    return text.strip(" \t\"'`.,;:!?()[]{}<>*")


def match_label(answer: str, aliases) -> int | None:
    """Index of the label named first in a free-text answer.

    Matching is case-insensitive on whole words; at the same position the longest
    alias wins (so "not spam" beats "spam" when both are labels).

    Parameters
    ----------
    answer : str
    aliases : list of list of str
        ``aliases[j]`` are the strings naming label ``j`` (label word, class name).

    Returns
    -------
    index : int or None
        None when no label is named.
    """
    best = None  # (position, -length, index)
    lowered = answer.lower()
    for j, names in enumerate(aliases):
        for alias in names:
            alias = " ".join(alias.lower().split())
            if not alias:
                continue
            words = r"\s+".join(map(re.escape, alias.split()))
            pattern = r"(?<!\w)" + words + r"(?!\w)"
            found = re.search(pattern, lowered)
            if found is not None:
                cand = (found.start(), -len(alias), j)
                if best is None or cand < best:
                    best = cand
    return None if best is None else best[2]


def _lookup_label(value, aliases) -> int | None:
    """Index of the label whose alias equals ``value`` after normalisation."""
    key = _alias_key(value)
    for j, names in enumerate(aliases):
        if any(_alias_key(a) == key for a in names):
            return j
    return None


# -- verbalized confidence ----------------------------------------------------------
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)(?:```|$)", re.DOTALL)
_NUMBER = re.compile(r"^\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*(%?)\s*$")
_LABEL_RE = re.compile(
    r"""["']?(?:label|answer|class|category)["']?\s*[:=]\s*["']?([^"',}\n]+)""",
    re.IGNORECASE,
)
_PROB_RE = re.compile(
    r"""["']?(?:probability|confidence|prob|score)["']?\s*[:=]\s*["']?"""
    r"""([-+]?(?:\d+(?:\.\d*)?|\.\d+)\s*%?)""",
    re.IGNORECASE,
)


def _parse_probability(value) -> float | None:
    """A probability from a number or a string such as "0.9", "90%" or "90".

    Numbers in (1, 100] are read as percentages; anything else outside [0, 1]
    is invalid.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number, percent = float(value), False
    elif isinstance(value, str):
        found = _NUMBER.match(value)
        if found is None:
            return None
        number, percent = float(found.group(1)), bool(found.group(2))
    else:
        return None
    if percent or 1.0 < number <= 100.0:
        number /= 100.0
    if not 0.0 <= number <= 1.0 or number != number:
        return None
    return number


def _first_object(text: str) -> str | None:
    """The first balanced ``{...}`` in ``text``, closing it if it was cut off."""
    start = text.find("{")
    if start < 0:
        return None
    depth, quote = 0, None
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            if ch == quote and text[i - 1] != "\\":
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[start : i + 1]
    # Generation stopped at the closing brace (a stop string) or ran out.
    return text[start:].rstrip().rstrip(",") + (quote or "") + "}" * depth


def _load_object(text: str):
    for loader in (json.loads, ast.literal_eval):
        try:
            obj = loader(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        if isinstance(obj, dict):
            return obj
    return None


def _from_mapping(obj: dict, aliases):
    """Parse a decoded object: label + probability, or one probability per label."""
    lower = {str(k).strip().lower(): v for k, v in obj.items()}
    per_label = lower.get("probabilities", lower.get("probs"))
    if isinstance(per_label, dict) and per_label:
        k = len(aliases)
        probs = np.full(k, np.nan)
        for name, value in per_label.items():
            j = _lookup_label(name, aliases)
            p = _parse_probability(value)
            if j is None or p is None:
                return None
            probs[j] = p
        return probs
    label = next((lower[k] for k in ("label", "answer", "class", "category")
                  if k in lower), None)
    prob = next((lower[k] for k in ("probability", "confidence", "prob", "score")
                 if k in lower), None)
    if not isinstance(label, str):
        return None
    j = _lookup_label(label, aliases)
    p = _parse_probability(prob)
    if j is None or p is None:
        return None
    return j, p


def parse_verbalized(text: str, aliases, *, prefill: str = ""):
    """Read a label and its probability from a model's JSON-ish answer.

    Tolerates the usual deviations: code fences, text before or after the
    object, single quotes, a missing closing brace, probabilities as strings or
    percentages ("90%", or 90 meaning 90 %), label case and spacing, and class
    names instead of label words. ``prefill`` (the start of the object given in
    the prompt) is prepended when the answer does not start an object itself.

    Parameters
    ----------
    text : str
        The generated answer.
    aliases : list of list of str
        ``aliases[j]`` are the strings naming label ``j``.
    prefill : str, default=""

    Returns
    -------
    parsed : (int, float), ndarray of shape (n_labels,), or None
        ``(label index, probability)``; or one probability per label (NaN where
        a label was not given) when the answer has a ``"probabilities"`` object;
        or None when nothing valid can be read.
    """
    if not isinstance(text, str):
        return None
    fenced = _FENCE.search(text)
    body = fenced.group(1) if fenced else text
    candidates = [body]
    if prefill and not body.lstrip().startswith("{"):
        candidates.insert(0, prefill + body)
    for candidate in candidates:
        obj_text = _first_object(candidate)
        if obj_text is None:
            continue
        obj = _load_object(obj_text)
        if obj is not None:
            parsed = _from_mapping(obj, aliases)
            if parsed is not None:
                return parsed
        # Not valid JSON/Python: look for label and probability fields.
        label = _LABEL_RE.search(obj_text)
        prob = _PROB_RE.search(obj_text)
        if label and prob:
            j = _lookup_label(label.group(1), aliases)
            p = _parse_probability(prob.group(1).replace(" ", ""))
            if j is not None and p is not None:
                return j, p
    return None


def verbalized_log_scores(parsed, n_labels: int, *, eps: float = VERBALIZED_EPS):
    """Turn a parsed verbalized answer into per-label log-scores.

    For ``(j, p)``: ``log p`` for label ``j`` and ``log((1 - p) / (k - 1))`` for
    each of the other ``k - 1`` labels, with ``p`` clipped to ``[eps, 1 - eps]``.
    For one probability per label: labels not given share the mass left over
    (at least ``eps`` each), the vector is normalised, clipped at ``eps`` and
    logged. The rows are log-probabilities already, so their softmax is the
    stated probability (after clipping): no further normalisation is applied,
    and a temperature or Platt calibrator can rescale them.

    Parameters
    ----------
    parsed : (int, float) or ndarray of shape (n_labels,)
        As returned by :func:`parse_verbalized`.
    n_labels : int
    eps : float, default=VERBALIZED_EPS

    Returns
    -------
    log_scores : ndarray of shape (n_labels,)
    """
    if isinstance(parsed, tuple):
        j, p = parsed
        p = float(np.clip(p, eps, 1.0 - eps))
        out = np.full(n_labels, np.log((1.0 - p) / (n_labels - 1)))
        out[j] = np.log(p)
        return out
    probs = np.asarray(parsed, dtype=float).copy()
    missing = np.isnan(probs)
    if missing.any():
        left = max(1.0 - np.nansum(probs), 0.0)
        probs[missing] = max(left / missing.sum(), eps)
    total = probs.sum()
    if total <= 0:
        probs = np.full(n_labels, 1.0 / n_labels)
    else:
        probs = probs / total
    probs = np.clip(probs, eps, None)
    return np.log(probs / probs.sum())


# -- self-consistency --------------------------------------------------------------
def consistency_log_scores(counts, smoothing: float):
    """Additive-smoothed vote shares as log-scores.

    ``log((c_j + alpha) / (m + k * alpha))`` where ``c_j`` counts the answers
    naming label ``j``, ``m = sum_j c_j`` the answers naming any label, ``k`` the
    number of labels and ``alpha = smoothing``. With ``alpha = 1`` (Laplace) and
    10 unanimous samples of 2 labels the top probability is 11/12.

    Parameters
    ----------
    counts : array-like of shape (n_labels,)
    smoothing : float
        Must be > 0 so that no log-score is infinite.

    Returns
    -------
    log_scores : ndarray of shape (n_labels,)
    """
    counts = np.asarray(counts, dtype=float)
    return np.log((counts + smoothing) / (counts.sum() + len(counts) * smoothing))


# -- strategy objects used by the classifier ------------------------------------------
def _snippet(text: str, n: int = 60) -> str:
    text = " ".join(str(text).split())
    return repr(text if len(text) <= n else text[:n] + "...")


class _LogprobStrategy:
    name = "logprobs"
    # Keys of log-prob rows are unchanged by the strategy option, so caches
    # written before it existed stay valid.
    cache_extra = None

    def score(self, backend, prompts, labels) -> ScoreResult:
        return backend.score_labels(prompts, labels)


class _GenerationStrategy:
    def __init__(self, *, label_words, classes, max_new_tokens, seed):
        self.label_words = list(label_words)
        # An answer may name the class instead of its verbalization (letters).
        self.aliases = [
            list(dict.fromkeys([w, str(c)]))
            for w, c in zip(label_words, classes, strict=True)
        ]
        self.max_new_tokens = int(max_new_tokens)
        self.seed = seed


class _VerbalizedStrategy(_GenerationStrategy):
    name = "verbalized"

    def __init__(self, *, eps=VERBALIZED_EPS, **kwargs):
        super().__init__(**kwargs)
        self.eps = eps

    @property
    def cache_extra(self) -> dict:
        return {
            "strategy": self.name,
            "instruction": VERBALIZED_INSTRUCTION,
            "prefill": VERBALIZED_PREFILL,
            "stop": VERBALIZED_STOP,
            "max_new_tokens": self.max_new_tokens,
            "eps": self.eps,
        }

    def prepare(self, prompt: Prompt) -> Prompt:
        """Add the answer-format instruction and the start of the JSON object."""
        instruction = VERBALIZED_INSTRUCTION.format(
            labels=", ".join(self.label_words))
        segments = list(prompt.segments)
        segments[0] = instruction + "\n\n" + segments[0]
        end = segments[-1]
        segments[-1] = end + ("" if end[-1:].isspace() else " ") + VERBALIZED_PREFILL
        return Prompt(tuple(segments))

    def score(self, backend, prompts, labels) -> ScoreResult:
        result = backend.generate(
            [self.prepare(p) for p in prompts], n_samples=1, temperature=0.0,
            max_tokens=self.max_new_tokens, seed=self.seed, stop=VERBALIZED_STOP,
        )
        k = len(labels)
        out = np.full((len(prompts), k), np.nan)
        errors = list(result.errors)
        for i, texts in enumerate(result.texts):
            if errors[i] is not None:
                continue
            answer = texts[0] if texts else ""
            parsed = parse_verbalized(answer, self.aliases, prefill=VERBALIZED_PREFILL)
            if parsed is None:
                errors[i] = f"unparseable verbalized answer {_snippet(answer)}"
            else:
                out[i] = verbalized_log_scores(parsed, k, eps=self.eps)
        return ScoreResult(out, errors=errors, usage=result.usage)


class _ConsistencyStrategy(_GenerationStrategy):
    name = "consistency"

    def __init__(self, *, n_samples, temperature, smoothing, **kwargs):
        super().__init__(**kwargs)
        self.n_samples = int(n_samples)
        self.temperature = float(temperature)
        self.smoothing = float(smoothing)

    @property
    def cache_extra(self) -> dict:
        return {
            "strategy": self.name,
            "n_samples": self.n_samples,
            "temperature": self.temperature,
            "smoothing": self.smoothing,
            "max_new_tokens": self.max_new_tokens,
            "seed": self.seed,
            "stop": CONSISTENCY_STOP,
        }

    def score(self, backend, prompts, labels) -> ScoreResult:
        result = backend.generate(
            list(prompts), n_samples=self.n_samples, temperature=self.temperature,
            max_tokens=self.max_new_tokens, seed=self.seed, stop=CONSISTENCY_STOP,
        )
        k = len(labels)
        out = np.full((len(prompts), k), np.nan)
        errors = list(result.errors)
        usage = result.usage
        for i, texts in enumerate(result.texts):
            if errors[i] is not None:
                continue
            counts = np.zeros(k)
            for text in texts:
                j = match_label(text, self.aliases)
                if j is None:
                    usage.unmatched_answers += 1
                else:
                    counts[j] += 1
            if counts.sum() == 0:
                # No answer named a label: there is no evidence, not a uniform vote.
                errors[i] = (f"none of the {len(texts)} sampled answers named a label "
                             f"(first: {_snippet(texts[0] if texts else '')})")
            else:
                out[i] = consistency_log_scores(counts, self.smoothing)
        return ScoreResult(out, errors=errors, usage=usage)


def make_strategy(spec, *, label_words, classes, seed=None):
    """Build the object that scores prompts with the strategy ``spec``.

    Parameters
    ----------
    spec : LogProbs, Verbalized or SelfConsistency
        The strategy and its settings (validated).
    label_words : list of str
        Verbalization of each class, in class order.
    classes : array-like
        The classes; an answer naming a class is accepted too.
    seed : int or None
        Seed of the generation strategies' samples.

    Returns
    -------
    strategy : object
        With ``name``, ``cache_extra`` (dict or None, part of the response-cache
        key) and ``score(backend, prompts, labels) -> ScoreResult``.
    """
    if isinstance(spec, LogProbs):
        return _LogprobStrategy()
    common = dict(label_words=label_words, classes=classes,
                  max_new_tokens=spec.max_new_tokens, seed=seed)
    if isinstance(spec, Verbalized):
        return _VerbalizedStrategy(**common)
    if isinstance(spec, SelfConsistency):
        return _ConsistencyStrategy(n_samples=spec.n_samples,
                                    temperature=spec.temperature,
                                    smoothing=spec.smoothing, **common)
    raise TypeError(f"Unknown strategy {spec!r}; expected one of "
                    f"{[cls.__name__ for cls in STRATEGY_CLASSES.values()]}.")
