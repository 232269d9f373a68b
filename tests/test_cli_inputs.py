"""Every input error is one line and exit status 2 (#38); exit 1 stays "some
rows failed". Labels missing in every format, columns named twice, the label
column as text, and every cache error."""

import json
import sqlite3

import pytest

from sklearn_llmconf import cli
from sklearn_llmconf.cli import _common
from sklearn_llmconf.testing import KeywordBackend
from tests.test_cli_workflow import write_csv

BACKEND = KeywordBackend()


@pytest.fixture(autouse=True)
def keyword_model(monkeypatch):
    BACKEND.__dict__.pop("calls_", None)
    monkeypatch.setattr(_common, "_local_backend", lambda path: BACKEND)


def one_line(capsys, argv, status=2):
    capsys.readouterr()
    assert cli.main(argv) == status
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def rows(n=40):
    return [[f"item {i} {'spam' if i % 2 else 'ham'}", "spam" if i % 2 else "ham"]
            for i in range(n)]


def fit_argv(path, tmp_path, *extra):
    return ["fit", str(path), "--text-column", "body", "--label-column", "kind",
            "--n-shots", "2", "--tiers", "ok=0.6", "--classifier", "llm", "--quiet",
            "-o", str(tmp_path / "m.skops"), *extra]


def write_jsonl(path, records):
    path.write_text("".join(r + "\n" for r in records), encoding="utf-8")
    return path


@pytest.mark.parametrize("record, message", [
    ('{"body": "x", "kind": NaN}', "line 3 has no value in column 'kind' (NaN)."),
    ('{"body": "x", "kind": null}', "line 3 has no value in column 'kind'."),
    ('{"body": "x", "kind": ""}', "line 3 has an empty label in column 'kind'."),
    ('{"body": "x", "kind": "  "}', "line 3 has an empty label in column 'kind'."),
    ('{"body": "x"}', "line 3 has no value in column 'kind'."),
    ('{"body": "x", "kind": "ham", "kind": "spam"}',
     "line 3 has the key 'kind' twice."),
])
def test_jsonl_labels(capsys, tmp_path, record, message):
    good = [json.dumps({"body": b, "kind": k}) for b, k in rows()]
    path = write_jsonl(tmp_path / "lab.jsonl", [*good[:2], record, *good[2:]])
    assert one_line(capsys, fit_argv(path, tmp_path)).endswith(message)


def test_csv_empty_label_and_duplicate_columns(capsys, tmp_path):
    # Regression (#38): an empty label was a raw traceback from prompts/_labels.py
    path = write_csv(tmp_path / "lab.csv", ["body", "kind"],
                     [*rows()[:5], ["no label here", ""], *rows()[5:]])
    assert one_line(capsys, fit_argv(path, tmp_path)).endswith(
        "line 7 has an empty label in column 'kind'.")
    # Regression (#38): body,body,kind silently used the last 'body'
    twice = write_csv(tmp_path / "twice.csv", ["body", "body", "kind"],
                      [[t, "other", k] for t, k in rows()])
    assert one_line(capsys, fit_argv(twice, tmp_path)).endswith(
        "has 2 columns named 'body'; rename all but one.")
    # ... in predict too
    ok = write_csv(tmp_path / "ok.csv", ["body", "kind"], rows())
    assert cli.main(fit_argv(ok, tmp_path)) == 0
    assert one_line(capsys, ["predict", str(tmp_path / "m.skops"), twice, "-o",
                             str(tmp_path / "d.csv")]).endswith(
        "has 2 columns named 'body'; rename all but one.")
    assert not (tmp_path / "d.csv").exists()


def test_parquet_labels_and_columns(capsys, tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    texts = [t for t, _ in rows()]
    for labels, message in (
            ([float("nan")] + [1.0, 0.0] * 19 + [1.0], "row 1 has no value in "
             "column 'kind' (NaN)."),
            ([None] + ["ham", "spam"] * 19 + ["ham"], "row 1 has no value in "
             "column 'kind'."),
            (["ham", "  "] * 20, "row 2 has an empty label in column 'kind'.")):
        pq.write_table(pa.table({"body": texts, "kind": labels}),
                       tmp_path / "lab.parquet")
        assert one_line(capsys, fit_argv(tmp_path / "lab.parquet", tmp_path)
                        ).endswith(message)
    table = pa.Table.from_arrays([pa.array(texts), pa.array(texts),
                                  pa.array(["a", "b"] * 20)],
                                 names=["body", "body", "kind"])
    pq.write_table(table, tmp_path / "twice.parquet")
    assert one_line(capsys, fit_argv(tmp_path / "twice.parquet", tmp_path)
                    ).endswith("has 2 columns named 'body'; rename all but one.")


def test_the_label_column_is_not_a_text_column(capsys, tmp_path):
    path = write_csv(tmp_path / "lab.csv", ["body", "kind"], rows())
    line = one_line(capsys, ["fit", path, "--text-column", "kind",
                             "--label-column", "kind"])
    assert line.endswith("--label-column 'kind' is also a --text-column: the "
                         "label would be fed to the model as text.")
    line = one_line(capsys, ["fit", path, "--text-column", "body",
                             "--text-column", "body", "--label-column", "kind"])
    assert line.endswith("--text-column 'body' given twice.")


# -- caches -------------------------------------------------------------------------
@pytest.fixture
def model(tmp_path):
    path = write_csv(tmp_path / "lab.csv", ["body", "kind"], rows())
    assert cli.main(fit_argv(path, tmp_path)) == 0
    return str(tmp_path / "m.skops"), path


def bad_caches(tmp_path):
    (tmp_path / "folder").mkdir()
    foreign = tmp_path / "foreign.sqlite"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    (tmp_path / "text.sqlite").write_text("this is not a database\n" * 100)
    return [(str(tmp_path / "folder"), "OperationalError: Cannot open the "
             "response cache file"),
            (str(foreign), "is not a response cache of sklearn_llmconf"),
            (str(tmp_path / "text.sqlite"), "DatabaseError: The response cache "
             "file"),
            ("postgresql://bob:hunter2pw@127.0.0.1:9/db", "OperationalError")]


def test_every_cache_error_is_one_line_before_any_output(capsys, tmp_path, model):
    path, lab = model
    for cache, message in bad_caches(tmp_path):
        for argv in (["predict", path, lab, "-o", str(tmp_path / "d.csv")],
                     ["report", path, lab, "-o", str(tmp_path / "r.html")],
                     fit_argv(lab, tmp_path, "-o", str(tmp_path / "n.skops"))):
            line = one_line(capsys, [*argv, "--cache", cache])
            assert f"--cache {cache.replace('hunter2pw', '***')}: " in line
            assert message in line and "hunter2pw" not in line, line
    assert not [p.name for p in tmp_path.iterdir()
                if p.name.endswith(".partial") or p.name in ("d.csv", "r.html",
                                                             "n.skops")]


def test_a_postgres_role_that_does_not_exist_is_one_line(capsys, tmp_path, model):
    from tests._postgres_server import PostgresServer, PostgresUnavailable

    server = PostgresServer()
    try:
        server.start()
    except PostgresUnavailable as exc:
        pytest.skip(f"cannot start a PostgreSQL server here: {exc}")
    try:
        from urllib.parse import urlsplit

        parts = urlsplit(server.url)
        url = parts._replace(
            netloc=f"nosuchrole:pw-0x5ecret@{parts.hostname}:{parts.port}").geturl()
        path, lab = model
        line = one_line(capsys, ["predict", path, lab, "-o",
                                 str(tmp_path / "d.csv"), "--cache", url])
        assert 'role "nosuchrole" does not exist' in line
        assert "pw-0x5ecret" not in line and "nosuchrole:***@" in line
        # a password in a working URL is never printed (trust authentication
        # ignores it here): the last line of fit showed it
        good = parts._replace(
            netloc=f"{parts.username}:pw-0x5ecret@{parts.hostname}:{parts.port}"
        ).geturl()
        capsys.readouterr()
        assert cli.main(fit_argv(lab, tmp_path, "-o", str(tmp_path / "p.skops"),
                                 "--cache", good)) == 0
        out = capsys.readouterr()
        assert "pw-0x5ecret" not in out.out + out.err
        assert f"{parts.username}:***@" in out.out.splitlines()[-1]
    finally:
        server.stop()


def test_line_breaks_in_names_stay_on_one_line(capsys, tmp_path):
    path = tmp_path / "odd.csv"
    path.write_text('"de\nsc","go\u2028ods"\nitem,a\n', encoding="utf-8")
    line = one_line(capsys, ["fit", str(path), "--text-column", "desc",
                             "--label-column", "goods"])
    assert line.endswith("its columns are: de\\nsc, go\\u2028ods.")
