"""The hybrid: classical text features and the LLM's scores, stacked."""

from __future__ import annotations

from sklearn.base import BaseEstimator
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion, make_pipeline
from sklearn.preprocessing import StandardScaler

from .._classifier import LLMClassifier
from ..backends import LlamaCppBackend
from ._embeddings import SentenceEmbedder, embeddings_available
from ._llama_embeddings import LlamaEmbedder, llama_embeddings_available
from ._multilabel import MultiLabelStackingClassifier
from ._scores import LLMScores
from ._setfit import SetFitBlock
from ._stacking import BlockStackingClassifier
from ._text import JoinColumns

__all__ = ["llm_blocks", "make_hybrid_classifier"]


def llm_blocks(llm) -> list:
    """``[(block name, LLMClassifier or None), ...]`` of ``llm``'s value.

    One classifier (or None) is the block ``"llm"``; a list gives ``"llm"``,
    ``"llm2"``, ... to unnamed classifiers, in order.
    """
    if llm is None or isinstance(llm, LLMClassifier):
        return [("llm", llm)]
    if isinstance(llm, (str, bytes)) or not hasattr(llm, "__iter__"):
        raise TypeError(f"llm must be an LLMClassifier, a list of them or None; "
                        f"got {type(llm).__name__}.")
    out = []
    for i, item in enumerate(llm):
        name, classifier = (item if isinstance(item, tuple)
                            else ("llm" if i == 0 else f"llm{i + 1}", item))
        if not isinstance(classifier, LLMClassifier):
            raise TypeError(f"llm[{i}] must be an LLMClassifier; got "
                            f"{type(classifier).__name__}.")
        out.append((str(name), classifier))
    if not out:
        raise ValueError("llm is an empty list: give at least one LLMClassifier.")
    names = [n for n, _ in out]
    if len(set(names)) != len(names) or {"tfidf", "embeddings", "setfit"} & set(
            names):
        raise ValueError(f"LLM block names must be distinct and not 'tfidf', "
                         f"'embeddings' or 'setfit'; got {names}.")
    return out


def _llama_embedder(llm):
    """A :class:`LlamaEmbedder` of the LLM's own GGUF model, when the LLM runs
    on llama.cpp (the default backend, or a :class:`LlamaCppBackend`) and
    llama-cpp-python is installed; else None."""
    backend = None if llm is None else llm.backend
    if not llama_embeddings_available():
        return None
    if backend is None:
        return LlamaEmbedder()
    if isinstance(backend, LlamaCppBackend):
        return LlamaEmbedder(backend.model_path, n_threads=backend.n_threads)
    return None


def make_hybrid_classifier(llm=None, *, embeddings="auto", setfit=False, Cs=10,
                           cv=5, max_iter=2000, multilabel=False):
    """TF-IDF (+ sentence embeddings) + LLM scores, one model per block, stacked.

    The returned :class:`BlockStackingClassifier` is::

        BlockStackingClassifier(FeatureUnion(
            tfidf: JoinColumns() -> TfidfVectorizer(sublinear_tf=True),
            embeddings: JoinColumns() -> SentenceEmbedder(),  # when enabled
                        (or LlamaEmbedder() -> StandardScaler(), see below)
            setfit: JoinColumns() -> SetFitBlock(),  # setfit=True
            llm: LLMScores(llm) -> StandardScaler(),
            llm2: LLMScores(llm2) -> StandardScaler(), ...))  # several LLMs

    that is, a logistic regression per block with its own ``C`` (chosen by
    ``cv``-fold log loss), and a regularised multinomial logistic regression
    on their out-of-fold log-probabilities; of this stack and each block's
    model alone (as it is, or recalibrated) the one with the best
    cross-validated log loss is kept. One regression on all blocks side by
    side (the hybrid before; ``set_params(joint=True)`` adds it as a
    candidate) let the large TF-IDF block set the regularisation of the
    others: on BBC News at 200 labels it had log loss
    0.260 against 0.140 for embeddings + LR alone. The probabilities are
    calibrated by the same cross-validated fits that combine the blocks (the
    LLM block's training features are out-of-prompt, see
    :class:`LLMScores`; no separate calibration split is needed). It is a
    plain classifier: ``predict_proba``, ``classes_``,
    :class:`~sklearn_llmconf.routing.ConfidenceRouter`,
    :class:`~sklearn.model_selection.GridSearchCV` (e.g. over ``Cs`` or
    ``features__llm__llmscores__estimator__n_shots``) and
    :func:`~sklearn.model_selection.cross_val_score` work as with any other.
    X is 1-D texts, or several text columns (a 2-D array, a list of tuples,
    a DataFrame) filling the LLM prompt's named fields exactly as
    :class:`~sklearn_llmconf.LLMClassifier` takes them; the TF-IDF and
    embedding blocks read each row's columns joined by a line break
    (:class:`JoinColumns`).

    Cost: ``fit`` scores every training text once (model calls, through the
    LLM's ``cache``; the stacking folds reuse those scores), ``predict*``
    every new text once; each refit on other texts (outer cross-validation
    folds) has other demonstrations, hence other prompts. See :ref:`hybrid`
    for when it beats the LLM or TF-IDF alone.

    Parameters
    ----------
    llm : LLMClassifier, list of LLMClassifier or of (str, LLMClassifier), \
            or None, default=None
        The LLM whose log-scores are a feature block (its ``calibration`` is
        ignored: the logistic regression calibrates). None:
        ``LLMClassifier()``. A list: several LLMs (e.g. two checkpoints,
        ``LLMClassifier(backend=LlamaCppBackend(model_path="gemma3-270m"))``),
        each one block, stacked like the others, so the stack learns which
        model helps on the data; blocks are named ``"llm"``, ``"llm2"``, ...
        unless given as ``(name, classifier)`` pairs.
    embeddings : bool, "auto" or transformer, default="auto"
        Add a sentence-embedding block. ``"auto"``: :class:`SentenceEmbedder`
        when the ``embeddings`` extra is installed, else, when the (first) LLM
        runs on llama.cpp, :class:`LlamaEmbedder` of its own model (its
        mean-pooled hidden states, standardised: what a plain ``[local]``
        install has, no torch), else none. True: require the ``embeddings``
        extra; a transformer: use that one.
    setfit : bool or SetFitBlock, default=False
        Add a block of an encoder fine-tuned on the labels
        (:class:`SetFitBlock`, extra ``setfit``; cross-fitted on an inner
        3-fold split: a fit fine-tunes three times, each on two thirds of the
        texts, about twice one SetFit fit, and new texts get the mean of the
        three encoders' features). True:
        ``SetFitBlock()``; a :class:`SetFitBlock`: that one.
    Cs : int or list of float, default=10
        Candidate inverse regularisation strengths (``LogisticRegressionCV``),
        of each block's model and of the final one.
    cv : int or cross-validation generator, default=5
        Folds choosing each ``C`` and giving the out-of-fold probabilities.
    max_iter : int, default=2000
    multilabel : bool, default=False
        For several labels per text (an indicator ``Y``): a
        :class:`MultiLabelStackingClassifier` over the same blocks, which
        computes them once (the LLM scores each text once, every label from
        one prompt) and stacks them per label.

    Returns
    -------
    model : BlockStackingClassifier or MultiLabelStackingClassifier
    """
    blocks = [("tfidf", make_pipeline(JoinColumns(),
                                      TfidfVectorizer(sublinear_tf=True)))]
    if isinstance(embeddings, BaseEstimator):
        blocks.append(("embeddings", make_pipeline(JoinColumns(), embeddings)))
    elif embeddings is True or (embeddings == "auto" and embeddings_available()):
        blocks.append(("embeddings", make_pipeline(JoinColumns(), SentenceEmbedder())))
    elif embeddings == "auto" and (embedder := _llama_embedder(
            llm_blocks(llm)[0][1])) is not None:
        blocks.append(("embeddings", make_pipeline(JoinColumns(), embedder,
                                                   StandardScaler())))
    elif embeddings not in (False, "auto"):
        raise ValueError(
            f"embeddings must be True, False, 'auto' or a transformer; got "
            f"{embeddings!r}."
        )
    if setfit is True:
        blocks.append(("setfit", make_pipeline(JoinColumns(), SetFitBlock())))
    elif isinstance(setfit, BaseEstimator):
        blocks.append(("setfit", make_pipeline(JoinColumns(), setfit)))
    elif setfit is not False:
        raise ValueError(f"setfit must be True, False or a SetFitBlock; got "
                         f"{setfit!r}.")
    for name, classifier in llm_blocks(llm):
        blocks.append((name, make_pipeline(LLMScores(classifier), StandardScaler())))
    if multilabel:
        return MultiLabelStackingClassifier(FeatureUnion(blocks), Cs=Cs,
                                            final_Cs=Cs, cv=cv, max_iter=max_iter)
    return BlockStackingClassifier(FeatureUnion(blocks), Cs=Cs, final_Cs=Cs,
                                   cv=cv, max_iter=max_iter)
