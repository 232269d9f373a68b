"""The hybrid: classical text features and the LLM's scores in one linear model."""

from __future__ import annotations

import inspect

from sklearn.base import BaseEstimator
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegressionCV
from sklearn.pipeline import FeatureUnion, Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from ._embeddings import SentenceEmbedder, embeddings_available
from ._scores import LLMScores

__all__ = ["make_hybrid_classifier"]


def logistic_cv(**params):
    """``LogisticRegressionCV(**params)``, L2, without transition warnings.

    scikit-learn 1.9 warns unless ``l1_ratios`` and ``use_legacy_attributes``
    are given; 1.8 has neither transition.
    """
    if "use_legacy_attributes" in inspect.signature(LogisticRegressionCV).parameters:
        params = {"l1_ratios": (0.0,), "use_legacy_attributes": False, **params}
    return LogisticRegressionCV(**params)


def make_hybrid_classifier(llm=None, *, embeddings="auto", Cs=10, cv=5,
                           max_iter=2000):
    """TF-IDF (+ sentence embeddings) + LLM scores -> logistic regression.

    The returned :class:`~sklearn.pipeline.Pipeline` is::

        FeatureUnion(tfidf: TfidfVectorizer(sublinear_tf=True),
                     embeddings: SentenceEmbedder()        # when enabled
                     llm: LLMScores(llm) -> StandardScaler())
        -> LogisticRegressionCV(Cs, cv, scoring="neg_log_loss")

    The regularisation ``C`` is chosen by ``cv``-fold cross-validated log
    loss on the training texts, so the probabilities are calibrated by the
    same fit that combines the blocks (the LLM block's training features are
    out-of-prompt, see :class:`LLMScores`; no separate calibration split is
    needed). It is a plain classifier: ``predict_proba``, ``classes_``,
    :class:`~sklearn_llmconf.routing.ConfidenceRouter`,
    :class:`~sklearn.model_selection.GridSearchCV` (e.g. over
    ``logisticregressioncv__Cs`` or ``features__llm__llmscores__estimator__n_shots``)
    and :func:`~sklearn.model_selection.cross_val_score` work as with any
    other. 1-D text input only (for several columns build the same model
    with a :class:`~sklearn.compose.ColumnTransformer`).

    Cost: ``fit`` scores every training text once (model calls, through the
    LLM's ``cache``), ``predict*`` every new text once; each refit on other
    texts (cross-validation folds) has other demonstrations, hence other
    prompts. See :ref:`hybrid` for when it beats the LLM or TF-IDF alone.

    Parameters
    ----------
    llm : LLMClassifier or None, default=None
        The LLM whose log-scores are a feature block (its ``calibration`` is
        ignored: the logistic regression calibrates). None:
        ``LLMClassifier()``.
    embeddings : bool, "auto" or transformer, default="auto"
        Add a sentence-embedding block. ``"auto"``: :class:`SentenceEmbedder`
        when the ``embeddings`` extra is installed; True: require it; a
        transformer: use that one.
    Cs : int or list of float, default=10
        Candidate inverse regularisation strengths (``LogisticRegressionCV``).
    cv : int or cross-validation generator, default=5
        Folds choosing ``C``.
    max_iter : int, default=2000

    Returns
    -------
    model : Pipeline
    """
    blocks = [("tfidf", TfidfVectorizer(sublinear_tf=True))]
    if isinstance(embeddings, BaseEstimator):
        blocks.append(("embeddings", embeddings))
    elif embeddings is True or (embeddings == "auto" and embeddings_available()):
        blocks.append(("embeddings", SentenceEmbedder()))
    elif embeddings not in (False, "auto"):
        raise ValueError(
            f"embeddings must be True, False, 'auto' or a transformer; got "
            f"{embeddings!r}."
        )
    blocks.append(("llm", make_pipeline(LLMScores(llm), StandardScaler())))
    return Pipeline([
        ("features", FeatureUnion(blocks)),
        ("logisticregressioncv", logistic_cv(
            Cs=Cs, cv=cv, scoring="neg_log_loss", max_iter=max_iter)),
    ])
