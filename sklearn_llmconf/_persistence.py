"""A safe, self-describing model file: a certified router saved with ``skops.io``.

The file holds the fitted :class:`~sklearn_llmconf.routing.ConfidenceRouter`
(or, for several labels per row, the
:class:`~sklearn_llmconf.routing.MultiLabelRouter`; the description then says
``"task": "multilabel"`` and holds a threshold per label and direction as its
certificate) and its :class:`~sklearn_llmconf.LLMClassifier` (or the hybrid
holding one)
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
  certificate is void for another model;
- refuses, before anything is inflated, an archive over the size and entry
  limits of :mod:`sklearn_llmconf._archive`, and, when the environment
  variable ``SKLEARN_LLMCONF_MODEL_KEY`` holds a key, a file that is not
  signed with it (HMAC-SHA256 over every entry: any change is refused,
  re-zipped or edited in place); without the key the signature is not
  checked, and the returned ``extras["signature"]`` says so;
- refuses a malformed description (invalid JSON, a missing or mistyped
  field, an unknown backend parameter) with one line naming the field.

**A model file never chooses where a request or a key goes.** A server
backend (:class:`~sklearn_llmconf.backends.OpenAIBackend`) is rebuilt only
when the caller names the server (``base_url``) and the key variable
(``api_key_env``, None for no key) in ``backend_overrides``, the same as the
file's or others; otherwise :class:`UnconfirmedBackendError` says what the
file asks for and nothing is sent. A file that names no server (the SDK's
default) or no key variable needs no confirmation of that part. A local
GGUF model needs none: it sends nothing, and its bytes must match the
certificate.
"""

from __future__ import annotations

import copy
import hashlib
import json
import zipfile

import numpy as np

from . import _archive

__all__ = [
    "FORMAT",
    "TRUSTED_TYPES",
    "ModelFileError",
    "UnconfirmedBackendError",
    "attach_backend",
    "backend_spec",
    "is_multilabel",
    "llm_classifiers",
    "multilabel_certificate",
    "build_backend",
    "calibration_hash",
    "check_identity",
    "load_model",
    "save_model",
    "validate_description",
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
    # the embedding block of an install without sentence-transformers
    "sklearn_llmconf.hybrid._llama_embeddings.LlamaEmbedder",
    # several labels per text (sklearn-llmconf fit --multilabel)
    "sklearn_llmconf.routing._multilabel.MultiLabelRouter",
    "sklearn_llmconf.calibration._multilabel.MultiLabelCorrection",
    "sklearn_llmconf.hybrid._multilabel.MultiLabelStackingClassifier",
    "sklearn_llmconf.hybrid._multilabel.ColumnBlock",
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


class UnconfirmedBackendError(ModelFileError):
    """The file names a server or key variable that the caller did not confirm.

    Attributes
    ----------
    asks : dict
        What the file asks for: ``base_url`` and / or ``api_key_env``.
    """

    def __init__(self, asks):
        self.asks = dict(asks)
        parts = []
        if "base_url" in self.asks:
            parts.append(f"send requests to {self.asks['base_url']!r}")
        if "api_key_env" in self.asks:
            parts.append("send the key in the environment variable "
                         f"{self.asks['api_key_env']!r}")
        super().__init__(
            f"the model file asks to {' and to '.join(parts)}; nothing was sent. "
            "Name the server and the key variable yourself (backend_overrides="
            "{'base_url': ..., 'api_key_env': ...}): a model file never chooses "
            "where a key goes."
        )


#: The description's fields: a type name, a list of one spec (every item),
#: or a dict of fields. "num" is an int or a float (not a bool); a trailing
#: "?" admits None.
DESCRIPTION_SCHEMA = {
    "format": "str",
    "backend": {"class": "str", "params": "dict"},
    "identity": "dict",
    "prompt": {"template": "str", "label_separator": "str?",
               "answer_prefix": "str?"},
    "classes": ["str"],
    "label_words": ["str"],
    "certificate": {
        "tiers": ["str"], "fallback_tier": "str", "targets": ["num"],
        "thresholds": ["num?"], "certified": ["bool"],
        "precision_lower_bound": ["num?"], "n_accepted": ["int"],
        "n_errors": ["int"], "n_labels_needed": ["int?"], "delta": "num",
        "delta_per_test": "num", "method": "str", "per_class": "bool",
        "n_calibration": "int", "n_failed_calibration": "int",
    },
}

#: The certificate of a multi-label model (``"task": "multilabel"``): a
#: threshold per label and direction, ``None`` where a direction is never
#: decided (see :class:`~sklearn_llmconf.routing.MultiLabelRouter`).
MULTILABEL_CERTIFICATE_SCHEMA = {
    "labels": ["str"], "tiers": ["str"], "fallback_tier": "str",
    "target_precision": "num", "risk_level": "num", "risk_per_test": "num",
    "present_thresholds": ["num?"], "absent_thresholds": ["num?"],
    "method": "str", "n_calibration": "int", "n_failed_calibration": "int",
}

#: The ``task`` of a model file: one label per row (files without the field),
#: or several.
TASKS = ("multiclass", "multilabel")

_TYPES = {"str": (str,), "int": (int,), "num": (int, float), "bool": (bool,),
          "dict": (dict,)}


def _check_field(value, spec, where):
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            raise ModelFileError(
                f"the model file's description{' field ' + where if where else ''}"
                " is not an object.")
        for key, sub in spec.items():
            if key not in value:
                raise ModelFileError(f"the model file's description has no field "
                                     f"{where + '.' if where else ''}{key}.")
            _check_field(value[key], sub, f"{where + '.' if where else ''}{key}")
        return
    if isinstance(spec, list):  # [item] or [item, "?"] (None admitted)
        if value is None and len(spec) == 2:
            return
        if not isinstance(value, list):
            raise ModelFileError(f"the model file's description field {where} is "
                                 f"not a list.")
        for i, item in enumerate(value):
            _check_field(item, spec[0], f"{where}[{i}]")
        return
    if spec.endswith("?") and value is None:
        return
    kind = spec.rstrip("?")
    if (not isinstance(value, _TYPES[kind])
            or (isinstance(value, bool) and kind != "bool")):
        raise ModelFileError(
            f"the model file's description field {where} is "
            f"{type(value).__name__}, not {kind}{' or null' if '?' in spec else ''}."
        )


def validate_description(description, schema=None) -> dict:
    """Refuse a description whose fields are missing or of the wrong type.

    Parameters
    ----------
    description : object
        The parsed description.
    schema : dict, default=None
        Fields to check (:data:`DESCRIPTION_SCHEMA` when None).

    Returns
    -------
    description : dict

    Raises
    ------
    ModelFileError
        One line naming the field.
    """
    if schema is None and isinstance(description, dict) \
            and description.get("task", "multiclass") not in TASKS:
        raise ModelFileError(f"the model file's description field task is "
                             f"{description.get('task')!r}, not one of {TASKS}.")
    if schema is None and is_multilabel(description):
        full = {**DESCRIPTION_SCHEMA, "certificate": MULTILABEL_CERTIFICATE_SCHEMA}
        _check_field(description, full, "")
        _check_multilabel_certificate(description)
        return description
    _check_field(description, DESCRIPTION_SCHEMA if schema is None else schema, "")
    if schema is None:
        cert = description["certificate"]
        k = len(cert["tiers"])
        short = [name for name in ("targets", "thresholds", "certified",
                                   "precision_lower_bound", "n_accepted",
                                   "n_errors", "n_labels_needed")
                 if len(cert[name]) < k]
        if short:
            raise ModelFileError(f"the model file's certificate has fewer entries "
                                 f"than tiers in {', '.join(short)}.")
        bad = [f"{name} {value!r}" for name, values in (
            ("target", cert["targets"]), ("delta", [cert["delta"]]),
            ("delta_per_test", [cert["delta_per_test"]]))
            for value in values if not 0.0 < value < 1.0]
        if bad:
            raise ModelFileError(f"the model file's certificate has {bad[0]}, "
                                 "outside (0, 1).")
        if len(description["label_words"]) != len(description["classes"]):
            raise ModelFileError("the model file's description has not one label "
                                 "word per class.")
    return description


def is_multilabel(description) -> bool:
    """Whether a model file's description is of a multi-label model."""
    return isinstance(description, dict) and description.get("task") == "multilabel"


def _check_multilabel_certificate(description):
    cert = description["certificate"]
    k = len(description["classes"])
    if cert["labels"] != description["classes"]:
        raise ModelFileError("the model file's certificate names other labels "
                             "than its classes.")
    short = [name for name in ("present_thresholds", "absent_thresholds")
             if len(cert[name]) != k]
    if short:
        raise ModelFileError(f"the model file's certificate has not one entry per "
                             f"label in {', '.join(short)}.")
    bad = [f"{name} {cert[name]!r}" for name in ("target_precision", "risk_level",
                                                  "risk_per_test")
           if not 0.0 < cert[name] < 1.0]
    if bad:
        raise ModelFileError(f"the model file's certificate has {bad[0]}, "
                             "outside (0, 1).")
    if len(cert["tiers"]) != 1:
        raise ModelFileError("the model file's multi-label certificate names "
                             f"{len(cert['tiers'])} tiers, not one.")
    if len(description["label_words"]) != k:
        raise ModelFileError("the model file's description has not one label "
                             "word per class.")


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
    params = {**spec["params"], **overrides}
    known = set(cls._get_param_names())
    unknown = sorted(set(params) - known)
    if unknown:
        raise ModelFileError(
            f"the model file's backend {name} has no parameter "
            f"{', '.join(map(repr, unknown))}; its parameters are: "
            f"{', '.join(sorted(known))}."
        )
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"the model file's backend {name} cannot be built: "
                             f"{exc}".replace("\n", " ")) from None


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
    try:
        actual = backend.cache_identity()
    except OSError as exc:  # a GGUF file moved, removed, or not a file
        raise ModelFileError(
            f"the model file's backend cannot be used here ({exc}); a moved GGUF "
            "file can be given with --gguf PATH (backend_overrides="
            "{'model_path': PATH})."
        ) from None
    want, got = _identity_key(expected), _identity_key(actual)
    if expected.get("backend") != actual.get("backend") or want != got:
        what = ", ".join(
            f"{k}: certified {want.get(k)!r}, found {got.get(k)!r}"
            for k in sorted(set(want) | set(got)) if want.get(k) != got.get(k)
        ) or (f"backend: certified {expected.get('backend')!r}, found "
              f"{actual.get('backend')!r}")
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


def _floats(a):
    return [None if not np.isfinite(v) else float(v) for v in np.ravel(a)]


def multilabel_certificate(router, n_failed=0) -> dict:
    """A :class:`~sklearn_llmconf.routing.MultiLabelRouter`'s certificate as
    plain JSON values (``None``: the direction is never decided).

    Parameters
    ----------
    router : MultiLabelRouter
        Fitted.
    n_failed : int, default=0
        Certification rows that could not be scored (left out of its fit).
    """
    k = len(router.classes_)
    return {
        "labels": [str(c) for c in router.classes_],
        "tiers": ["accept"],
        "fallback_tier": "review",
        "target_precision": float(router.target_precision),
        "risk_level": float(router.risk_level),
        "risk_per_test": float(router.risk_level) / (2 * k),
        "present_thresholds": _floats(router.thresholds_),
        "absent_thresholds": _floats(router.negative_thresholds_),
        "method": "learn-then-test per label and direction, Bonferroni over "
                  f"the {2 * k} tests",
        "n_calibration": int(router.n_calibration_),
        "n_failed_calibration": int(n_failed),
    }


def certificate(router) -> dict:
    """The router's certificate as plain JSON values."""
    floats = _floats

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


def _further_backends(kept, identity):
    """The backends of the LLMs inside ``kept`` other than the main one.

    A hybrid may hold several LLMs (one block each, e.g. two checkpoints):
    ``([{"backend": spec, "identity": identity}, ...], index)`` where
    ``index[i]`` says which backend the ``i``-th classifier of
    :func:`llm_classifiers` uses (0: the main one, ``j``: the ``j``-th
    further one); None when every LLM uses the main backend.
    """
    further, index = [], []
    for clf in llm_classifiers(kept):
        backend = clf._get_backend()
        own = backend.cache_identity()
        if own == identity:
            index.append(0)
            continue
        known = [f["identity"] for f in further]
        if own not in known:
            further.append({"backend": backend_spec(backend), "identity": own})
            known.append(own)
        index.append(known.index(own) + 1)
    return (further, index) if further else None


def save_model(path, router, *, certification_proba=None, certification_y=None,
               metadata=None) -> dict:
    """Write a fitted router to ``path`` with ``skops.io``.

    Parameters
    ----------
    path : str or path-like
    router : ConfidenceRouter or MultiLabelRouter
        Fitted, over an :class:`~sklearn_llmconf.LLMClassifier` (or a
        ``FrozenEstimator`` of one, or a hybrid holding one) whose backend
        :func:`backend_spec` knows. A
        :class:`~sklearn_llmconf.routing.MultiLabelRouter` writes a
        multi-label model file (``"task": "multilabel"``, the certificate of
        :func:`multilabel_certificate`).
    certification_proba : ndarray of shape (n, n_classes), default=None
        Probabilities of the certification rows (for the report's plots);
        multi-label: NaN rows could not be scored.
    certification_y : array-like of shape (n,) or (n, n_labels), default=None
        Their labels (multi-label: the 0/1 indicator matrix).
    metadata : dict, default=None
        More JSON values to describe the model (data columns, split, usage).

    Returns
    -------
    description : dict
        What the file says about itself (also returned by :func:`load_model`).

    Notes
    -----
    When the environment variable ``SKLEARN_LLMCONF_MODEL_KEY`` holds a key,
    the file is signed with it (see :mod:`sklearn_llmconf._archive`). The
    file is written beside ``path`` under a temporary name and renamed
    onto ``path`` when complete: an existing file stays whole until then.
    """
    import skops.io as sio
    from sklearn.frozen import FrozenEstimator

    from .routing import MultiLabelRouter

    clf = _classifier_of(router)
    backend = clf.get_backend()
    template = clf.prompt_template_
    kept = _kept_estimator(router)
    multilabel = isinstance(router, MultiLabelRouter)
    if multilabel:
        failed = (0 if certification_proba is None else int(
            (~np.isfinite(np.asarray(certification_proba, float)).all(axis=1)).sum()))
        cert = multilabel_certificate(router, failed)
    else:
        cert = certificate(router)
    description = {
        "format": FORMAT,
        **({"task": "multilabel"} if multilabel else {}),
        "backend": backend_spec(backend),
        "identity": backend.cache_identity(),
        "prompt": {"template": template.template,
                   "label_separator": template.label_separator,
                   "answer_prefix": template.answer_prefix},
        "classes": [str(c) for c in router.classes_],
        "label_words": list(clf.label_words_),
        "estimator": type(kept).__name__,
        "certificate": cert,
        **(metadata or {}),
    }
    further = _further_backends(kept, description["identity"])
    if further:
        description["further_backends"], description["backend_of_llm"] = further
    # Every LLM inside the model loses its live state and the loading
    # process's choices for the file (backend, cache, workers, progress, loaded
    # model); restored after writing, so the caller's model still works.
    saved_state = []
    for c in llm_classifiers(kept):
        state = {k: c.__dict__[k]
                 for k in ("backend", "cache", "progress", "n_jobs", *_LIVE)
                 if k in c.__dict__}
        saved_state.append((c, state))
        for name in _LIVE:
            c.__dict__.pop(name, None)
        c.backend = None
        c.cache = None
        c.progress = False
        c.n_jobs = None
    saved = copy.copy(router)
    saved.estimator = saved.estimator_ = FrozenEstimator(kept)
    payload = {
        "format": FORMAT,
        "description": json.dumps(description, sort_keys=True),
        "router": saved,
        "certification_proba": (None if certification_proba is None
                                else np.asarray(certification_proba, float)),
        # one label per row: the labels as text; several: the 0/1 matrix
        "certification_y": (None if certification_y is None
                            else np.asarray(certification_y).astype(
                                np.int8 if multilabel else str)),
    }
    try:
        with _archive.atomic_path(path) as tmp:
            sio.dump(payload, tmp)
            _archive.sign(tmp)
    finally:
        for c, state in saved_state:
            c.__dict__.update(state)
    return description


def _check_archive(path) -> str:
    """Limits first (nothing inflated), then the signature; its status."""
    try:
        _archive.check_limits(path)
        return _archive.verify(path)
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such model file.") from None
    except IsADirectoryError:
        raise ModelFileError(f"{path} is a directory, not a model file.") from None
    except _archive.ArchiveError as exc:
        raise ModelFileError(f"{path} is refused: {exc}.") from None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise ModelFileError(
            f"{path} is not a sklearn-llmconf model file (not a skops archive: "
            f"{exc})."
        ) from None


def _read_payload(path):
    import skops.io as sio

    signature = _check_archive(path)
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
    from .routing import ConfidenceRouter, MultiLabelRouter

    if (not isinstance(payload, dict) or payload.get("format") != FORMAT
            or not isinstance(payload.get("description"), str)
            or not isinstance(payload.get("router"),
                              (ConfidenceRouter, MultiLabelRouter))):
        raise ModelFileError(
            f"{path} is a skops file but not a sklearn-llmconf model file "
            f"(no {FORMAT!r} mark)."
        )
    return payload, signature


def _parse_description(path, payload, extras) -> dict:
    try:
        description = json.loads(payload["description"])
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ModelFileError(f"{path}: the model file's description is not valid "
                             f"JSON ({exc}).".replace("\n", " ")) from None
    validate_description(description)
    proba, y = extras["certification_proba"], extras["certification_y"]
    k = len(description["classes"])
    multilabel = is_multilabel(description)
    y_shape = (len(proba), k) if multilabel and proba is not None else (
        (len(proba),) if proba is not None else None)
    if proba is not None and (not isinstance(proba, np.ndarray) or proba.ndim != 2
                              or proba.shape[1] != k or y is None
                              or np.shape(y) != y_shape):
        raise ModelFileError(
            f"{path}: the certification probabilities are not one row of {k} "
            "per labelled certification row."
        )
    from .routing import MultiLabelRouter

    if multilabel != isinstance(payload["router"], MultiLabelRouter):
        raise ModelFileError(
            f"{path}: the model file's description says "
            f"{'several labels' if multilabel else 'one label'} per row but it "
            f"holds a {type(payload['router']).__name__}.")
    return description


#: Classifier parameters that belong to the process using the file, not to
#: the file: where responses are cached (a database URL would receive the
#: password libpq finds), workers, the progress bar. ``save_model`` writes
#: them as None / False; ``load_model`` sets them so whatever a file says.
_LOCAL_CHOICES = {"cache": None, "n_jobs": None, "progress": False}


def _reset_local_choices(router):
    # every LLM inside the model: a bare classifier, or a hybrid's blocks
    for clf in llm_classifiers([router.estimator, router.estimator_]):
        for name, value in _LOCAL_CHOICES.items():
            setattr(clf, name, value)


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
    UnconfirmedBackendError
        A server backend whose ``base_url`` or ``api_key_env`` the overrides
        do not name (nothing is built, nothing sent).
    ModelFileError
        When the backend is not the model the certificate was made for.
    """
    overrides = dict(backend_overrides or {})
    spec = description["backend"]
    if spec.get("class") == "OpenAIBackend":
        params = spec.get("params", {})
        asks = {k: params[k] for k in ("base_url", "api_key_env")
                if params.get(k) is not None and k not in overrides}
        if asks:
            raise UnconfirmedBackendError(asks)
    backend = build_backend(spec, **overrides)
    check_identity(description["identity"], backend)
    backends = [backend]
    for further in description.get("further_backends", []):
        # a further LLM of a hybrid: rebuilt as the file says (a checkpoint
        # name is portable; a server needs its URL confirmed, as above)
        params = further["backend"].get("params", {})
        if further["backend"].get("class") == "OpenAIBackend" and any(
                params.get(k) is not None for k in ("base_url", "api_key_env")):
            raise UnconfirmedBackendError(
                {k: params[k] for k in ("base_url", "api_key_env") if params.get(k)})
        extra = build_backend(further["backend"])
        check_identity(further["identity"], extra)
        backends.append(extra)
    index = description.get("backend_of_llm") or [0]
    for i, clf in enumerate(llm_classifiers([router.estimator, router.estimator_])):
        clf.backend = backends[index[i % len(index)]]
    return backend


def load_model(path, *, backend_overrides=None, check=True):
    """Load a model file written by :func:`save_model`.

    Parameters
    ----------
    path : str or path-like
    backend_overrides : dict, default=None
        Backend parameters to set (``model_path`` to a moved GGUF file). A
        server backend needs ``base_url`` and ``api_key_env`` here (those of
        the file, or others): the file's own are never used unconfirmed. The
        identity check still applies.
    check : bool, default=True
        Rebuild the backend and check its identity against the certificate
        (hashes a GGUF file). False loads without a backend (reports only).

    Returns
    -------
    router : ConfidenceRouter
        Ready to route, its classifier wired to the rebuilt backend; its
        ``cache``, ``n_jobs`` and ``progress`` are None, None and False,
        whatever the file says (they are the loading process's choice: set
        them with ``set_params``).
    description : dict
        What the file says about itself.
    extras : dict
        ``certification_proba`` and ``certification_y`` (or None), and
        ``signature``: ``"verified with SKLEARN_LLMCONF_MODEL_KEY"`` or
        ``"not checked (SKLEARN_LLMCONF_MODEL_KEY is not set)"``.

    Raises
    ------
    ModelFileError
        Foreign, damaged, altered, oversized or unsigned (with a key set)
        file; a malformed description; a server backend not confirmed in
        ``backend_overrides`` (:class:`UnconfirmedBackendError`); or a backend
        that is not the model the certificate was made for.
    """
    payload, signature = _read_payload(path)
    extras = {k: payload.get(k) for k in ("certification_proba", "certification_y")}
    description = _parse_description(path, payload, extras)
    router = payload["router"]
    _reset_local_choices(router)
    if check:
        attach_backend(router, description, backend_overrides)
    extras["signature"] = signature
    return router, description, extras
