"""fit / predict / report on a multi-label CSV, the embedded model (#35).

``fit`` runs as a separate process (predict and report through ``cli.main`` in
the test's process, reading the model file back) on a CSV of IMDb titles
(:func:`~sklearn_llmconf.datasets.load_movie_genres`) whose genres are one
cell per row, joined by ``;``, as a user's export would hold them.
"""

import numpy as np
import pytest

from sklearn_llmconf.datasets import load_movie_genres
from tests._cli_real import read, sklearn_llmconf, sklearn_llmconf_here, write_csv

pytestmark = pytest.mark.slow

GENRES = ["comedy", "drama", "romance"]


@pytest.fixture(scope="module")
def films(tmp_path_factory):
    """60 labelled titles and 12 new ones, genres joined by ';' per row."""
    pytest.importorskip("llama_cpp")
    tmp = tmp_path_factory.mktemp("films")
    movies = load_movie_genres()
    keep = [list(movies.target_names).index(g) for g in GENRES]
    Y = movies.target[:, keep]
    idx = np.random.RandomState(0).permutation(len(Y))

    def rows(part):
        return [[f"m{i}", movies.data[i],
                 ";".join(g for g, y in zip(GENRES, Y[i]) if y)] for i in part]

    lab = write_csv(tmp / "films.csv", ["id", "title", "genres"], rows(idx[:60]))
    new = write_csv(tmp / "new.csv", ["id", "title", "genres"], rows(idx[60:72]))
    return tmp, lab, new, [f"m{i}" for i in idx[60:72]]


def fits_cache(tmp_path):
    """The response cache of both fits: the hybrid's LLM block scores the
    titles that the LLM's fit scored with the same demonstrations, and takes
    them from it (predict and report keep each model file's own cache)."""
    return str(tmp_path / "fits.cache.sqlite")


def test_fit_predict_report_on_a_multilabel_csv(films):
    tmp_path, lab, new, ids = films
    model = str(tmp_path / "films.skops")
    fit = sklearn_llmconf("fit", lab, "--text-column", "title", "--label-column",
                          "genres", "--multilabel", "--allow-no-label",
                          "--classifier", "llm", "--n-shots", "4", "--n-scale",
                          "26", "--cache", fits_cache(tmp_path), "--quiet",
                          "-o", model)
    assert "60 labelled rows, 3 labels: 4 demonstrations, 26 in-fit " \
        "calibration, 30 certification; LlamaCppBackend; kept llm." in fit.stderr
    assert [ln.split()[0] for ln in fit.stdout.splitlines()[2:5]] == GENRES

    out = str(tmp_path / "decisions.csv")
    done = sklearn_llmconf_here("predict", model, new, "-o", out, "--id-column",
                                "id", "--quiet")
    assert "12 model calls, 0 cache hits" in done.stderr
    decisions = read(out)
    assert decisions[0] == [
        "id", "labels", "undecided", "tier", "proba_comedy", "proba_drama",
        "proba_romance", "decision_comedy", "decision_drama", "decision_romance",
        "failure_reason"]
    assert [r[0] for r in decisions[1:]] == ids
    P = np.array([[float(x) for x in r[4:7]] for r in decisions[1:]])
    assert ((P > 0) & (P < 1)).all() and P.std(axis=0).max() > 0
    for r in decisions[1:]:
        d = r[7:10]
        assert set(d) <= {"1", "0", ""} and r[10] == ""
        assert r[1] == ";".join(g for g, x in zip(GENRES, d) if x == "1")
        assert r[3] == ("accept" if "" not in d else "review")

    html = str(tmp_path / "report.html")
    sklearn_llmconf_here("report", model, new, "-o", html, "--quiet")
    page = open(html, encoding="utf-8").read()
    assert "Certificate (per label)" in page and "Hamming loss" in page
    assert "Measured on 12 labelled rows" in page
    assert "SmolLM2-135M-Instruct.Q4_1.gguf SHA-256 " in page
    # the report re-scored nothing: every title came from the cache
    assert "This run: 0 model calls, 12 cache hits" in page


def test_the_multilabel_hybrid_on_the_embedded_model(films):
    tmp_path, lab, new, ids = films
    model = str(tmp_path / "films_hybrid.skops")
    fit = sklearn_llmconf("fit", lab, "--text-column", "title", "--label-column",
                          "genres", "--multilabel", "--allow-no-label",
                          "--classifier", "hybrid", "--n-shots", "4", "--cache",
                          fits_cache(tmp_path), "--quiet", "-o", model)
    assert "30 certification; LlamaCppBackend; kept hybrid." in fit.stderr
    out = str(tmp_path / "hybrid_decisions.csv")
    done = sklearn_llmconf_here("predict", model, new, "-o", out, "--id-column",
                                "id", "--quiet")
    # one model call per title for its three genres
    assert "12 model calls, 0 cache hits" in done.stderr
    decisions = read(out)
    assert [r[0] for r in decisions[1:]] == ids
    P = np.array([[float(x) for x in r[4:7]] for r in decisions[1:]])
    assert ((P > 0) & (P < 1)).all()
