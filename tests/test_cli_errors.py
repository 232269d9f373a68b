"""Every bad argument or input file: one line, exit status 2, no model call."""

import pytest

from sklearn_llmconf import cli
from sklearn_llmconf.cli import _common
from sklearn_llmconf.testing import KeywordBackend

BACKEND = KeywordBackend()


@pytest.fixture(autouse=True)
def keyword_model(monkeypatch):
    BACKEND.__dict__.pop("calls_", None)
    monkeypatch.setattr(_common, "_local_backend", lambda path: BACKEND)
    yield
    assert not BACKEND.__dict__.get("calls_"), "a model call was made"


@pytest.fixture
def good(tmp_path):
    path = tmp_path / "good.csv"
    rows = ["desc,goods"] + [f"item {i},{'fats, oils' if i % 2 else 'tools'}"
                             .replace("fats, oils", '"fats, oils"') for i in range(40)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return str(path)


def one_line_error(capsys, argv, *, status=2):
    assert cli.main(argv) == status
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "--n-test", "0"], "--n-test: must be at least 1, got 0"),
    (["evaluate", "--n-train", "-5"], "--n-train: must be at least 1, got -5"),
    (["route", "--tiers", "accept=1.5"], "tier targets must lie in (0, 1)"),
    (["route", "--tiers", "a=0.8,b=0.9"], "strictly decreasing"),
    (["route", "--delta", "0"], "--delta: must lie in (0, 1)"),
])
def test_bundled_commands_refuse_bad_numbers_while_parsing(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_a_test_part_smaller_than_the_classes_is_refused_before_loading():
    with pytest.raises(SystemExit, match="cannot split 300 \\+ 1 texts"):
        cli.main(["evaluate", "--n-test", "1"])


def test_missing_column_names_the_columns_found(capsys, good, tmp_path):
    line = one_line_error(capsys, ["fit", good, "--text-column", "description",
                                   "--label-column", "goods", "-o",
                                   str(tmp_path / "m.skops")])
    assert line.endswith("has no column 'description'; its columns are: desc, goods.")


def test_undecodable_byte_names_the_line(capsys, tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes(b"desc,goods\nok,a\nok,b\ncaf\xe9,a\n")
    line = one_line_error(capsys, ["fit", str(path), "--text-column", "desc",
                                   "--label-column", "goods"])
    assert "line 4 is not valid utf-8 (byte b'\\xe9' at column 4)" in line


@pytest.mark.parametrize("extra, message", [
    (["--gguf", "/nowhere.gguf"], "--gguf /nowhere.gguf: no such file."),
    (["--base-url", "http://127.0.0.1:9/v1"], "--base-url needs --model NAME"),
    (["--model", "x"], "--model names a model on a server: give --base-url too."),
    (["--gguf", "a", "--base-url", "http://h/v1"], "not both"),
    (["--encoding", "klingon"], "unknown encoding 'klingon'"),
    (["--prompt", "Goods: {description}"], "--prompt has placeholders"),
    (["-o", "/nowhere/m.skops"], "no directory /nowhere"),
])
def test_bad_options_are_one_line(capsys, good, tmp_path, extra, message):
    argv = ["fit", good, "--text-column", "desc", "--label-column", "goods", *extra]
    if "-o" not in extra:
        argv += ["-o", str(tmp_path / "m.skops")]
    assert message in one_line_error(capsys, argv)


def test_bad_files(capsys, tmp_path, good):
    assert "no such file" in one_line_error(
        capsys, ["fit", str(tmp_path / "none.csv"), "--text-column", "a",
                 "--label-column", "b"])
    odd = tmp_path / "data.xlsx"
    odd.write_text("x")
    assert "--format" in one_line_error(
        capsys, ["fit", str(odd), "--text-column", "a", "--label-column", "b"])
    short = tmp_path / "short.csv"
    short.write_text("desc,goods\na,x\nb\n")
    assert "line 3 has 1 fields, the header 2" in one_line_error(
        capsys, ["fit", str(short), "--text-column", "desc", "--label-column",
                 "goods"])
    one = tmp_path / "one.csv"
    one.write_text("desc,goods\na,x\nb,x\n")
    assert "one class only ('x')" in one_line_error(
        capsys, ["fit", str(one), "--text-column", "desc", "--label-column",
                 "goods"])
    assert "no such model file" in one_line_error(
        capsys, ["predict", str(tmp_path / "none.skops"), good, "-o",
                 str(tmp_path / "d.csv")])
    assert "not a sklearn-llmconf model file" in one_line_error(
        capsys, ["predict", good, good, "-o", str(tmp_path / "d.csv")])


def test_labels_with_comma_fit_with_the_default_prompt(capsys, good, tmp_path):
    # 'fats, oils' used to stop fit: the default prompt now joins with '; '.
    model = str(tmp_path / "m.skops")
    assert cli.main(["fit", good, "--text-column", "desc", "--label-column",
                     "goods", "--n-shots", "2", "--tiers", "ok=0.6",
                     "--classifier", "llm", "--quiet", "-o", model]) == 0
    BACKEND.__dict__.pop("calls_", None)  # fit's calls were expected
    from sklearn_llmconf.persistence import load_model

    assert load_model(model)[1]["prompt"]["label_separator"] == "; "
