"""The scoring engine: rendered prompts in, per-label log-scores out.

One entry point, :func:`score_prompts`, used by the classifier and by anything
else that needs scores. The flow of one call::

    prompts --de-duplicate--> unique prompts --score_unique--> ScoreResult
            --take--> rows

:func:`score_unique` scores distinct prompts: it looks each one up in the
response cache, sends the rest to the strategy (hence the backend) in batches
of ``batch_size``, writes every completed batch to the cache (so an interrupted
run resumes where it stopped) and counts the usage. It depends on its
arguments only, so chunks of unique prompts can be scored independently (in
parallel workers) and joined with :func:`concat`.
"""

from __future__ import annotations

import sys
from functools import partial

import numpy as np

from .._types import ScoreResult, Usage
from ..cache import key_function, open_cache
from ..cache._file import check_rows
from ._failures import NOT_SENT
from ._parallel import score_in_parallel, score_with

__all__ = ["concat", "place", "score_prompts", "score_rows", "score_unique", "take"]


def take(scores: ScoreResult, index) -> ScoreResult:
    """The rows at ``index`` (usage is shared, not repeated)."""
    index = np.asarray(index, dtype=int)
    return ScoreResult(
        scores.log_probs[index],
        [scores.errors[i] for i in index],
        scores.usage,
        {name: values[index] for name, values in scores.extra.items()},
    )


def place(scores: ScoreResult, index, n_rows: int, errors) -> ScoreResult:
    """``scores`` at rows ``index`` of ``n_rows``; the other rows failed.

    ``errors`` gives every row's reason (None at ``index``); the rows not in
    ``index`` get NaN scores and NaN extras.
    """
    index = np.asarray(index, dtype=int)
    log_probs = np.full((n_rows, scores.log_probs.shape[1]), np.nan)
    log_probs[index] = scores.log_probs
    merged = list(errors)
    for i, err in zip(index, scores.errors):
        merged[i] = err
    extra = {}
    for name, values in scores.extra.items():
        extra[name] = np.full(n_rows, np.nan)
        extra[name][index] = values
    return ScoreResult(log_probs, merged, scores.usage, extra)


def concat(parts, n_labels: int) -> ScoreResult:
    """Join the scores of consecutive chunks of prompts."""
    parts = list(parts)
    usage = Usage()
    for part in parts:
        usage += part.usage
    names = {name for part in parts for name in part.extra}
    return ScoreResult(
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


def score_prompts(backend, prompts, labels, *, strategy, cache=None,
                  batch_size=64, progress=False, usage=None,
                  n_jobs=None, stop_on_failure=False) -> ScoreResult:
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
    cache : str, path-like, cache object or None, default=None
        Opened (and closed) with :func:`sklearn_llmconf.cache.open_cache`.
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
    stop_on_failure : bool, default=False
        Send nothing more once a batch came back with a failed row (for an
        ``on_error="raise"`` caller, which would discard the rest anyway): the
        prompts not sent are failed rows whose reason says so; the batches
        answered before are in the cache.

    Returns
    -------
    scores : ScoreResult
        One row per prompt, in order; NaN rows failed, ``errors`` says why.
    """
    with open_cache(cache) as opened:
        return _score_distinct_texts(backend, prompts, labels, strategy=strategy,
                                     cache=opened, batch_size=batch_size,
                                     progress=progress, usage=usage, n_jobs=n_jobs,
                                     stop_on_failure=stop_on_failure)


#: Distinct rows rendered at a time by :func:`score_rows` (a multiple of the
#: default batch size): memory stays flat in the number of texts.
RENDER_CHUNK = 1024


def score_rows(backend, rows, render, labels, *, strategy, cache=None,
               batch_size=64, progress=False, usage=None, n_jobs=None,
               chunk_size=RENDER_CHUNK, stop_on_failure=False) -> ScoreResult:
    """Score rows of prompt fields, rendering at most ``chunk_size`` at a time.

    Equal rows render equal prompts, so rows are de-duplicated before they are
    rendered; the distinct rows are rendered and scored chunk by chunk, so
    that the rendered prompts of only one chunk are held at a time.

    Parameters
    ----------
    backend : backend object
    rows : list of tuple of str
        Field values of each row.
    render : callable
        ``render(rows) -> list of Prompt``, one prompt per row.
    labels, strategy, cache, batch_size, progress, usage, n_jobs, stop_on_failure
        As in :func:`score_prompts`.
    chunk_size : int, default=RENDER_CHUNK
        Distinct rows rendered at a time.

    Returns
    -------
    scores : ScoreResult
        One row per input row, in order.
    """
    position: dict[tuple, int] = {}
    inverse = [position.setdefault(row, len(position)) for row in rows]
    unique = list(position)
    parts = []
    bar = _progress(len(unique), enabled=progress)
    try:
        with open_cache(cache) as opened:
            for start in range(0, len(unique), chunk_size):
                parts.append(_score_distinct_texts(
                    backend, render(unique[start:start + chunk_size]), labels,
                    strategy=strategy, cache=opened, batch_size=batch_size,
                    bar=bar, usage=usage, n_jobs=n_jobs,
                    stop_on_failure=stop_on_failure,
                ))
                if stop_on_failure and parts[-1].failed.any():
                    done = start + len(parts[-1].errors)
                    parts.append(_not_sent(len(unique) - done, len(labels)))
                    break
    finally:
        bar.close()
    return take(concat(parts, len(labels)), inverse)


def _not_sent(n: int, n_labels: int) -> ScoreResult:
    return ScoreResult(np.full((n, n_labels), np.nan), [NOT_SENT] * n)


def _score_distinct_texts(backend, prompts, labels, **params) -> ScoreResult:
    """:func:`score_unique` over the distinct texts of ``prompts``, in order."""
    position: dict[str, int] = {}
    unique = []
    for p in prompts:
        if p.text not in position:
            position[p.text] = len(unique)
            unique.append(p)
    scores = score_unique(backend, unique, labels, **params)
    return take(scores, [position[p.text] for p in prompts])


def score_unique(backend, prompts, labels, *, strategy, cache=None,
                 batch_size=64, progress=False, usage=None, n_jobs=None,
                 bar=None, stop_on_failure=False) -> ScoreResult:
    """Score distinct prompts in batches, through the cache when there is one.

    Parameters are those of :func:`score_prompts`, with ``cache`` an open cache
    object (or None) and ``prompts`` free of duplicates; ``bar``, a progress
    bar owned by the caller, is advanced instead of showing one here.

    Returns
    -------
    scores : ScoreResult
    """
    n, k = len(prompts), len(labels)
    scores = ScoreResult(np.full((n, k), np.nan),
                         [NOT_SENT if stop_on_failure else None] * n)
    accounts = [scores.usage] + ([] if usage is None else [usage])
    todo = np.arange(n)
    keys = None
    if cache is not None:
        if hasattr(backend, "prepare"):  # a probe, once; cache_identity() sends none
            backend.prepare()
        identity = backend.cache_identity()
        make_key = key_function(cache)
        keys = [make_key(identity, p.text, labels, extra=strategy.cache_extra)
                for p in prompts]
        hits = check_rows(cache, cache.get_many(keys), k)
        hit = np.array([key in hits for key in keys], dtype=bool)
        for i in np.flatnonzero(hit):
            scores.log_probs[i] = hits[keys[i]]
            scores.errors[i] = None
        for account in accounts:
            account += Usage(cache_hits=int(hit.sum()))
        todo = np.flatnonzero(~hit)
        if bar is not None:
            bar.update(int(hit.sum()))
    own_bar = bar is None
    if own_bar:
        bar = _progress(len(todo), enabled=progress)
    try:
        score = partial(score_with, strategy, backend, labels)
        batches = score_in_parallel(score, prompts, todo, n_jobs=n_jobs,
                                    batch_size=batch_size)
        for chunk, result in batches:
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
            if stop_on_failure and result.failed.any():
                batches.close()  # joblib cancels the chunks not yet started
                break
    finally:
        if own_bar:
            bar.close()
    return scores


def _store(scores: ScoreResult, rows, result) -> None:
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
