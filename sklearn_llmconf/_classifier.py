"""LLMClassifier: a scikit-learn classifier that scores labels with a language model."""

from __future__ import annotations

import os
from dataclasses import replace
from numbers import Integral

import numpy as np
from scipy.special import log_softmax, softmax
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ._input import check_indicator, check_targets, is_indicator, rows_from_X
from .backends._base import Usage
from .cache import MemoryCache
from .cache._credentials import wrap_secret_url
from .calibration._infit import (
    InFitCalibration,
    ScoreCorrection,
    calibration_rows,
    fit_calibration,
)
from .calibration._multilabel import (
    MultiLabelCorrection,
    fit_label_calibration,
    multilabel_response,
)
from .calibration._priors import CONTENT_FREE_INPUTS, estimate_prior
from .prompts._demos import DemoPool, SimilarDemos
from .prompts._labels import (
    check_label_words,
    choose_label_separator,
    label_words,
    labels_text,
)
from .prompts._multilabel import (
    MULTILABEL_TEMPLATES,
    answer_text,
    label_set_index,
    multilabel_demos,
    multilabel_strings,
)
from .prompts._template import DEFAULT_TEMPLATE, PromptTemplate, shorten
from .scoring._engine import place, score_rows
from .scoring._failures import ScoredRows, apply_on_error, finite_rows
from .scoring._strategies import (
    STRATEGY_CLASSES,
    LogProbs,
    SelfConsistency,
    Verbalized,
    make_strategy,
    resolve_strategy,
)
from .utils._sklearn_compat import HasMethods, Interval, StrOptions, _fit_context
from .utils._warn import warn_external

__all__ = ["LLMClassifier"]

# Parameters that left the signature, and where each lives now (kept for one
# release: _put_moved_parameters puts a value given the old way there).
_MOVED = {
    "verbalizer": "prompt=PromptTemplate(..., verbalizer=...)",
    "demo_max_chars": "prompt=PromptTemplate(..., demo_max_chars=...)",
    "demo_embedder": "demo_selection=SimilarDemos(embedder=...)",
    "prior_correction": "calibration=InFitCalibration(prior_correction=...)",
    "max_calibration_samples": "calibration=InFitCalibration(max_samples=...)",
    "n_samples": "strategy=SelfConsistency(n_samples=...)",
    "sampling_temperature": "strategy=SelfConsistency(temperature=...)",
    "smoothing": "strategy=SelfConsistency(smoothing=...)",
    "max_new_tokens": "strategy=SelfConsistency(max_new_tokens=...) or "
                      "Verbalized(max_new_tokens=...)",
}


def _put_moved_parameters(clf, moved):
    """Put values of the parameters that moved where they live now, with a warning.

    A value that did nothing under the old signature (``n_samples`` with
    ``strategy="logprobs"``, ``demo_embedder`` with a fixed selection) is
    dropped, as it was ignored before.
    """
    unknown = sorted(set(moved) - set(_MOVED))
    if unknown:
        raise TypeError(f"LLMClassifier.__init__() got an unexpected keyword "
                        f"argument {unknown[0]!r}")
    warn_external(
        "These LLMClassifier parameters moved and will be removed in the next "
        "release: " + "; ".join(f"{name} -> {_MOVED[name]}" for name in moved)
        + ".", FutureWarning)
    prompt_moved = {k: moved[k] for k in ("verbalizer", "demo_max_chars") if k in moved}
    if prompt_moved:
        template = (clf.prompt if isinstance(clf.prompt, PromptTemplate) else
                    PromptTemplate(DEFAULT_TEMPLATE if clf.prompt is None
                                   else clf.prompt))
        clf.prompt = replace(template, **prompt_moved)
    embedder = moved.get("demo_embedder")
    if embedder is not None and clf.demo_selection in ("similar", "similar_stratified"):
        clf.demo_selection = SimilarDemos(
            embedder=embedder, stratified=clf.demo_selection == "similar_stratified")
    if "prior_correction" in moved or "max_calibration_samples" in moved:
        if isinstance(clf.calibration, str) and clf.calibration in ("contextual",
                                                                    "batch"):
            raise ValueError("calibration names a prior correction already; "
                             "pass calibration=InFitCalibration(...) alone.")
        calibration = (clf.calibration if isinstance(clf.calibration, InFitCalibration)
                       else InFitCalibration(method=clf.calibration))
        clf.calibration = clone(calibration).set_params(**{
            new: moved[old] for old, new in (("prior_correction", "prior_correction"),
                                             ("max_calibration_samples", "max_samples"))
            if old in moved})
    sampling = {new: moved[old] for old, new in (
        ("n_samples", "n_samples"), ("sampling_temperature", "temperature"),
        ("smoothing", "smoothing"), ("max_new_tokens", "max_new_tokens"))
        if moved.get(old) is not None}
    if not sampling:
        return
    strategy = clf.strategy
    if strategy == "auto":
        raise ValueError(
            "strategy='auto' with " + ", ".join(sorted(sampling)) + ": pass the "
            "strategy object instead, e.g. strategy=SelfConsistency(n_samples=20).")
    if strategy in ("consistency", "verbalized"):
        strategy = STRATEGY_CLASSES[strategy]()
    if isinstance(strategy, (SelfConsistency, Verbalized)):
        known = strategy.get_params()
        clf.strategy = clone(strategy).set_params(
            **{k: v for k, v in sampling.items() if k in known})


class LLMClassifier(ClassifierMixin, BaseEstimator):
    """Classify texts by scoring each label's probability with a language model.

    For every text, the prompt (instructions, optional few-shot demonstrations,
    the text) is sent to the backend, which returns the log-probability of each
    label's verbalization. Those are the classifier's log-scores: ``predict_proba``
    is their softmax over the labels and ``decision_function`` exposes them
    as logits, so scikit-learn's calibrators and :class:`TemperatureScaler` can
    rescale them.

    ``fit`` records the classes, validates the prompt against them, keeps
    ``n_shots`` labelled training texts as demonstrations and, by default
    (``calibration="auto"``), puts the other labelled texts to work: it scores
    up to 200 of them (model calls, cached) and fits a
    temperature and a per-class bias on their labels, which correct the
    model's preference for some label words. The probabilities, and the logits
    of ``decision_function``, then include that calibration; the raw scores
    are what ``calibration=None`` gives. ``fit`` decides how rows are scored,
    corrected and what a failed row becomes (``prompt``, ``n_shots``,
    ``demo_selection``, ``strategy``, ``calibration``, ``on_error``):
    changing those takes effect at the next ``fit``. ``backend``, ``cache``,
    ``batch_size``, ``n_jobs`` and ``progress`` are read at every scoring call.
    ``predict*`` changes no attribute but the counters of ``usage_``. With
    ``calibration=None`` (or ``"batch"``), ``fit`` makes no model call;
    ``"contextual"`` makes 3.

    Several labels per text: ``fit(X, Y)`` with ``Y`` a binary indicator
    matrix (a DataFrame's columns, or ``fit``'s ``classes``, name the
    labels) scores every label on its own from one prompt per text
    (``strategy=LogProbs(multilabel="label_vs_none")``, the default: each
    label word against ``"none"``; or ``"yes_no"``: ``"<label>: yes"``
    against ``"<label>: no"``), calibrates a slope and a bias
    per label shrunk toward shared ones, and then ``predict`` returns the
    ``(n, k)`` indicator matrix, ``predict_proba`` independent per-label
    probabilities, ``decision_function`` (and ``score_details``) per-label
    log-odds. The demonstrations show each text with its label set; without
    a ``prompt`` a multi-label template is used. See :ref:`multilabel`.

    Parameters that moved (``verbalizer`` and ``demo_max_chars`` to
    :class:`~sklearn_llmconf.PromptTemplate`; ``demo_embedder`` to
    :class:`~sklearn_llmconf.prompts.SimilarDemos`; ``prior_correction`` and
    ``max_calibration_samples`` to
    :class:`~sklearn_llmconf.calibration.InFitCalibration`; ``n_samples``,
    ``sampling_temperature``, ``smoothing`` and ``max_new_tokens`` to the
    strategy objects) are still accepted as keywords for one release, with a
    ``FutureWarning``, and put where they now live.

    Parameters
    ----------
    prompt : str or PromptTemplate, default=None
        Template with ``{text}`` (1-D X) or column-name placeholders (2-D X) and
        optionally ``{labels}``. Demonstrations are inserted before the line
        holding the first field placeholder. None uses :data:`DEFAULT_TEMPLATE`.
    backend : backend object, default=None
        Anything with ``score_labels(prompts, labels)`` (see
        :class:`~sklearn_llmconf.backends.BaseBackend`). None uses the embedded
        :class:`~sklearn_llmconf.backends.LlamaCppBackend` with its default model.
    n_shots : int, default=16
        Number of labelled demonstrations shown in each prompt. 0 makes a
        zero-shot classifier, whose ``fit`` needs no more than the classes.
        Fixed demonstrations are a prompt prefix shared by every text, which
        the embedded backend evaluates once, so more shots add little cost per
        text. The default was chosen by ``benchmarks/bench_defaults.py``
        (figures in :ref:`demonstrations`).
    demo_selection : {"stratified", "random", "similar", "similar_stratified"} \
            or SimilarDemos, default="stratified"
        How demonstrations are chosen. ``"stratified"`` and ``"random"`` pick one
        set at fit time (seeded by ``random_state``), shared by every prompt so
        that its evaluation is reused. ``"similar"`` takes the training texts
        nearest to each query (TF-IDF cosine); ``"similar_stratified"`` the
        nearest of each class in turn; a
        :class:`~sklearn_llmconf.prompts.SimilarDemos` sets the similarity
        (e.g. sentence embeddings). A training text equal to the query (after
        normalising case, punctuation and spaces) is never its demonstration.
        The nearest-neighbour selections share no prompt prefix between texts,
        so each text costs its whole prompt. ``"stratified"`` is the default by
        ``benchmarks/bench_defaults.py`` (figures in :ref:`demonstrations`).
    on_error : {"raise", "warn", "nan"}, default="raise"
        What happens to a row the backend could not score (failed request,
        labels not observed): raise a ``RuntimeError`` (no request is sent
        after the batch of ``batch_size`` rows that held the failed row; the
        batches answered before it are cached); ``"warn"``: give it
        uniform probabilities and warn with the count; ``"nan"``: give it NaN
        probabilities (``predict`` then refuses those rows). Failed rows are
        counted in ``usage_.failed_rows`` and never cached.
    calibration : {"auto", "temperature", "matrix", "contextual", "batch"}, \
            InFitCalibration or None, default="auto"
        How ``fit`` corrects the raw label scores; an
        :class:`~sklearn_llmconf.calibration.InFitCalibration` combines a
        label-free prior correction with a labelled calibrator and sets how
        many texts calibrate (``"auto"`` is ``InFitCalibration()``).
        ``"temperature"``: ``fit`` scores the training texts that are not
        demonstrations (at most ``max_samples``, 200, stratified by
        class, chosen with ``random_state``) with the fitted prompt, and fits
        on their labels a temperature ``T`` and a per-class bias ``b``; every
        later score becomes ``log_softmax(log p / T + b)``. ``"matrix"``: the
        same rows fit a regularised full affine map of the log-probabilities
        (matrix / Dirichlet calibration, Kull et al. 2019,
        :mod:`sklearn_llmconf.calibration._matrix`), ``log_softmax(log p @ W.T + b)``,
        its penalty chosen by 5-fold cross-validation. ``"auto"``: the two
        are compared by 5-fold cross-validated log loss on those rows and the
        matrix is kept only when it is more than 1 % lower (else the
        temperature, the simpler one); ``calibration_method_`` says which
        (chosen by ``benchmarks/bench_hybrid.py``). What follows holds for
        all three. No text is scored
        with itself as a demonstration (fixed demonstrations are left out of
        the calibration texts; ``"similar"`` selection never picks the query's
        own text). The bias is shrunk toward the label-free batch prior of
        the calibration scores, with a strength chosen by 5-fold
        cross-validation on them (``TemperatureScaler(bias=True)``'s
        ``bias_shrinkage="auto"``), so that many classes with few labels
        each do not overfit. Cost: one model call per calibration text, in
        ``usage_`` after ``fit``; their scores are cached (in ``cache``, or
        in memory when ``cache`` is None), so ``predict*`` on the same texts
        makes no new call. Fewer than 10 scorable calibration texts (e.g.
        ``n_shots`` as large as the training set): a warning, ``T = 1`` and
        the label-free batch prior of those texts; none: a warning and the
        raw scores. Failed calibration rows are left out (counted in
        ``usage_.failed_rows``). Applied after the prior correction and
        before the ``on_error`` policy, so failed rows stay uniform / NaN.
        ``"contextual"`` and ``"batch"``: a label-free prior correction only
        (see :class:`~sklearn_llmconf.calibration.InFitCalibration`).
        ``None``: the raw label scores. ``"auto"`` is the default by
        ``benchmarks/bench_defaults.py`` (figures in :ref:`default_calibration`).
    cache : str, path-like, ResponseCache or None, default=None
        Persistent response cache (an SQLite file). Scores are stored per
        (backend identity, rendered prompt, labels), so cross-validation,
        grid search and calibration never pay twice for the same prompt, and an
        interrupted run resumes where it stopped. Read at every scoring call
        (``fit`` and ``predict*``): it can be changed after ``fit``.
    batch_size : int, default=64
        Prompts sent to the backend per call; the cache is written after each.
        Read at every scoring call.
    n_jobs : int or None, default=None
        Parallel workers (joblib) scoring chunks of the prompts that the cache
        does not hold: None is 1 unless inside ``joblib.parallel_config``, -1
        all cores (or every worker of a Dask/Ray cluster under
        ``parallel_config(backend="dask")``). Each worker loads the embedded
        model once, with ``cores // n_jobs`` threads by default; the parent
        writes the cache and sums ``usage_``. Results are identical to
        ``n_jobs=1``. Read at every scoring call. See :ref:`scaling`.
    progress : bool, default=False
        Show a progress bar while scoring (tqdm when installed). Read at every
        scoring call.
    random_state : int, RandomState instance or None, default=None
        Seeds demonstration sampling, and the samples of the ``"verbalized"``
        and ``"consistency"`` strategies (None: unseeded).
    strategy : {"logprobs", "verbalized", "consistency", "auto"}, LogProbs, \
            Verbalized or SelfConsistency, default="logprobs"
        Where the log-scores come from, an object owning its settings:
        :class:`~sklearn_llmconf.scoring.LogProbs` (``"logprobs"``): the labels'
        log-probabilities. :class:`~sklearn_llmconf.scoring.Verbalized`
        (``"verbalized"``): the model states its label and the probability that
        it is correct in JSON; a row whose answer cannot be parsed is a failed
        row (``on_error``). :class:`~sklearn_llmconf.scoring.SelfConsistency`
        (``"consistency"``): sampled answers vote, with additive smoothing;
        answers naming no label are counted in ``usage_.unmatched_answers``.
        A name stands for the object with its default settings. ``"auto"``:
        log-probs when the backend exposes them, else consistency when it can
        sample, else verbalized. See :mod:`sklearn_llmconf.scoring._strategies`
        for the exact formulas.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Sorted class labels (several labels per text: the label names in
        column order).
    label_words_ : list of str
        Verbalization of each class, in ``classes_`` order.
    prompt_template_ : PromptTemplate
        The validated template, with the ``label_separator`` it uses (chosen
        from the label words when the template's is None).
    demos_ : list of (tuple of str, str)
        The fixed demonstrations (field values, label word); empty for
        ``"similar"`` selection, which picks them per text.
    usage_ : Usage
        Calls, cache hits, tokens and failed rows of every scoring by this
        estimator since ``fit`` (``fit``'s own calls included). Added to under
        a lock, so threads predicting with one estimator are all counted;
        ``n_jobs`` workers report to the parent, which adds their counts here.
        A clone starts from zero at its own ``fit`` (meta-estimators such as
        ``CalibratedClassifierCV`` count in their clones).
    calibration_indices_ : ndarray of int
        Rows of ``fit``'s X whose scores and labels fitted the calibration
        (empty with ``calibration=None``).
    calibration_temperature_ : float or ndarray of shape (n_labels,)
        Fitted temperature ``T`` (``calibration="auto"`` only); several
        labels per text: one per label, the inverse of its slope.
    calibration_bias_ : ndarray of shape (n_classes,)
        Fitted per-class bias ``b`` (``calibration="auto"`` only), or per
        label.
    calibration_method_ : {"temperature", "matrix", "per_label"}
        The in-fit calibrator used (with ``calibration`` set).
    calibration_matrix_ : ndarray of shape (n_classes, n_classes) or None
        The matrix ``W`` of the matrix calibration, None for the temperature:
        scores become ``log_softmax(clip(log p) @ W.T + b)`` (``T = 1``).
    content_free_prior_ : ndarray of shape (n_classes,)
        Mean label probabilities of the content-free inputs; only with the
        ``"contextual"`` prior correction.
    strategy_ : str
        The strategy used: ``strategy``, or what ``"auto"`` chose.
    n_features_in_ : int
        Number of columns seen in fit, for 2-D X only.
    feature_names_in_ : ndarray of str
        Column names seen in fit, for 2-D X with string column names only.

    References
    ----------
    .. [1] Z. Zhao, E. Wallace, S. Feng, D. Klein, S. Singh. "Calibrate Before
       Use: Improving Few-Shot Performance of Language Models", ICML 2021.
    .. [2] H. Zhou, X. Wan, L. Proleev, D. Mincu, J. Chen, K. Heller, S. Roy.
       "Batch Calibration: Rethinking Calibration for In-Context Learning and
       Prompt Engineering", ICLR 2024.

    Examples
    --------
    >>> from sklearn_llmconf import LLMClassifier
    >>> clf = LLMClassifier(n_shots=4, random_state=0)  # doctest: +SKIP
    >>> clf.fit(X_train, y_train).predict_proba(X_test)  # doctest: +SKIP
    """

    _parameter_constraints: dict = {
        "prompt": [str, PromptTemplate, None],
        "backend": [HasMethods(["score_labels"]), HasMethods(["generate"]), None],
        "n_shots": [Interval(Integral, 0, None, closed="left")],
        "demo_selection": [
            StrOptions({"stratified", "random", "similar", "similar_stratified"}),
            SimilarDemos,
        ],
        "strategy": [
            StrOptions({"logprobs", "verbalized", "consistency", "auto"}),
            LogProbs, Verbalized, SelfConsistency,
        ],
        "calibration": [
            StrOptions({"auto", "temperature", "matrix", "contextual", "batch"}),
            InFitCalibration, None,
        ],
        "on_error": [StrOptions({"raise", "warn", "nan"})],
        "cache": [str, os.PathLike, HasMethods(["get_many", "set_many"]), None],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "n_jobs": [Integral, None],
        "progress": ["boolean"],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        prompt=None,
        *,
        backend=None,
        n_shots=16,
        demo_selection="stratified",
        strategy="logprobs",
        calibration="auto",
        on_error="raise",
        cache=None,
        batch_size=64,
        n_jobs=None,
        progress=False,
        random_state=None,
        **moved,
    ):
        self.prompt = prompt
        self.backend = backend
        self.n_shots = n_shots
        self.demo_selection = demo_selection
        self.strategy = strategy
        self.calibration = calibration
        self.on_error = on_error
        self.cache = wrap_secret_url(cache)  # a password is masked, not pickled
        self.batch_size = batch_size
        self.n_jobs = n_jobs
        self.progress = progress
        self.random_state = random_state
        if moved:
            _put_moved_parameters(self, moved)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = True
        tags.classifier_tags.poor_score = True
        tags.classifier_tags.multi_label = True
        tags.target_tags.multi_output = True
        return tags

    # -- input validation ------------------------------------------------------
    def _template(self) -> PromptTemplate:
        if isinstance(self.prompt, PromptTemplate):
            return self.prompt
        if self.prompt is None and getattr(self, "_multilabel", None):
            return PromptTemplate(MULTILABEL_TEMPLATES[self._multilabel])
        return PromptTemplate(DEFAULT_TEMPLATE if self.prompt is None else self.prompt)

    def _validate_rows(self, X, *, reset: bool) -> list[tuple[str, ...]]:
        """Turn X into one tuple of field values per row, with clear errors."""
        template = self._template() if reset else self.prompt_template_
        return rows_from_X(self, X, template.fields, reset=reset)

    # -- fit -------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, *, classes=None):
        """Record the classes, validate the prompt, keep demonstrations.

        With ``calibration="auto"`` (the default) scores up to 200
        (``InFitCalibration.max_samples``) training texts that are not
        demonstrations and fits the calibration on their labels (one model
        call each, cached); the ``"contextual"`` prior correction adds 3
        calls. Otherwise no model call.

        Parameters
        ----------
        X : sequence of str of shape (n_samples,) or array-like of shape \
                (n_samples, n_columns)
            Texts, or columns filling the prompt's named placeholders.
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels, or a 0/1 indicator matrix (several labels per text;
            a DataFrame's column names are the labels).
        classes : array-like of shape (n_classes,), default=None
            All the classes the prompt offers, when some have no example in
            ``y`` (as in ``partial_fit``): such a class is a label of the
            prompt with no demonstration and no calibration row. None: the
            classes of ``y``. Used by :class:`~sklearn_llmconf.hybrid.LLMScores`
            to score a class's only text with a prompt that does not show it.
            With an indicator matrix ``y``: the names of its columns, in
            order (default: the column numbers).

        Returns
        -------
        self : LLMClassifier
        """
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y "
                "is None."
            )
        # several labels per text: an indicator matrix (see prompts/_multilabel.py)
        self._multilabel = self._multilabel_design(y)
        template = self._template()
        rows = self._validate_rows(X, reset=True)
        if self._multilabel:
            Y, self.classes_, self._y_dtype = check_indicator(y, len(rows), classes)
            y_index = label_set_index(Y)
        else:
            Y = None
            y = check_targets(y, len(rows))
            self.classes_, y_index = np.unique(y, return_inverse=True)
        if classes is not None and Y is None:
            given = np.unique(np.asarray(classes).ravel())
            self.classes_ = np.unique(np.concatenate([given, self.classes_]))
            if len(self.classes_) != len(given):
                extra = np.setdiff1d(np.unique(y), given)
                raise ValueError(
                    f"y holds the classes {extra.tolist()!r} that classes does "
                    "not list."
                )
            y_index = np.searchsorted(self.classes_, y)
        if len(self.classes_) < 2:
            raise ValueError(
                "The classifier needs samples of at least 2 classes in the data, "
                f"but the data contains only one class: {self.classes_[0]!r}."
            )
        self.label_words_ = label_words(template.verbalizer, self.classes_)
        # label_separator=None: the fitted template says which one it chose.
        template = replace(template, label_separator=choose_label_separator(
            self.label_words_, template.label_separator))
        self.prompt_template_ = template
        check_label_words(self.label_words_, template.label_separator)
        self._labels_text = labels_text(template.verbalizer, self.label_words_,
                                        self.classes_, template.label_separator)
        self._fit_demos(rows, y_index if Y is None else Y)
        self._keep_default_backend()
        spec = self.strategy
        name = spec if isinstance(spec, str) else spec.name
        self.strategy_ = resolve_strategy(name, self._get_backend())
        if self._multilabel and self.strategy_ != "logprobs":
            raise ValueError(
                "A multi-label y is scored with log-probabilities, which this "
                f"backend does not expose (strategy='auto' chose "
                f"{self.strategy_!r}).")
        if isinstance(spec, str) or spec.name != self.strategy_:
            spec = STRATEGY_CLASSES[self.strategy_]()
        calibration = InFitCalibration.from_param(self.calibration)
        for owner in (spec, calibration):
            owner._validate_params()
        rs = self.random_state
        # An int seeds sampling as given, so cached samples are reusable.
        seed = (
            None if rs is None else int(rs) if isinstance(rs, Integral)
            else int(check_random_state(rs).randint(2**31 - 1))
        )
        # fit decides how rows are scored and corrected; predict* only reads.
        self._strategy = make_strategy(
            spec, label_words=self.label_words_, classes=self.classes_, seed=seed)
        self._on_error = self.on_error
        self.usage_ = Usage()
        prior = calibration.prior_correction
        self._correction = ScoreCorrection(prior=prior)
        if self._multilabel:
            if prior is not None or calibration.method == "matrix":
                raise ValueError(
                    "A multi-label y is calibrated per label (temperature and "
                    "bias): calibration='matrix' and the prior corrections "
                    "('contextual', 'batch') are for one label per text.")
            self._correction = MultiLabelCorrection(self._multilabel,
                                                    len(self.classes_))
        self.__dict__.pop("content_free_prior_", None)
        if prior == "contextual":
            self.content_free_prior_ = self._content_free_prior()
            self._correction = ScoreCorrection(
                prior="contextual", content_free_prior=self.content_free_prior_
            )
        self._fit_calibration(rows, y_index, calibration, Y)
        return self

    def _multilabel_design(self, y):
        """The scoring layout of a multi-label ``y`` (None for one label per text)."""
        if not is_indicator(y):
            return None
        spec = self.strategy
        if isinstance(spec, str) and spec in ("logprobs", "auto"):
            return LogProbs().multilabel
        if isinstance(spec, LogProbs):
            spec._validate_params()
            return spec.multilabel
        raise ValueError(
            "A multi-label y (an indicator matrix) is scored label by label with "
            f"log-probabilities; strategy={spec!r} is for one label per text. "
            "Use strategy=LogProbs(multilabel=...).")

    def _fit_calibration(self, rows, y_index, calibration, Y=None) -> None:
        """``calibration="auto"``: T and bias from training texts that are not demos."""
        for name in ("calibration_temperature_", "calibration_bias_",
                     "calibration_matrix_", "calibration_method_"):
            self.__dict__.pop(name, None)
        self._memory_cache = None
        self.calibration_indices_ = np.empty(0, dtype=int)
        if calibration.method is None:
            return
        # fit's scores stay in memory when there is no response cache
        if self.cache is None:
            self._memory_cache = MemoryCache()
        idx = calibration_rows(
            rows, y_index, [demo for demo, _ in self.demos_],
            calibration.max_samples, check_random_state(self.random_state),
        )
        log_probs = np.empty((0, len(self._scored_labels())))
        if len(idx):
            scores, _ = self._score_rows([rows[i] for i in idx])
            log_probs = self._correction.apply(scores.log_probs, scores.failed,
                                               len(self.classes_))
        if Y is not None:  # several labels per text: one slope and bias each
            slope, bias, _, _ = fit_label_calibration(log_probs, Y[idx])
            with np.errstate(divide="ignore"):
                self.calibration_temperature_ = 1.0 / slope
            self.calibration_bias_ = bias
            self.calibration_method_ = "per_label"
            self._correction = replace(self._correction, slope=slope, bias=bias)
            self.calibration_indices_ = idx
            if self._memory_cache is not None:
                self._memory_cache.frozen = True
            return
        (self.calibration_temperature_, self.calibration_bias_, _,
         self.calibration_matrix_) = fit_calibration(
            log_probs, y_index[idx], len(self.classes_), calibration.method)
        self.calibration_method_ = (
            "temperature" if self.calibration_matrix_ is None else "matrix")
        self._correction = replace(self._correction,
                                   temperature=self.calibration_temperature_,
                                   bias=self.calibration_bias_,
                                   matrix=self.calibration_matrix_)
        self.calibration_indices_ = idx
        if self._memory_cache is not None:
            self._memory_cache.frozen = True

    def _fit_demos(self, rows, y_index) -> None:
        """Set ``demos_`` (fixed selection) or the pool drawn from per text."""
        self.demos_ = []
        self._demo_pool = None
        if not self.n_shots:
            return
        # A text rejected as a query (a fake answer) is no demonstration either.
        clean = [i for i, reason in enumerate(self._fake_answer_reasons(rows))
                 if reason is None]
        selection = self.demo_selection
        if self._multilabel:
            if selection not in ("stratified", "random"):
                raise ValueError(
                    "A multi-label y takes demo_selection='stratified' or "
                    f"'random'; got {selection!r}.")
            Y = y_index[clean]
            idx = multilabel_demos(Y, self.n_shots, selection,
                                   check_random_state(self.random_state))
            self.demos_ = [(rows[clean[i]], answer_text(
                self._multilabel, self.label_words_, Y[i])) for i in idx]
            return
        embedder = getattr(selection, "embedder", None)
        pool = DemoPool([rows[i] for i in clean], np.asarray(y_index)[clean],
                        len(self.classes_),
                        embedder=None if embedder is None else clone(embedder))
        if selection in ("stratified", "random"):
            rng = check_random_state(self.random_state)
            idx = pool.fixed(self.n_shots, selection, rng)
            self.demos_ = [
                (pool.rows[i], self.label_words_[pool.y_index[i]]) for i in idx
            ]
        else:
            self._demo_pool = pool.fit_similarity()

    def _content_free_prior(self) -> np.ndarray:
        """Score the content-free inputs under the fitted prompt; average them."""
        if self._demo_pool is not None:
            raise ValueError(
                "prior_correction='contextual' needs one fixed set of "
                f"demonstrations, but demo_selection={self.demo_selection!r} picks "
                "them per text (each text would have its own content-free prior). "
                "Use prior_correction='batch', or demo_selection='stratified'."
            )
        n_fields = len(self.prompt_template_.fields)
        rows = [(text,) * n_fields for text in CONTENT_FREE_INPUTS]
        scores, _ = self._score_rows(rows)
        if scores.failed.all():
            reason = next((e for e in scores.errors if e is not None),
                          "labels not observed")
            raise RuntimeError(
                "prior_correction='contextual': none of the content-free inputs "
                f"could be scored (first reason: {reason})."
            )
        return estimate_prior(scores.log_probs)

    # -- scoring ---------------------------------------------------------------
    def _keep_default_backend(self):
        """Build the default backend once, in fit (or on unpickling): predict
        reads it and changes nothing."""
        self.__dict__.pop("_default_backend", None)
        if self.backend is None:
            from .backends.llamacpp._backend import LlamaCppBackend

            self._default_backend = LlamaCppBackend()

    def get_backend(self):
        """The backend this classifier scores with.

        ``backend`` when one is set (read at every scoring call, so a backend
        set after ``fit`` is the one returned), otherwise the embedded default
        that ``fit`` built and keeps (a fresh one before ``fit``).

        Returns
        -------
        backend : BaseBackend
        """
        return self._get_backend()

    def render_prompts(self, X, *, as_fields=False) -> list[str]:
        """The prompt text the classifier sends for each row of X.

        What the model reads: the instructions, the row's demonstrations
        (the same for every row unless ``demo_selection`` picks them per
        row) and the row's fields. No model call.

        Parameters
        ----------
        X : sequence of str of shape (n_samples,) or array-like of shape \
                (n_samples, n_columns)
            Rows as ``predict`` takes them; with ``as_fields=True``, one
            sequence of field values per row, in the order of
            ``prompt_template_.fields`` (whatever columns ``fit`` saw).
        as_fields : bool, default=False
            Whether X holds field values rather than columns.

        Returns
        -------
        prompts : list of str of length n_samples
        """
        check_is_fitted(self)
        if as_fields:
            rows = [tuple(str(v) for v in row) for row in X]
            n_fields = len(self.prompt_template_.fields)
            bad = [i for i, row in enumerate(rows) if len(row) != n_fields]
            if bad:
                raise ValueError(
                    f"as_fields=True: row {bad[0]} has {len(rows[bad[0]])} values, "
                    f"the prompt has {n_fields} fields "
                    f"{list(self.prompt_template_.fields)}.")
        else:
            rows = self._validate_rows(X, reset=False)
        return [p.text for p in self._render(rows)]

    def _get_backend(self):
        if self.backend is not None:
            return self.backend
        backend = getattr(self, "_default_backend", None)
        if backend is None:  # not fitted yet (a fitted one keeps it)
            from .backends.llamacpp._backend import LlamaCppBackend

            backend = LlamaCppBackend()
        return backend

    def _render(self, rows) -> list:
        """The prompt of each row: instructions, its demonstrations, its fields."""
        template = self.prompt_template_
        fields = template.fields

        def as_fields(demos):  # cut to demo_max_chars once per demonstration set
            return [({f: shorten(v, template.demo_max_chars)
                      for f, v in zip(fields, d)}, w)
                    for d, w in demos]

        if self._demo_pool is not None:
            picks = self._demo_pool.nearest(
                rows, self.n_shots,
                stratified=(self.demo_selection == "similar_stratified"
                            or getattr(self.demo_selection, "stratified", False)),
            )
            pool = self._demo_pool
            demo_sets = [
                as_fields((pool.rows[i], self.label_words_[pool.y_index[i]])
                          for i in idx)
                for idx in picks
            ]
        else:
            demo_sets = [as_fields(self.demos_)] * len(rows)
        return [
            template.render(
                dict(zip(fields, row)), self.label_words_, demos,
                labels_text=self._labels_text,
            )
            for row, demos in zip(rows, demo_sets)
        ]

    def _score_rows(self, rows, stop_on_failure=False):
        """Raw scores of validated rows through the engine (NaN rows failed).

        The only place that counts failed rows in ``usage_``. With
        ``stop_on_failure`` nothing more is sent once a batch has a failed row.
        """
        reasons = self._fake_answer_reasons(rows)
        neutral = self.prompt_template_.on_fake_answer == "neutralize"
        keep = [i for i, reason in enumerate(reasons) if reason is None or neutral]
        scores = score_rows(
            self._get_backend(),
            [rows[i] if reasons[i] is None else self._neutralized(rows[i])
             for i in keep],
            self._render,
            self._scored_labels(),
            strategy=self._strategy,
            cache=self.cache if self.cache is not None
            else getattr(self, "_memory_cache", None),
            batch_size=self.batch_size,
            progress=self.progress, usage=self.usage_, n_jobs=self.n_jobs,
            stop_on_failure=stop_on_failure,
        )
        if neutral:
            self._warn_fake_answers(reasons)
            suspicions = reasons
        else:
            suspicions = [None] * len(rows)
            if len(keep) != len(rows):
                scores = place(scores, keep, len(rows), reasons)
        self.usage_ += Usage(failed_rows=int(scores.failed.sum()))
        return scores, suspicions

    def _scored_labels(self) -> list:
        """The strings the backend scores after each prompt."""
        template = self.prompt_template_
        design = getattr(self, "_multilabel", None)
        if design:
            return multilabel_strings(design, template.label_prefix,
                                      self.label_words_, template.demo_separator)
        return template.label_strings(self.label_words_)

    def _fake_answer_reasons(self, rows) -> list:
        """Per row: why its text is suspected of injecting an answer, or None."""
        template = self.prompt_template_
        fields = template.fields
        action = ("scored with it removed" if template.on_fake_answer == "neutralize"
                  else "not sent to the model")
        reasons = []
        for row in rows:
            found = template.fake_answer(dict(zip(fields, row)), self.label_words_)
            reasons.append(None if found is None else (
                f"the text writes an answer with a label ({found!r}), like a fake "
                f"demonstration (prompt injection); {action} "
                "(PromptTemplate(reject_fake_answers=False) scores such texts as "
                "they are)"
            ))
        return reasons

    def _neutralized(self, row) -> tuple:
        """``row`` with its fake answers and prompt line markers removed."""
        fields = self.prompt_template_.fields
        values = self.prompt_template_.neutralize(dict(zip(fields, row)),
                                                  self.label_words_)
        return tuple(values[f] for f in fields)

    def _warn_fake_answers(self, reasons) -> None:
        """One warning for the rows scored with their fake answers removed."""
        flagged = [r for r in reasons if r is not None]
        if flagged:
            warn_external(
                f"{len(flagged)} of {len(reasons)} rows hold a fake answer "
                f"(first reason: {flagged[0]})."
            )

    def score_details(self, X) -> ScoredRows:
        """Log-probabilities of X with the rows that failed and why.

        What :meth:`predict_log_proba` computes before the ``on_error``
        policy: failed rows stay NaN and never raise, each with its reason,
        next to the per-row diagnostics the backend reported.

        Parameters
        ----------
        X : sequence of str or array-like of shape (n_samples, n_columns)

        Returns
        -------
        details : ScoredRows
            ``log_proba`` (n_samples, n_classes), ``failed`` (n_samples,),
            ``reasons`` (list), ``extra`` (dict of per-row arrays, NaN where
            unknown, e.g. ``"uncovered_mass"``; rows answered from the cache
            have NaN).
        """
        return self._details(X)

    def _details(self, X, stop_on_failure=False) -> ScoredRows:
        """:meth:`score_details`, optionally sending nothing after a failed row."""
        check_is_fitted(self)
        rows = self._validate_rows(X, reset=False)
        scores, suspicions = self._score_rows(rows, stop_on_failure)
        failed = scores.failed
        log_probs = self._correction.apply(scores.log_probs, failed,
                                           len(self.classes_))
        reasons = [
            (e if e is not None else "labels not observed") if f else s
            for f, e, s in zip(failed, scores.errors, suspicions)
        ]
        extra = dict(scores.extra)
        if any(s is not None for s in suspicions):
            extra["fake_answer"] = np.array([s is not None for s in suspicions],
                                            dtype=float)
        return ScoredRows(log_probs, failed, reasons, extra)

    def _score(self, X):
        """Log-scores after the ``on_error`` policy, and the failed rows' details."""
        check_is_fitted(self)
        # Under "raise" the rows after a failed one would be paid for and
        # thrown away (e.g. every batch of a server outage).
        details = self._details(X, stop_on_failure=self._on_error == "raise")
        return apply_on_error(details, self._on_error), details

    def _predict_with_failures(self, X, method):
        """See :func:`sklearn_llmconf.scoring.predict_with_failures`."""
        log_scores, details = self._score(X)
        # A row scored with a suspected fake answer removed keeps its scores
        # here, but a wrapper must not trust it blindly: it counts as failed.
        suspect = np.array([r is not None for r in details.reasons], dtype=bool)
        return (self._respond(log_scores, method), details.failed | suspect,
                details.reasons)

    def _respond(self, log_scores, method):
        """The output of the response ``method`` from the log-scores."""
        if getattr(self, "_multilabel", None):
            return multilabel_response(log_scores, method, self._y_dtype)
        if method == "predict":
            failed = ~finite_rows(log_scores)
            if failed.any():
                raise ValueError(
                    f"{int(failed.sum())} rows have no score (on_error='nan'); use "
                    "predict_proba and handle the NaN rows, or set on_error='warn'."
                )
            return self.classes_[np.argmax(log_scores, axis=1)]
        if method == "predict_proba":
            return softmax(log_scores, axis=1)
        log_proba = log_softmax(log_scores, axis=1)
        if method == "decision_function" and len(self.classes_) == 2:
            return log_proba[:, 1] - log_proba[:, 0]
        return log_proba

    def predict_log_proba(self, X):
        """Log of the class probabilities.

        Parameters
        ----------
        X : sequence of str or array-like of shape (n_samples, n_columns)

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Columns in ``classes_`` order.
        """
        return self._respond(self._score(X)[0], "predict_log_proba")

    def predict_proba(self, X):
        """Class probabilities: the softmax of the labels' log-probabilities.

        Parameters
        ----------
        X : sequence of str or array-like of shape (n_samples, n_columns)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns in ``classes_`` order; rows sum to 1 (NaN rows only with
            ``on_error="nan"``).
        """
        return self._respond(self._score(X)[0], "predict_proba")

    def decision_function(self, X):
        """Log-scores: the logits that calibrators rescale.

        Parameters
        ----------
        X : sequence of str or array-like of shape (n_samples, n_columns)

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
            Binary: the log-odds of ``classes_[1]`` against ``classes_[0]``.
            Multiclass: log-probabilities normalised over the classes.
        """
        return self._respond(self._score(X)[0], "decision_function")

    def predict(self, X):
        """Most probable class of each text.

        Parameters
        ----------
        X : sequence of str or array-like of shape (n_samples, n_columns)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        return self._respond(self._score(X)[0], "predict")

    def set_params(self, **params):
        """Set parameters; a database URL's password is masked as in ``__init__``."""
        if "cache" in params:
            params["cache"] = wrap_secret_url(params["cache"])
        return super().set_params(**params)

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_default_backend", None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "classes_" in state and state.get("backend", ...) is None:
            self._keep_default_backend()

