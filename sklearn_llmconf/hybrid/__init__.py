"""The LLM and the labels together: LLM scores as features, a hybrid classifier.

- :class:`LLMScores`: an LLM's per-class log-scores as a feature block, with
  out-of-prompt scores for the training texts.
- :func:`make_hybrid_classifier`: TF-IDF (+ sentence embeddings) + LLM scores
  stacked (one cross-validated logistic regression per block, a regularised
  multinomial one on their out-of-fold log-probabilities).
- :class:`BlockStackingClassifier`: that stacking for any blocks.
- :class:`MultiLabelStackingClassifier`: the same for several labels per
  text (an indicator ``Y``): the blocks computed once, a stack per label
  (``make_hybrid_classifier(multilabel=True)``).
- :class:`SentenceEmbedder`: sentence embeddings (extra ``embeddings``).
- :class:`LlamaEmbedder`: the embedded LLM's pooled hidden states (extra
  ``local``, no torch).
- :class:`WordLlamaEmbedder`: static WordLlama embeddings (extra ``static``,
  no torch).
- :class:`SetFitClassifier`, :class:`SetFitBlock`: a sentence encoder
  fine-tuned on the labels (extra ``setfit``), alone or as a block.
- :class:`BestCandidateClassifier`, :func:`service_candidates`: candidates
  (the calibrated LLM, the hybrid, ...) compared by cross-validated log
  loss, the best kept (what ``sklearn-llmconf fit --model auto`` does).
- :class:`JoinColumns`: several text columns as one text per row.
"""

from ._embeddings import SentenceEmbedder
from ._hybrid import make_hybrid_classifier
from ._llama_embeddings import LlamaEmbedder
from ._multilabel import ColumnBlock, MultiLabelStackingClassifier
from ._scores import LLMScores
from ._select import BestCandidateClassifier, service_candidates
from ._setfit import SetFitBlock, SetFitClassifier
from ._stacking import BlockStackingClassifier
from ._static_embeddings import WordLlamaEmbedder
from ._text import JoinColumns

__all__ = [
    "BestCandidateClassifier",
    "BlockStackingClassifier",
    "ColumnBlock",
    "JoinColumns",
    "LLMScores",
    "LlamaEmbedder",
    "MultiLabelStackingClassifier",
    "SentenceEmbedder",
    "SetFitBlock",
    "SetFitClassifier",
    "WordLlamaEmbedder",
    "make_hybrid_classifier",
    "service_candidates",
]
