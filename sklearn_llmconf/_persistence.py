"""A safe, self-describing model file: a certified router saved with ``skops.io``.

The file holds the fitted :class:`~sklearn_llmconf.routing.ConfidenceRouter`
(and its :class:`~sklearn_llmconf.LLMClassifier`, or the hybrid holding one)
without its backend, a description of the backend to rebuild (class and
parameters, never a key: the OpenAI backend keeps only the *name* of the
environment variable that holds it, and URL credentials are stripped), the
backend identity the certificate was made for, the certificate itself and
the certification rows' probabilities (for reports). Loading

- refuses a file that is not a zip written by ``skops.io`` or whose content
  was changed (zip CRC check), and a file holding any type outside
  :data:`TRUSTED_TYPES` (``skops.io`` refuses to build untrusted types; the
  package's own types are trusted here by name, nothing else);
- refuses a skops file that is not a sklearn-llmconf model (no format mark);
- rebuilds the backend and refuses, with the reason, when the backend it
  would call is not the one the certificate holds for: another GGUF file
  (SHA-256 of the bytes), or another model name on the server. A
  certificate is void for another model.
"""

from __future__ import annotations

import copy
import hashlib
import json
import zipfile

import numpy as np

__all__ = [
    "FORMAT",
    "TRUSTED_TYPES",
    "ModelFileError",
    "attach_backend",
    "backend_spec",
    "llm_classifiers",
    "build_backend",
    "calibration_hash",
    "check_identity",
    "load_model",
    "save_model",
]

#: Format mark of the payload; a skops file without it is not a model file.
FORMAT = "sklearn-llmconf-model/1"

#: The types a model file may hold beyond what ``skops.io`` trusts by default
#: (scikit-learn, numpy, builtins). Each is named, none is matched by prefix.
TRUSTED_TYPES = (
    "sklearn_llmconf._classifier.LLMClassifier",
    "sklearn_llmconf.routing._router.ConfidenceRouter",
    "sklearn_llmconf.prompts._template.PromptTemplate",
    "sklearn_llmconf.prompts._demos.DemoPool",
    "sklearn_llmconf.prompts._demos.SimilarDemos",
    "sklearn_llmconf.calibration._infit.InFitCalibration",
    "sklearn_llmconf.scoring._strategies.LogProbs",
    "sklearn_llmconf.scoring._strategies.Verbalized",
    "sklearn_llmconf.scoring._strategies.SelfConsistency",
    "sklearn_llmconf._types.Usage",
    # Where Usage lived before sklearn_llmconf._types: files written then.
    "sklearn_llmconf.backends._base.Usage",
    "sklearn_llmconf.calibration._infit.ScoreCorrection",
    "sklearn_llmconf.scoring._strategies._LogprobStrategy",
    "sklearn_llmconf.scoring._strategies._VerbalizedStrategy",
    "sklearn_llmconf.scoring._strategies._ConsistencyStrategy",
    "sklearn.frozen._frozen.FrozenEstimator",
    # The hybrid (sklearn-llmconf fit --model hybrid|auto).
    "sklearn_llmconf.hybrid._stacking.BlockStackingClassifier",
    "sklearn_llmconf.hybrid._scores.LLMScores",
    "sklearn_llmconf.hybrid._text.JoinColumns",
    "sklearn_llmconf.hybrid._embeddings.SentenceEmbedder",
)

#: Backends a model file can name, by class name.
_BACKENDS = {
    "LlamaCppBackend": "sklearn_llmconf.backends.llamacpp._backend",
    "OpenAIBackend": "sklearn_llmconf.backends.openai._backend",
    # Model-free: the plumbing tests and bench_memory.py.
    "KeywordBackend": "sklearn_llmconf.testing._keyword_backend",
}

# Fitted-classifier attributes that are live state, not the model: the loaded
# default backend and the in-memory response cache of fit.
_LIVE = ("_default_backend", "_memory_cache")


class ModelFileError(ValueError):
    """A model file that cannot be used: foreign, tampered, or void here."""


def llm_classifiers(obj) -> list:
    """Every :class:`~sklearn_llmconf.LLMClassifier` inside ``obj``.

    Walks estimators' attributes (parameters and fitted state), lists, tuples
    and dicts, so the LLMs inside a hybrid (its ``LLMScores`` block's
    fitted and unfitted classifiers) are found as well as a bare one.

    Parameters
    ----------
    obj : estimator or container

    Returns
    -------
    classifiers : list of LLMClassifier
        In the order found, each once.
    """
    from sklearn.base import BaseEstimator

    from ._classifier import LLMClassifier

    found, seen, stack = [], set(), [obj]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, LLMClassifier):
            found.append(item)
            continue  # its backend is no classifier
        if isinstance(item, BaseEstimator):
            stack.extend(reversed(list(vars(item).values())))
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, (list, tuple)):
            stack.extend(reversed(item))
    return found


def _kept_estimator(router):
    """The fitted model inside a router (through FrozenEstimator)."""
    from sklearn.frozen import FrozenEstimator

    est = router.estimator_
    return est.estimator if isinstance(est, FrozenEstimator) else est


def _classifier_of(router):
    """The LLMClassifier of a fitted router's model: itself, or the first
    fitted one inside it (a hybrid's LLM block)."""
    from ._classifier import LLMClassifier

    est = _kept_estimator(router)
    if isinstance(est, LLMClassifier):
        return est
    fitted = [c for c in llm_classifiers(est) if hasattr(c, "prompt_template_")]
    if not fitted:
        raise TypeError(
            "save_model saves a ConfidenceRouter over an LLMClassifier or a model "
            "holding one (a hybrid), or a FrozenEstimator of one; got "
            f"{type(est).__name__}."
        )
    return fitted[0]


def backend_spec(backend) -> dict:
    """JSON description of ``backend``: its class and safe parameters.

    Parameters
    ----------
    backend : LlamaCppBackend, OpenAIBackend or KeywordBackend

    Returns
    -------
    spec : dict
        ``{"class": name, "params": {...}}``; the OpenAI backend's
        ``api_key_env`` must be a variable name (a callable is refused) and
        ``base_url`` loses any credentials.
    """
    name = type(backend).__name__
    if name not in _BACKENDS:
        raise TypeError(
            f"A model file can name the backends {sorted(_BACKENDS)}; got {name}."
        )
    params = dict(backend.get_params(deep=False))
    if name == "OpenAIBackend":
        from .backends.openai._client import strip_url_credentials

        if params["api_key_env"] is not None and not isinstance(
            params["api_key_env"], str
        ):
            raise TypeError(
                "A model file stores where the key comes from, never the key: "
                "api_key_env must be the name of an environment variable."
            )
        if params["base_url"] is not None:
            params["base_url"] = strip_url_credentials(str(params["base_url"]))
    try:
        json.dumps(params)
    except TypeError as exc:
        raise TypeError(f"{name} parameters are not JSON-serialisable: {exc}") from None
    return {"class": name, "params": params}


def build_backend(spec: dict, **overrides):
    """Rebuild a backend from :func:`backend_spec`'s description."""
    import importlib

    name = spec.get("class")
    if name not in _BACKENDS:
        raise ModelFileError(f"the model file names an unknown backend {name!r}.")
    cls = getattr(importlib.import_module(_BACKENDS[name]), name)
    params = {**spec["params"], **{k: v for k, v in overrides.items() if v is not None}}
    return cls(**params)


def _identity_key(identity: dict) -> dict:
    """The part of a backend identity a certificate depends on."""
    backend = identity.get("backend")
    if backend == "LlamaCppBackend":
        return {"model_sha256": identity.get("model_sha256")}
    if backend == "OpenAIBackend":
        return {"model": identity.get("model")}
    return identity


def check_identity(expected: dict, backend) -> None:
    """Refuse ``backend`` unless it is the model the certificate was made for.

    Parameters
    ----------
    expected : dict
        The ``cache_identity()`` recorded when the certificate was made.
    backend : backend object
        The backend that would be called.

    Raises
    ------
    ModelFileError
        Naming what differs (GGUF SHA-256, or model name on the server).
    """
    actual = backend.cache_identity()
    want, got = _identity_key(expected), _identity_key(actual)
    if expected.get("backend") != actual.get("backend") or want != got:
        what = ", ".join(
            f"{k}: certified {want.get(k)!r}, found {got.get(k)!r}"
            for k in sorted(set(want) | set(got)) if want.get(k) != got.get(k)
        ) or (f"backend: certified {expected.get('backend')}, found "
              f"{actual.get('backend')}")
        raise ModelFileError(
            "the model file's certificate does not hold for this backend "
            f"({what}); a certificate is void for another model: fit again."
        )


def calibration_hash(rows, y) -> str:
    """SHA-256 of labelled rows (field values and label), in order."""
    h = hashlib.sha256()
    for row, label in zip(rows, y):
        h.update(json.dumps([list(row), str(label)], ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()


def certificate(router) -> dict:
    """The router's certificate as plain JSON values."""
    def floats(a):
        return [None if not np.isfinite(v) else float(v) for v in np.ravel(a)]

    return {
        "tiers": [str(t) for t in router.tier_names_[:-1]],
        "fallback_tier": str(router.tier_names_[-1]),
        "targets": [float(t) for t in router.targets_],
        "thresholds": floats(router.thresholds_),
        "certified": [bool(c) for c in np.ravel(router.certified_)],
        "precision_lower_bound": floats(router.precision_lower_bound_),
        "n_accepted": [int(n) for n in np.ravel(router.n_accepted_)],
        "n_errors": [int(n) for n in np.ravel(router.n_errors_)],
        "n_labels_needed": [None if n is None else int(n)
                            for n in np.ravel(router.n_labels_needed_)],
        "delta": float(router.delta),
        "delta_per_test": float(router.delta_per_test_),
        "method": router.method,
        "per_class": bool(router.per_class),
        "n_calibration": int(router.n_calibration_),
        "n_failed_calibration": int(router.n_failed_calibration_),
    }


def save_model(path, router, *, certification_proba=None, certification_y=None,
               metadata=None) -> dict:
    """Write a fitted router to ``path`` with ``skops.io``.

    Parameters
    ----------
    path : str or path-like
    router : ConfidenceRouter
        Fitted, over an :class:`~sklearn_llmconf.LLMClassifier` (or a
        ``FrozenEstimator`` of one) whose backend :func:`backend_spec` knows.
    certification_proba : ndarray of shape (n, n_classes), default=None
        Probabilities of the certification rows (for the report's plots).
    certification_y : array-like of shape (n,), default=None
        Their labels.
    metadata : dict, default=None
        More JSON values to describe the model (data columns, split, usage).

    Returns
    -------
    description : dict
        What the file says about itself (also returned by :func:`load_model`).
    """
    import skops.io as sio
    from sklearn.frozen import FrozenEstimator

    clf = _classifier_of(router)
    backend = clf._get_backend()
    template = clf.prompt_template_
    kept = _kept_estimator(router)
    description = {
        "format": FORMAT,
        "backend": backend_spec(backend),
        "identity": backend.cache_identity(),
        "prompt": {"template": template.template,
                   "label_separator": template.label_separator,
                   "answer_prefix": template.answer_prefix},
        "classes": [str(c) for c in router.classes_],
        "label_words": list(clf.label_words_),
        "estimator": type(kept).__name__,
        "certificate": certificate(router),
        **(metadata or {}),
    }
    # Every LLM inside the model loses its live state for the file (backend,
    # cache, loaded model); restored after writing, so the caller's model
    # still works.
    saved_state = []
    for c in llm_classifiers(kept):
        state = {k: c.__dict__[k] for k in ("backend", "cache", "progress", *_LIVE)
                 if k in c.__dict__}
        saved_state.append((c, state))
        for name in _LIVE:
            c.__dict__.pop(name, None)
        c.backend = None
        c.cache = None
        c.progress = False
    saved = copy.copy(router)
    saved.estimator = saved.estimator_ = FrozenEstimator(kept)
    payload = {
        "format": FORMAT,
        "description": json.dumps(description, sort_keys=True),
        "router": saved,
        "certification_proba": (None if certification_proba is None
                                else np.asarray(certification_proba, float)),
        "certification_y": (None if certification_y is None
                            else np.asarray(certification_y).astype(str)),
    }
    try:
        sio.dump(payload, path)
    finally:
        for c, state in saved_state:
            c.__dict__.update(state)
    return description


def _read_payload(path):
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(file=path)
    except (zipfile.BadZipFile, KeyError, ValueError, json.JSONDecodeError,
            OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise ModelFileError(f"{path}: no such model file.") from None
        raise ModelFileError(
            f"{path} is not a sklearn-llmconf model file (not a skops archive: "
            f"{exc})."
        ) from None
    foreign = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if foreign:
        raise ModelFileError(
            f"{path} holds types this package does not trust: {foreign}; "
            "refusing to load it (not a sklearn-llmconf model file, or altered)."
        )
    try:
        payload = sio.load(path, trusted=list(untrusted))
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError,
            json.JSONDecodeError) as exc:
        raise ModelFileError(
            f"{path} is damaged or was altered ({type(exc).__name__}: {exc})."
        ) from None
    from .routing._router import ConfidenceRouter

    if (not isinstance(payload, dict) or payload.get("format") != FORMAT
            or not isinstance(payload.get("description"), str)
            or not isinstance(payload.get("router"), ConfidenceRouter)):
        raise ModelFileError(
            f"{path} is a skops file but not a sklearn-llmconf model file "
            f"(no {FORMAT!r} mark)."
        )
    return payload


def attach_backend(router, description, backend_overrides=None):
    """Rebuild the file's backend, check its identity, wire it to the classifier.

    Parameters
    ----------
    router : ConfidenceRouter
        As loaded with ``load_model(path, check=False)``.
    description : dict
        The file's description.
    backend_overrides : dict, default=None
        See :func:`load_model`.

    Returns
    -------
    backend : backend object

    Raises
    ------
    ModelFileError
        When the backend is not the model the certificate was made for.
    """
    backend = build_backend(description["backend"], **(backend_overrides or {}))
    check_identity(description["identity"], backend)
    for clf in llm_classifiers([router.estimator, router.estimator_]):
        clf.backend = backend
    return backend


def load_model(path, *, backend_overrides=None, check=True):
    """Load a model file written by :func:`save_model`.

    Parameters
    ----------
    path : str or path-like
    backend_overrides : dict, default=None
        Backend parameters to change (``model_path`` to a moved GGUF file,
        ``base_url`` to another address of the same server); the identity
        check still applies.
    check : bool, default=True
        Rebuild the backend and check its identity against the certificate
        (hashes a GGUF file). False loads without a backend (reports only).

    Returns
    -------
    router : ConfidenceRouter
        Ready to route, its classifier wired to the rebuilt backend.
    description : dict
        What the file says about itself.
    extras : dict
        ``certification_proba`` and ``certification_y`` (or None).

    Raises
    ------
    ModelFileError
        Foreign, damaged or altered file; or a backend that is not the model
        the certificate was made for.
    """
    payload = _read_payload(path)
    description = json.loads(payload["description"])
    router = payload["router"]
    if check:
        attach_backend(router, description, backend_overrides)
    extras = {k: payload.get(k) for k in ("certification_proba", "certification_y")}
    return router, description, extras
