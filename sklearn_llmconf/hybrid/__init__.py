"""The LLM and the labels together: LLM scores as features, a hybrid classifier.

- :class:`LLMScores`: an LLM's per-class log-scores as a feature block, with
  out-of-prompt scores for the training texts.
- :func:`make_hybrid_classifier`: TF-IDF (+ sentence embeddings) + LLM scores
  stacked (one cross-validated logistic regression per block, a regularised
  multinomial one on their out-of-fold log-probabilities).
- :class:`BlockStackingClassifier`: that stacking for any blocks.
- :class:`SentenceEmbedder`: sentence embeddings (extra ``embeddings``).
"""

from ._embeddings import SentenceEmbedder
from ._hybrid import make_hybrid_classifier
from ._scores import LLMScores
from ._stacking import BlockStackingClassifier

__all__ = [
    "BlockStackingClassifier",
    "LLMScores",
    "SentenceEmbedder",
    "make_hybrid_classifier",
]
