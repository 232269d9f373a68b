"""Tests for sklearn_llmconf.datasets: counts, de-duplication, API variants."""

from collections import Counter

import numpy as np
import pytest
from sklearn.utils import Bunch

from sklearn_llmconf.datasets import (
    load_bbc_news,
    load_question_types,
    load_rotten_tomatoes,
    load_sms_spam,
    load_trec,
)
from sklearn_llmconf.datasets._base import QUESTION_TYPE_NAMES
from sklearn_llmconf.prompts._text import dedup_records, normalize_text

# loader, kwargs, exact class counts after de-duplication, licence words in DESCR
CASES = [
    (load_sms_spam, {}, {"ham": 4502, "spam": 629}, "CC BY 4.0"),
    (
        load_trec,
        {},
        {"ABBR": 86, "DESC": 1151, "ENTY": 1245, "HUM": 1214, "LOC": 824, "NUM": 855},
        "Licence",
    ),
    (
        load_bbc_news,
        {},
        {
            "business": 502,
            "entertainment": 369,
            "politics": 403,
            "sports": 502,
            "tech": 346,
        },
        "non-commercial",
    ),
    (load_rotten_tomatoes, {}, {"fresh": 7367, "rotten": 5382}, "Licence"),
]
IDS = ["sms_spam", "trec", "bbc_news", "rotten_tomatoes"]


@pytest.mark.parametrize("loader, kwargs, counts, licence", CASES, ids=IDS)
def test_bunch_counts_and_content(loader, kwargs, counts, licence):
    bunch = loader(**kwargs)
    assert isinstance(bunch, Bunch)
    n = sum(counts.values())
    assert bunch.data.shape == (n,) and bunch.target.shape == (n,)
    assert bunch.data.dtype == object and bunch.target.dtype == object
    assert dict(Counter(bunch.target.tolist())) == counts
    assert bunch.target_names.tolist() == sorted(counts)
    assert bunch.frame is None
    assert bunch.feature_names == ["text"]
    assert licence in bunch.DESCR and "Citation" in bunch.DESCR
    assert all(isinstance(t, str) and t.strip() == t and t for t in bunch.data)


@pytest.mark.parametrize("loader, kwargs, counts, licence", CASES, ids=IDS)
def test_no_duplicate_texts_after_normalisation(loader, kwargs, counts, licence):
    X, _ = loader(return_X_y=True, **kwargs)
    keys = [normalize_text(t) for t in X]
    assert len(set(keys)) == len(keys)
    assert all(keys)


@pytest.mark.parametrize("loader, kwargs, counts, licence", CASES, ids=IDS)
def test_return_X_y(loader, kwargs, counts, licence):
    X, y = loader(return_X_y=True, **kwargs)
    bunch = loader(**kwargs)
    np.testing.assert_array_equal(X, bunch.data)
    np.testing.assert_array_equal(y, bunch.target)


@pytest.mark.parametrize("loader, kwargs, counts, licence", CASES, ids=IDS)
def test_as_frame(loader, kwargs, counts, licence):
    pd = pytest.importorskip("pandas")
    bunch = loader(as_frame=True, **kwargs)
    n = sum(counts.values())
    assert isinstance(bunch.data, pd.DataFrame)
    assert list(bunch.data.columns) == ["text"]
    assert isinstance(bunch.target, pd.Series) and bunch.target.name == "label"
    assert list(bunch.frame.columns) == ["text", "label"]
    assert bunch.frame.shape == (n, 2)
    assert bunch.target.value_counts().to_dict() == counts
    X, y = loader(as_frame=True, return_X_y=True, **kwargs)
    assert isinstance(X, pd.DataFrame) and isinstance(y, pd.Series)


def test_loaders_return_fresh_arrays():
    X, _ = load_sms_spam(return_X_y=True)
    X[0] = "changed"
    assert load_sms_spam().data[0] != "changed"


def test_trec_fine():
    coarse = load_trec()
    fine = load_trec(granularity="fine")
    np.testing.assert_array_equal(coarse.data, fine.data)
    assert len(fine.target_names) == 50
    assert all(":" in label for label in fine.target_names)
    prefixes = np.array([label.split(":")[0] for label in fine.target])
    np.testing.assert_array_equal(prefixes, coarse.target)
    assert Counter(fine.target.tolist())["HUM:ind"] == 955


def test_trec_bad_granularity():
    with pytest.raises(ValueError, match="granularity"):
        load_trec(granularity="medium")


def test_sms_repairs():
    X = load_sms_spam().data
    # Rows merged by the broken quoting in the source file are split back out.
    assert not any("\n" in t or "\t" in t for t in X)
    assert max(len(t) for t in X) < 1000
    # Windows-1252 characters stored as C1 control code points are decoded.
    assert not any(any("\x80" <= c <= "\x9f" for c in t) for t in X)


def test_normalize_text():
    assert normalize_text("  Hello,   WORLD!! ") == "hello world"
    assert normalize_text("hello_world") == "hello world"
    assert normalize_text(":)") == ":)"
    assert normalize_text(":)") != normalize_text(":-) :-)")


def test_dedup_records_keeps_first_and_drops_conflicts():
    records = [
        ("a", "Hello world"),
        ("a", "hello, world!"),
        ("b", "Other text"),
        ("a", "other TEXT"),
        ("b", "unique"),
    ]
    kept, stats = dedup_records(records, text=lambda r: r[1], label=lambda r: r[0])
    assert kept == [("a", "Hello world"), ("b", "unique")]
    assert stats == {
        "n_in": 5,
        "n_groups": 3,
        "n_conflict_groups": 1,
        "n_conflict_records": 2,
        "n_out": 2,
    }


def test_as_frame_without_pandas_names_the_extra(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "pandas", None)
    with pytest.raises(ImportError, match=r"sklearn-llmconf\[pandas\]"):
        load_sms_spam(as_frame=True)


def test_question_types_many_multi_word_labels():
    data = load_question_types()
    counts = Counter(data.target.tolist())
    assert len(counts) == 30 and min(counts.values()) >= 30
    assert sum(" " in name for name in counts) == 19
    assert counts["individual person"] == 955 and counts["distance"] == 32
    assert data.data.shape == (5108,) and "Citation" in data.DESCR
    # Exactly the TREC questions whose fine class is kept, with its new name.
    X, fine = load_trec(granularity="fine", return_X_y=True)
    keep = np.isin(fine, list(QUESTION_TYPE_NAMES))
    np.testing.assert_array_equal(data.data, X[keep])
    assert data.target[fine[keep] == "NUM:count"].tolist() == (
        ["number of things"] * 354
    )
    assert len(set(normalize_text(t) for t in data.data)) == 5108


# -- several labels per text -------------------------------------------------------
def test_load_movie_genres_is_a_multilabel_target():
    from sklearn.utils.multiclass import type_of_target

    from sklearn_llmconf.datasets import load_movie_genres

    movies = load_movie_genres()
    assert movies.data.shape == (4515,) and movies.target.shape == (4515, 5)
    assert list(movies.target_names) == ["action", "animation", "comedy", "drama",
                                         "romance"]
    assert type_of_target(movies.target) == "multilabel-indicator"
    np.testing.assert_array_equal(movies.target.sum(axis=0),
                                  [890, 135, 1845, 2371, 884])
    per_text = movies.target.sum(axis=1)
    assert (per_text >= 2).sum() == 1781 and (per_text == 0).sum() == 476
    # trailing articles moved to the front, the year in brackets
    assert "The Score (2001)" in set(movies.data)
    assert all(t.endswith(")") for t in movies.data)
    assert "ggplot2" in movies.DESCR and "IMDb" in movies.DESCR
    X, Y = load_movie_genres(return_X_y=True)
    assert len(X) == len(Y)


def test_load_movie_genres_as_frame_names_the_columns():
    pytest.importorskip("pandas")
    from sklearn_llmconf.datasets import load_movie_genres

    X, Y = load_movie_genres(return_X_y=True, as_frame=True)
    assert list(X.columns) == ["text"]
    assert list(Y.columns) == ["action", "animation", "comedy", "drama", "romance"]


def test_load_word_emotions_is_a_multilabel_target():
    from sklearn.utils.multiclass import type_of_target

    from sklearn_llmconf.datasets import load_word_emotions

    words = load_word_emotions()
    assert words.data.shape == (6468,) and words.target.shape == (6468, 8)
    assert list(words.target_names) == ["anger", "anticipation", "disgust", "fear",
                                        "joy", "sadness", "surprise", "trust"]
    assert type_of_target(words.target) == "multilabel-indicator"
    np.testing.assert_array_equal(words.target.sum(axis=0),
                                  [1247, 839, 1058, 1476, 689, 1191, 534, 1231])
    row = dict(zip(words.data, words.target))
    np.testing.assert_array_equal(row["abandon"], [0, 0, 0, 1, 0, 1, 0, 0])
    assert "Mohammad" in words.DESCR and "research purposes only" in words.DESCR
