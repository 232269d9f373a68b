"""Scoring: rendered prompts in, per-label log-scores out.

- ``_engine``: de-duplication, chunked rendering, the response cache, batches,
  progress and usage.
- ``_parallel``: chunks of uncached prompts scored by joblib workers.
- ``_strategies``: where a row's log-scores come from (label log-probabilities,
  verbalized confidence, self-consistency votes).
- ``_failures``: failed rows travel with the scores (:class:`ScoredRows`,
  :func:`predict_with_failures`), never through shared state; wrappers pass
  them on by a method or :func:`register_failure_delegate`.
"""

from ._failures import ScoredRows, predict_with_failures, register_failure_delegate
from ._strategies import LogProbs, SelfConsistency, Verbalized

__all__ = ["LogProbs", "ScoredRows", "SelfConsistency", "Verbalized",
           "predict_with_failures", "register_failure_delegate"]
