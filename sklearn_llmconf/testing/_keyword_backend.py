"""A deterministic backend for fast tests (in the spirit of CheckingClassifier)."""

from __future__ import annotations

import hashlib

import numpy as np

from ..backends._base import BackendCapabilities, BaseBackend, ScoreResult, Usage

__all__ = ["KeywordBackend"]


def _count(text: str, label: str) -> int:
    word = label.strip().lower()
    if word.endswith(": no"):
        return 0
    if word.endswith(": yes"):
        word = word[: -len(": yes")]
    return text.count(word)


class KeywordBackend(BaseBackend):
    """Score labels by counting their words in the prompt's last text field.

    ``log P(label) = strength * count(label word in the text) + jitter`` where
    the jitter is a deterministic function of the prompt, so that distinct texts
    get distinct scores. No model is involved: it exists to test the
    classifier's plumbing (class order, caching, failure policies) quickly.

    Parameters
    ----------
    strength : float, default=2.0
        Log-score added per occurrence of a label word.
    fail_on : str or None, default=None
        Rows whose prompt contains this substring fail with an error.
    missing_on : str or None, default=None
        Rows whose prompt contains this substring get NaN for every label after
        the first (labels "not observed").

    Attributes
    ----------
    calls_ : list of list of str
        Prompt texts of every ``score_labels`` call, in order.
    """

    def __init__(self, strength=2.0, fail_on=None, missing_on=None):
        self.strength = strength
        self.fail_on = fail_on
        self.missing_on = missing_on

    def capabilities(self) -> BackendCapabilities:
        return BackendCapabilities(logprobs=True, full_sequence=True)

    def __getstate__(self):
        # calls_ is a record of use, not configuration: like a real backend's
        # loaded model it is not pickled, so hashing the backend (scikit-learn's
        # check that fit does not change its parameters) ignores it.
        state = super().__getstate__()
        state.pop("calls_", None)
        return state

    def _score_labels(self, prompts, labels) -> ScoreResult:
        calls = self.__dict__.setdefault("calls_", [])
        calls.append([p.text for p in prompts])
        out = np.empty((len(prompts), len(labels)))
        errors = []
        for i, prompt in enumerate(prompts):
            text = prompt.fields[-1].lower() if prompt.fields else ""
            digest = hashlib.sha256(prompt.text.encode()).digest()
            jitter = np.frombuffer(digest, dtype=np.uint8)[: len(labels)] / 255.0
            if len(jitter) < len(labels):
                jitter = np.resize(jitter, len(labels))
            counts = np.array([_count(text, lab) for lab in labels])
            out[i] = self.strength * counts + jitter
            error = None
            if self.fail_on is not None and self.fail_on in prompt.text:
                out[i] = np.nan
                error = "injected failure"
            elif self.missing_on is not None and self.missing_on in prompt.text:
                out[i, 1:] = np.nan
            errors.append(error)
        # Normalise to log-probabilities over the labels, like a real model.
        finite = np.where(np.isfinite(out), out, -np.inf)
        with np.errstate(divide="ignore"):
            norm = np.log(np.exp(finite).sum(axis=1, keepdims=True))
        usage = Usage(calls=len(prompts),
                      prompt_tokens=sum(len(p.text.split()) for p in prompts))
        return ScoreResult(out - norm, errors=errors, usage=usage)
