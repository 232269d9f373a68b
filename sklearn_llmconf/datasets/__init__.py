"""Small labelled text data sets, bundled, for examples, tests and benchmarks.

Each loader returns a :class:`~sklearn.utils.Bunch` shaped like scikit-learn's
``load_iris`` / ``fetch_20newsgroups`` (or ``(X, y)`` with ``return_X_y=True``).
``X`` is a 1-D object array of ``str``; ``y`` holds class names such as
``"spam"`` (:func:`load_movie_genres` and :func:`load_word_emotions`: a 0/1
matrix, several labels per text). Every data set is de-duplicated on a
normalised text, so splits and cross-validation do not leak a text into its
own test fold. Provenance, licences and citations:
``sklearn_llmconf/datasets/data/README.md`` and each loader's ``DESCR``.
"""

from ._base import (
    load_bbc_news,
    load_movie_genres,
    load_question_types,
    load_rotten_tomatoes,
    load_sms_spam,
    load_trec,
    load_word_emotions,
)

__all__ = [
    "load_bbc_news",
    "load_movie_genres",
    "load_question_types",
    "load_rotten_tomatoes",
    "load_sms_spam",
    "load_trec",
    "load_word_emotions",
]
