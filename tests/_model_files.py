"""Model files for the trust-boundary tests: one fitted on the keyword backend,
and the same re-zipped with an edited description (as an attacker would)."""

import json
import zipfile

from sklearn_llmconf import cli
from tests.test_cli_workflow import write_csv


def fit_keyword_model(tmp_path, lab, name="m.skops"):
    """``sklearn-llmconf fit`` on the keyword backend (patched by the caller)."""
    model = str(tmp_path / name)
    assert cli.main(["fit", lab, "--text-column", "body", "--label-column", "kind",
                     "--n-shots", "2", "--classifier", "llm",
                     "--tiers", "accept=0.9,review=0.7",
                     "--quiet", "-o", model]) == 0
    return model


def read_description(path):
    with zipfile.ZipFile(path) as z:
        schema = json.loads(z.read("schema.json"))
    return json.loads(json.loads(schema["content"]["description"]["content"]))


def rezip(src, dst, edit):
    """Copy the archive ``src`` to ``dst`` with its description text edited.

    ``edit`` maps the description's JSON text to the new text (the zip CRCs
    are recomputed: the file is well formed, only its content changed).
    """
    with zipfile.ZipFile(src) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    schema = json.loads(entries["schema.json"])
    node = schema["content"]["description"]
    node["content"] = json.dumps(edit(json.loads(node["content"])))
    entries["schema.json"] = json.dumps(schema).encode()
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return str(dst)


def edit_json(change):
    """An ``edit`` for :func:`rezip` that changes the parsed description."""
    def edit(text):
        desc = json.loads(text)
        change(desc)
        return json.dumps(desc, sort_keys=True)
    return edit


def point_at_server(base_url, variable, model="fake"):
    """The issue's attack: the file names a server and a key variable."""
    def change(desc):
        desc["backend"] = {"class": "OpenAIBackend", "params": {
            "model": model, "base_url": base_url, "api_key_env": variable,
            "endpoint": "chat", "logit_bias": False}}
        desc["identity"] = {"backend": "OpenAIBackend", "model": model}
    return edit_json(change)


def small_csv(tmp_path, name="new.csv", n=6):
    return write_csv(tmp_path / name, ["body"], [[f"hello {i}"] for i in range(n)])


#: What an attacker writes in every string field of a description.
PAYLOADS = [
    "<script>document.documentElement.setAttribute('data-pwned','1')</script>",
    "<img src=x onerror=\"document.documentElement.setAttribute('data-pwned','1')\">",
    "</style><script>document.title='PWNED'</script>",
    "javascript:document.title='PWNED'",
    "\"><svg onload=\"document.title='PWNED'\">",
    "</pre></td></table><iframe src=\"javascript:alert(1)\"></iframe>",
]


def replace_strings(value, new, path=()):
    """``value`` with each string ``s`` at ``path`` replaced by ``new(path, s)``."""
    if isinstance(value, dict):
        return {k: replace_strings(v, new, (*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [replace_strings(v, new, (*path, i)) for i, v in enumerate(value)]
    if isinstance(value, str):
        return new(path, value)
    return value
