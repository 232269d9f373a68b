"""No command overwrites an input (#38): an output that is the data, the model
file or the cache (symlinks and hard links followed) is refused; every output
is written beside its place and renamed when complete; a missing folder is
one line and leaves nothing behind."""

import os

import pytest

from sklearn_llmconf import cli
from sklearn_llmconf.cli import _common, _html, _predict
from sklearn_llmconf.testing import KeywordBackend
from tests._model_files import fit_keyword_model
from tests.test_cli_workflow import files  # noqa: F401 (fixture)


@pytest.fixture
def work(monkeypatch, files):  # noqa: F811
    monkeypatch.setattr(_common, "_local_backend", lambda path: KeywordBackend())
    tmp, lab, new = files
    return tmp, lab, new, fit_keyword_model(tmp, lab)


def one_line(capsys, argv, status=2):
    capsys.readouterr()
    assert cli.main(argv) == status
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def snapshot(folder):
    return {p: (folder / p).read_bytes() for p in sorted(os.listdir(folder))
            if (folder / p).is_file()}


def test_an_output_that_is_an_input_is_refused(work, capsys):
    tmp, lab, new, model = work
    os.symlink(new, tmp / "link.csv")
    os.link(model, tmp / "hard.skops")
    before = snapshot(tmp)
    cases = [
        (["fit", lab, "--text-column", "body", "--label-column", "kind",
          "-o", lab], f"-o {lab} is the input data ({lab})"),
        (["predict", model, new, "-o", new], f"-o {new} is the input data"),
        (["predict", model, new, "-o", model], f"-o {model} is the model file"),
        (["predict", model, new, "-o", str(tmp / "link.csv")],
         "link.csv is the input data"),
        (["predict", model, new, "-o", str(tmp / "hard.skops")],
         "hard.skops is the model file"),
        (["predict", model, new, "-o", model + ".cache.sqlite"],
         "is the response cache"),
        (["report", model, "-o", model], f"-o {model} is the model file"),
        (["report", model, lab, "-o", lab], f"-o {lab} is the labelled data"),
    ]
    for argv, message in cases:
        line = one_line(capsys, argv)
        assert message in line and line.endswith(
            "refusing to overwrite an input; choose another output file."), line
    assert snapshot(tmp) == before  # nothing written, nothing left behind


def test_missing_output_folder_is_one_line_and_leaves_no_partial(work, capsys):
    tmp, lab, new, model = work
    before = snapshot(tmp)
    for argv in (["predict", model, new, "-o", str(tmp / "missing" / "d.csv")],
                 ["report", model, "-o", str(tmp / "missing" / "r.html")],
                 ["fit", lab, "--text-column", "body", "--label-column", "kind",
                  "-o", str(tmp / "missing" / "m.skops")]):
        assert one_line(capsys, argv).endswith(f"no directory {tmp / 'missing'}.")
    assert snapshot(tmp) == before and not (tmp / "missing").exists()


def test_a_crash_leaves_the_old_output_whole(work, monkeypatch):
    tmp, lab, new, model = work
    out, html = tmp / "d.csv", tmp / "r.html"
    out.write_text("old decisions\n")
    html.write_text("old report\n")
    calls = []

    def crash_on_second_chunk(router, X):
        calls.append(len(X))
        if len(calls) == 2:
            raise RuntimeError("killed")
        return score_chunk(router, X)

    score_chunk = _predict.score_chunk
    monkeypatch.setattr(_predict, "score_chunk", crash_on_second_chunk)
    with pytest.raises(RuntimeError, match="killed"):
        cli.main(["predict", model, new, "-o", str(out), "--chunk-size", "50",
                  "--quiet"])
    monkeypatch.setattr(_html, "page", lambda *a: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        cli.main(["report", model, "-o", str(html)])
    import skops.io as sio

    monkeypatch.setattr(sio, "dump", lambda *a, **k: 1 / 0)
    model_bytes = open(model, "rb").read()
    with pytest.raises(ZeroDivisionError):
        cli.main(["fit", lab, "--text-column", "body", "--label-column", "kind",
                  "--n-shots", "2", "--classifier", "llm", "--quiet", "-o", model])
    assert out.read_text() == "old decisions\n"
    assert html.read_text() == "old report\n"
    assert open(model, "rb").read() == model_bytes
    assert not [p for p in os.listdir(tmp) if p.endswith(".partial")]


def test_outputs_are_readable_like_any_new_file(work):
    tmp, lab, new, model = work
    out = tmp / "d.csv"
    assert cli.main(["predict", model, new, "-o", str(out), "--quiet"]) == 0
    mask = os.umask(0)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~mask
