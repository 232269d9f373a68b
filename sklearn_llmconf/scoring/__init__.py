"""Scoring: rendered prompts in, per-label log-scores out.

- ``_engine``: de-duplication, the response cache, batches, progress and usage.
- ``_parallel``: chunks of uncached prompts scored by joblib workers.
- ``_strategies``: where a row's log-scores come from (label log-probabilities,
  verbalized confidence, self-consistency votes).
"""
