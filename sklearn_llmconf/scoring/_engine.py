"""The scoring engine: rendered prompts in, per-label log-scores out.

One entry point, :func:`score_prompts`, used by the classifier and by anything
else that needs scores. The flow of one call::

    prompts --de-duplicate--> unique prompts --score_unique--> Scores --take--> rows

:func:`score_unique` scores distinct prompts: it looks each one up in the
response cache, sends the rest to the strategy (hence the backend) in batches
of ``batch_size``, writes every completed batch to the cache (so an interrupted
run resumes where it stopped) and counts the usage. It depends on its
arguments only, so chunks of unique prompts can be scored independently (in
parallel workers) and joined with :meth:`Scores.concat`.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from ..backends._base import Usage
from ..cache._file import check_rows
from ..cache._sqlite import ResponseCache
from ._parallel import score_in_parallel, score_with

__all__ = ["Scores", "open_cache", "score_prompts", "score_unique"]


@dataclass
class Scores:
    """Per-label log-scores of a sequence of prompts.

    Attributes
    ----------
    log_probs : ndarray of shape (n_prompts, n_labels)
        ``log P(label | prompt)`` (or the strategy's log-scores); NaN rows failed.
    errors : list of (str or None)
        Per prompt: None when scored, else a short reason.
    usage : Usage
        What this call cost (model calls, cache hits, tokens).
    extra : dict
        Per-prompt diagnostics reported by the backend, each an ndarray of
        shape (n_prompts,) with NaN where unknown (e.g. answered from the
        cache), such as ``"uncovered_mass"``: ``1 - sum_k P(label_k | prompt)``.
    """

    log_probs: np.ndarray
    errors: list
    usage: Usage = field(default_factory=Usage)
    extra: dict = field(default_factory=dict)

    @property
    def failed(self) -> np.ndarray:
        """Boolean mask of the rows without a finite score for every label."""
        return ~np.isfinite(self.log_probs).all(axis=1)

    def take(self, index) -> Scores:
        """The rows at ``index`` (usage is shared, not repeated)."""
        index = np.asarray(index, dtype=int)
        return Scores(
            self.log_probs[index],
            [self.errors[i] for i in index],
            self.usage,
            {name: values[index] for name, values in self.extra.items()},
        )

    def placed(self, index, n_rows: int, errors) -> Scores:
        """These scores at rows ``index`` of ``n_rows``; the other rows failed.

        ``errors`` gives every row's reason (None at ``index``); the rows not
        in ``index`` get NaN scores and NaN extras.
        """
        index = np.asarray(index, dtype=int)
        log_probs = np.full((n_rows, self.log_probs.shape[1]), np.nan)
        log_probs[index] = self.log_probs
        merged = list(errors)
        for i, err in zip(index, self.errors):
            merged[i] = err
        extra = {}
        for name, values in self.extra.items():
            extra[name] = np.full(n_rows, np.nan)
            extra[name][index] = values
        return Scores(log_probs, merged, self.usage, extra)

    @classmethod
    def concat(cls, parts, n_labels: int) -> Scores:
        """Join the scores of consecutive chunks of prompts."""
        parts = list(parts)
        usage = Usage()
        for part in parts:
            usage += part.usage
        names = {name for part in parts for name in part.extra}
        return cls(
            np.concatenate([p.log_probs for p in parts]) if parts
            else np.empty((0, n_labels)),
            [e for p in parts for e in p.errors],
            usage,
            {
                name: np.concatenate([
                    p.extra.get(name, np.full(len(p.errors), np.nan)) for p in parts
                ])
                for name in names
            },
        )


@contextmanager
def open_cache(cache):
    """Yield a cache object for ``cache`` (path, cache or None).

    A cache opened here from a path is closed on exit; a cache object passed
    in stays open (its owner closes it).
    """
    if cache is None or hasattr(cache, "get_many"):
        yield cache
        return
    opened = ResponseCache(cache)
    try:
        yield opened
    finally:
        opened.close()


def score_prompts(backend, prompts, labels, *, strategy, cache=None,
                  batch_size=64, progress=False, usage=None, n_jobs=None) -> Scores:
    """Score every prompt, calling the backend once per distinct prompt text.

    Parameters
    ----------
    backend : backend object
    prompts : list of Prompt
    labels : list of str
        The label strings, as the backend scores them.
    strategy : object
        From :func:`~sklearn_llmconf.scoring._strategies.make_strategy`: its
        ``score(backend, prompts, labels)`` returns a ScoreResult and its
        ``cache_extra`` is part of the cache key.
    cache : str, path-like, ResponseCache or None, default=None
    batch_size : int, default=64
        Prompts per strategy call; the cache is written after each.
    progress : bool, default=False
        Show a progress bar over the prompts sent to the backend.
    usage : Usage, default=None
        Counts are added to it batch by batch too, so that an interrupted call
        still records what it spent.
    n_jobs : int or None, default=None
        joblib workers scoring chunks of the prompts missing from the cache
        (see :func:`~sklearn_llmconf.scoring._parallel.score_in_parallel`); the cache,
        the usage and the progress bar stay in this process.

    Returns
    -------
    scores : Scores
        One row per prompt, in order.
    """
    position: dict[str, int] = {}
    unique = []
    for p in prompts:
        if p.text not in position:
            position[p.text] = len(unique)
            unique.append(p)
    inverse = [position[p.text] for p in prompts]
    with open_cache(cache) as opened:
        scores = score_unique(backend, unique, labels, strategy=strategy,
                              cache=opened, batch_size=batch_size,
                              progress=progress, usage=usage, n_jobs=n_jobs)
    return scores.take(inverse)


def score_unique(backend, prompts, labels, *, strategy, cache=None,
                 batch_size=64, progress=False, usage=None, n_jobs=None) -> Scores:
    """Score distinct prompts in batches, through the cache when there is one.

    Parameters are those of :func:`score_prompts`, with ``cache`` an open cache
    object (or None) and ``prompts`` free of duplicates.

    Returns
    -------
    scores : Scores
    """
    n, k = len(prompts), len(labels)
    scores = Scores(np.full((n, k), np.nan), [None] * n)
    accounts = [scores.usage] + ([] if usage is None else [usage])
    todo = np.arange(n)
    keys = None
    if cache is not None:
        identity = backend.cache_identity()
        keys = [cache.make_key(identity, p.text, labels, extra=strategy.cache_extra)
                for p in prompts]
        hits = check_rows(cache, cache.get_many(keys), k)
        hit = np.array([key in hits for key in keys], dtype=bool)
        for i in np.flatnonzero(hit):
            scores.log_probs[i] = hits[keys[i]]
        for account in accounts:
            account.cache_hits += int(hit.sum())
        todo = np.flatnonzero(~hit)
    bar = _progress(len(todo), enabled=progress)
    try:
        score = partial(score_with, strategy, backend, labels)
        for chunk, result in score_in_parallel(score, prompts, todo, n_jobs=n_jobs,
                                               batch_size=batch_size):
            for account in accounts:
                account += result.usage
            _store(scores, chunk, result)
            if cache is not None:
                done = {keys[i]: scores.log_probs[i] for i in chunk
                        if scores.errors[i] is None
                        and np.isfinite(scores.log_probs[i]).all()}
                if done:
                    cache.set_many(done)
            bar.update(len(chunk))
    finally:
        bar.close()
    return scores


def _store(scores: Scores, rows, result) -> None:
    """Copy a ScoreResult for prompts ``rows`` into ``scores``."""
    scores.log_probs[rows] = result.log_probs
    for i, err in zip(rows, result.errors):
        scores.errors[i] = err
    n = len(scores.errors)
    for name, values in result.extra.items():
        values = np.asarray(values)
        # Per-prompt numbers only; run-level notes (strings) are not per row.
        if values.shape != (len(rows),) or values.dtype.kind not in "biuf":
            continue
        column = scores.extra.setdefault(name, np.full(n, np.nan))
        column[rows] = values


class _NoProgress:
    def update(self, n):
        pass

    def close(self):
        pass


class _TextProgress:
    """Plain progress counter on stderr when tqdm is not installed."""

    def __init__(self, total):
        self.total = total
        self.done = 0

    def update(self, n):
        self.done += n
        print(f"\rscoring {self.done}/{self.total}", end="", file=sys.stderr)

    def close(self):
        print(file=sys.stderr)


def _progress(total, *, enabled):
    if not enabled or total == 0:
        return _NoProgress()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _TextProgress(total)
    return tqdm(total=total, desc="scoring", unit="text")
