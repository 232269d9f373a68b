"""Static word embeddings of texts, no torch (optional extra ``static``).

:class:`WordLlamaEmbedder` wraps WordLlama (the ``wordllama`` package: token
embeddings taken from a large LLM's embedding table and trained for sentence
similarity, average-pooled). Its default model (``l2_supercat``, 256
dimensions, 16 MB) ships inside the package and loads without any download;
its dependencies are numpy, tokenizers and safetensors.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from ._text import texts_of

__all__ = ["WordLlamaEmbedder", "wordllama_available"]

_EXTRA = "pip install 'sklearn-llmconf[static]'"


def wordllama_available() -> bool:
    """True when the ``wordllama`` package is installed."""
    return importlib.util.find_spec("wordllama") is not None


def _load(dim):
    try:
        import wordllama
    except ImportError as exc:
        raise ImportError(f"WordLlamaEmbedder needs wordllama: {_EXTRA}.") from exc
    # the package's own folder holds weights/ and tokenizers/: read from there,
    # never downloaded
    return wordllama.WordLlama.load(dim=dim, cache_dir=Path(wordllama.__file__).parent,
                                    disable_download=True)


class WordLlamaEmbedder(TransformerMixin, BaseEstimator):
    """Static (average-pooled) WordLlama embeddings of texts, as features.

    Stateless, loaded lazily and dropped on pickling, like
    :class:`SentenceEmbedder`; microseconds per text (no neural network
    runs: a table look-up and an average).

    Parameters
    ----------
    dim : int, default=256
        Embedding dimension (WordLlama's models are Matryoshka-truncated:
        64, 128, 256, 512 or 1024; the package ships 256).
    normalize : bool, default=True
        Scale every embedding to unit length.

    Attributes
    ----------
    n_features_out_ : int
    """

    _parameter_constraints: dict = {}

    def __init__(self, dim=256, *, normalize=True):
        self.dim = dim
        self.normalize = normalize

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        tags.requires_fit = False
        return tags

    def _get_model(self):
        model = getattr(self, "_model", None)
        if model is None:
            model = self._model = _load(int(self.dim))
        return model

    def fit(self, X, y=None):
        """Load the model; learns nothing from X.

        Parameters
        ----------
        X : sequence of str
        y : ignored

        Returns
        -------
        self : WordLlamaEmbedder
        """
        self._get_model()
        self.n_features_out_ = int(self.dim)
        return self

    def transform(self, X):
        """Embed the texts.

        Parameters
        ----------
        X : sequence of str of shape (n_samples,)

        Returns
        -------
        embeddings : ndarray of shape (n_samples, dim)
        """
        texts = texts_of(X, "WordLlamaEmbedder")
        emb = self._get_model().embed(texts, norm=bool(self.normalize))
        return np.asarray(emb, dtype=np.float64).reshape(len(texts), -1)

    def get_feature_names_out(self, input_features=None):
        """``wordllama_<i>`` for each dimension."""
        return np.asarray([f"wordllama_{i}" for i in range(int(self.dim))],
                          dtype=object)

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_model", None)
        return state
