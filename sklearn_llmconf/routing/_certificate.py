"""What a router's certificate is about: model, prompt, labels, calibration data.

A certified threshold holds for the estimator it was certified with. For a
language-model classifier that is the model (the GGUF file's bytes, or the
server's model name and URL: the backend's ``cache_identity()``), the
rendered prompt (instructions, demonstrations, label words), the label set
and the fitted calibration; for any other estimator its fitted state.
:func:`certificate_of` describes the estimator; :func:`differences` names what
changed between two descriptions.
"""

from __future__ import annotations

import joblib
import numpy as np
from sklearn.base import BaseEstimator

__all__ = [
    "UncertifiedWarning",
    "certificate_of",
    "data_fingerprint",
    "differences",
    "language_models",
]

# Parameters of an LLMClassifier left out of "state": speed and bookkeeping
# knobs, and those the "model", "prompt" and "labels" parts already show.
_LLM_IRRELEVANT = {"backend", "cache", "batch_size", "n_jobs", "progress",
                  "prompt", "verbalizer"}
# Parts of a certificate compared at prediction time.
COMPARED = ("model", "prompt", "labels", "state")


class UncertifiedWarning(UserWarning):
    """The router scores with something other than what it certified."""


def _llm_part(clf):
    """Identity, rendered prompt and labels of a fitted LLMClassifier."""
    backend = clf.get_backend()
    if hasattr(backend, "prepare"):  # learned in fit; once after unpickling
        backend.prepare()
    fields = clf.prompt_template_.fields
    sentinel = tuple("{" + f + "}" for f in fields)
    prompt = clf.render_prompts([sentinel], as_fields=True)[0]
    params = {k: v for k, v in clf.get_params(deep=False).items()
              if k not in _LLM_IRRELEVANT}
    calibration = {name: getattr(clf, name) for name in (
        "calibration_temperature_", "calibration_bias_", "calibration_matrix_",
        "content_free_prior_")
        if hasattr(clf, name)}
    return {
        "model": backend.cache_identity(),
        "prompt": prompt,
        "labels": {"classes": np.asarray(clf.classes_).tolist(),
                   "label_words": list(map(str, clf.label_words_))},
        "state": joblib.hash([params, calibration]),
    }


def _leaf_hash(value):
    """joblib.hash of a value; its qualified name where it cannot be pickled."""
    try:
        return joblib.hash(value)
    except Exception:  # a lambda, a live client: its name is all we can compare
        name = getattr(value, "__qualname__", type(value).__qualname__)
        return joblib.hash((type(value).__module__, name))


def _memo_hash(value, memo, touched):
    """``_leaf_hash(value)``, reused while ``value`` is the same object.

    A refit replaces fitted attributes by new objects, which are hashed
    again; an edit made in place inside a fitted array is not seen.
    """
    if memo is None:
        return _leaf_hash(value)
    key = id(value)
    entry = memo.get(key)
    if entry is None or entry[0] is not value:
        entry = (value, _leaf_hash(value))
    touched[key] = entry
    return entry[1]


def _walk(obj, path, llms, leaves, seen, memo=None, touched=None):
    """Collect the LLMClassifiers and the other estimators' fitted state."""
    from .._classifier import LLMClassifier

    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, LLMClassifier):
        llms.append(obj)
        return
    if isinstance(obj, (list, tuple)):
        for i, item in enumerate(obj):
            _walk(item, f"{path}[{i}]", llms, leaves, seen, memo, touched)
        return
    module = type(obj).__module__ or ""
    if not (isinstance(obj, BaseEstimator) or module.startswith("sklearn")):
        leaves.append((path, _memo_hash(obj, memo, touched)))
        return
    for name, value in sorted(vars(obj).items()):
        if name.startswith("_") or name == "usage_":
            continue
        _walk(value, f"{path}.{name}", llms, leaves, seen, memo, touched)


def language_models(estimator):
    """The fitted LLMClassifiers inside ``estimator`` (itself included).

    Parameters
    ----------
    estimator : estimator instance

    Returns
    -------
    models : list of LLMClassifier
    """
    llms = []
    _walk(estimator, "", llms, [], set())
    return llms


def certificate_of(estimator, memo=None):
    """Describe what scoring with ``estimator`` depends on.

    Parameters
    ----------
    estimator : fitted estimator
        An LLMClassifier, or any estimator wrapping some (FrozenEstimator,
        Pipeline, TemperatureScaler, CalibratedClassifierCV, a voting
        ensemble), or any other fitted classifier.
    memo : dict or None, default=None
        Hashes of the fitted state from an earlier call, updated in place: a
        value that is still the same object is not hashed again, so checking
        an unchanged estimator before each prediction costs a walk over its
        attributes, not a hash of its whole fitted state.

    Returns
    -------
    certificate : dict
        ``model`` (list of the backends' ``cache_identity()``), ``prompt``
        (list of rendered prompts, the text field shown as ``{text}``),
        ``labels`` (the estimator's classes and each model's label words) and
        ``state`` (hash of the remaining fitted state and parameters).
    """
    llms, leaves, touched = [], [], {}
    _walk(estimator, type(estimator).__name__, llms, leaves, set(), memo, touched)
    if memo is not None:  # keep only what this estimator holds now
        memo.clear()
        memo.update(touched)
    # an unfitted classifier (a parameter of a meta-estimator, fitted in a
    # clone) scores nothing: only the fitted ones are certified
    parts = [_llm_part(clf) for clf in llms if hasattr(clf, "classes_")]
    classes = getattr(estimator, "classes_", None)
    return {
        "model": [part["model"] for part in parts],
        "prompt": [part["prompt"] for part in parts],
        "labels": {
            "classes": None if classes is None else np.asarray(classes).tolist(),
            "models": [part["labels"] for part in parts],
        },
        "state": joblib.hash([[part["state"] for part in parts], leaves]),
    }


def data_fingerprint(X, y):
    """Hash of calibration rows and labels (joblib.hash of both)."""
    return joblib.hash((X, np.asarray(y)))


def differences(recorded, current):
    """Names of the compared parts that differ between two certificates.

    Parameters
    ----------
    recorded, current : dict
        From :func:`certificate_of`.

    Returns
    -------
    names : list of str
        A subset of ``["model", "prompt", "labels", "state"]``.
    """
    return [key for key in COMPARED
            if joblib.hash(recorded.get(key)) != joblib.hash(current.get(key))]
