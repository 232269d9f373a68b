"""Choosing few-shot demonstrations from labelled training texts."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from ..utils._sklearn_compat import HasMethods

# One duplicate rule for the bundled data and for demonstrations.
from ._text import normalize_text

__all__ = ["DemoPool", "SimilarDemos"]


class SimilarDemos(BaseEstimator):
    """Demonstrations chosen per text: the labelled texts nearest to it.

    The ``demo_selection`` of :class:`~sklearn_llmconf.LLMClassifier` that
    needs a setting; ``demo_selection="similar"`` is ``SimilarDemos()`` and
    ``"similar_stratified"`` is ``SimilarDemos(stratified=True)``. A training
    text equal to the query (after normalising case, punctuation and spaces)
    is never its demonstration. Every text has its own demonstrations, so no
    prompt prefix is shared between texts: each costs its whole prompt.

    Parameters
    ----------
    embedder : transformer or None, default=None
        Turns texts into vectors (cloned, fitted on the training texts),
        compared by cosine similarity, e.g.
        :class:`~sklearn_llmconf.hybrid.SentenceEmbedder` (extra
        ``embeddings``). None: TF-IDF.
    stratified : bool, default=False
        Take the nearest text of each class in turn instead of the nearest
        texts overall.
    """

    _parameter_constraints: dict = {
        "embedder": [HasMethods(["fit_transform", "transform"]), None],
        "stratified": ["boolean"],
    }

    def __init__(self, embedder=None, stratified=False):
        self.embedder = embedder
        self.stratified = stratified


class DemoPool:
    """Labelled texts to draw demonstrations from (duplicates dropped).

    Long texts stay in the pool: the classifier cuts demonstrations to
    ``demo_max_chars`` when it renders them.

    Parameters
    ----------
    rows : list of tuple of str
        Field values of each training row.
    y_index : ndarray of int
        Class index of each row.
    n_classes : int
    embedder : transformer or None, default=None
        Turns texts into vectors (``fit_transform`` on the pool, ``transform``
        on queries), compared by cosine similarity for :meth:`nearest`; None
        uses TF-IDF. For example
        :class:`~sklearn_llmconf.hybrid.SentenceEmbedder`.
    """

    def __init__(self, rows, y_index, n_classes, embedder=None):
        keys = [normalize_text(" ".join(r)) for r in rows]
        seen = set()
        keep = []
        for i, key in enumerate(keys):
            if key in seen:
                continue
            seen.add(key)
            keep.append(i)
        self.rows = [rows[i] for i in keep]
        self.keys = [keys[i] for i in keep]
        self.y_index = np.asarray(y_index)[keep]
        self.n_classes = n_classes
        self.embedder = embedder
        self._vectorizer = None

    def __len__(self):
        return len(self.rows)

    def fixed(self, n_shots, strategy, rng) -> np.ndarray:
        """Indices of one demonstration set shared by every query.

        ``"stratified"`` takes classes in turn (as balanced as ``n_shots``
        allows), ``"random"`` samples the pool uniformly; either way the order
        is shuffled so the last demonstration's label is not systematic.
        """
        n_shots = min(n_shots, len(self))
        if strategy == "random":
            return rng.choice(len(self), size=n_shots, replace=False)
        per_class = [rng.permutation(np.flatnonzero(self.y_index == c))
                     for c in rng.permutation(self.n_classes)]
        picked = []
        depth = 0
        while len(picked) < n_shots:
            for members in per_class:
                if depth < len(members) and len(picked) < n_shots:
                    picked.append(members[depth])
            depth += 1
        return rng.permutation(np.asarray(picked, dtype=int))

    def fit_similarity(self) -> DemoPool:
        """Fit the similarity of :meth:`nearest` (once, at fit time)."""
        self._vectorizer = (TfidfVectorizer(sublinear_tf=True)
                            if self.embedder is None else self.embedder)
        self._pool_matrix = normalize(self._vectorizer.fit_transform(
            [" ".join(r) for r in self.rows]
        ))
        self._key_index = {k: i for i, k in enumerate(self.keys)}
        return self

    def nearest(self, queries, n_shots, *, stratified) -> list[np.ndarray]:
        """Indices of the most similar pool rows for each query (cosine).

        Rows that duplicate the query are skipped. The most similar
        demonstration comes last, right before the query. With
        ``stratified=True`` the nearest rows are taken per class, in turn, so
        the demonstrations stay label-balanced.
        """
        if self._vectorizer is None:
            self.fit_similarity()
        query_matrix = normalize(
            self._vectorizer.transform([" ".join(q) for q in queries]))
        sims = query_matrix @ self._pool_matrix.T
        sims = sims.toarray() if sp.issparse(sims) else np.asarray(sims)
        for qi, q in enumerate(queries):
            dup = self._key_index.get(normalize_text(" ".join(q)))
            if dup is not None:
                sims[qi, dup] = -np.inf
        n_shots = min(n_shots, len(self) - 1)
        out = []
        for row in sims:
            order = np.argsort(-row, kind="stable")
            order = order[np.isfinite(row[order])]
            if stratified:
                by_class = [
                    order[self.y_index[order] == c] for c in range(self.n_classes)
                ]
                # Interleave classes by rank, then keep the n_shots best ranks.
                ranked = sorted(
                    ((rank, row[idx], idx) for members in by_class
                     for rank, idx in enumerate(members[:n_shots])),
                    key=lambda t: (t[0], -t[1]),
                )
                chosen = [idx for _, _, idx in ranked[:n_shots]]
                chosen.sort(key=lambda idx: row[idx])
                out.append(np.asarray(chosen, dtype=int))
            else:
                out.append(order[:n_shots][::-1].copy())
        return out
