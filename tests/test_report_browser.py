"""The HTML report in a real headless browser (Debian's chromium).

.ci/run installs chromium; elsewhere the test is skipped when no browser is
found. Set SKLEARN_LLMCONF_SCREENSHOT_DIR to keep the screenshot.
"""

import os
import re
import shutil
import subprocess

import pytest

from sklearn_llmconf import cli
from sklearn_llmconf.cli import _common
from sklearn_llmconf.testing import KeywordBackend
from tests.test_cli_workflow import files  # noqa: F401 (fixture)

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def chromium():
    for name in ("chromium", "chromium-browser"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("no chromium on this machine (apt-get install chromium)")


def browse(url, tmp_path, *extra):
    cmd = [chromium(), *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *extra, url]
    done = subprocess.run(cmd, capture_output=True, timeout=120, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_report_renders_with_figures_and_table_cells(monkeypatch, files, tmp_path):  # noqa: F811
    monkeypatch.setattr(_common, "_local_backend", lambda path: KeywordBackend())
    work, lab, _ = files
    model, html = str(work / "m.skops"), str(work / "report.html")
    assert cli.main(["fit", lab, "--text-column", "body", "--label-column", "kind",
                     "--n-shots", "4", "--tiers", "accept=0.9,review=0.7",
                     "--classifier", "llm", "--quiet", "-o", model]) == 0
    assert cli.main(["report", model, lab, "-o", html, "--quiet"]) == 0
    dom = browse("file://" + html, tmp_path, "--dump-dom")
    assert dom.count("<svg") == 2
    assert len(re.findall(r'<rect class="bin"', dom)) >= 2  # reliability bars
    assert "<polyline" in dom  # routing curve
    cells = re.findall(r"<td>([^<]*)</td>", dom)
    assert cells[:2] == ["accept", "0.9"]  # the certificate table, first row
    assert "KeywordBackend" in cells and "body" in "".join(cells)
    shot = tmp_path / "report.png"
    browse("file://" + html, tmp_path, f"--screenshot={shot}",
           "--window-size=1000,1800", "--hide-scrollbars")
    from PIL import Image

    image = Image.open(shot).convert("RGB")
    assert image.size == (1000, 1800)
    colours = image.getcolors(maxcolors=1 << 20)
    # the reliability bars' blue (#4a7fb5 at 75 % on white) is on screen
    assert any(abs(r - 119) < 6 and abs(g - 159) < 6 and abs(b - 200) < 6
               for _, (r, g, b) in colours)
    keep = os.environ.get("SKLEARN_LLMCONF_SCREENSHOT_DIR")
    if keep:
        shutil.copyfile(shot, os.path.join(keep, "report.png"))


def _tags(dom):
    return re.findall(r"<([a-zA-Z][\w:-]*)", dom)


def test_hostile_model_file_injects_no_element_and_runs_no_script(
        monkeypatch, files, tmp_path):  # noqa: F811
    # Regression (#38): four fields of the description went into the page raw.
    from tests._model_files import PAYLOADS, edit_json, fit_keyword_model, rezip
    from tests._model_files import replace_strings as replace

    monkeypatch.setattr(_common, "_local_backend", lambda path: KeywordBackend())
    work, lab, _ = files
    model = fit_keyword_model(work, lab)
    count = iter(range(10**6))

    def hostile(desc):
        new = replace(desc, lambda path, old: f"{PAYLOADS[next(count) % 6]}{path}")
        desc.clear()
        desc.update(new)

    def plain(desc):
        new = replace(desc, lambda path, old: f"plain {path}")
        desc.clear()
        desc.update(new)

    pages = {}
    for name, change in (("hostile", hostile), ("plain", plain)):
        edited = rezip(model, work / f"{name}.skops", edit_json(change))
        out = str(work / f"{name}.html")
        assert cli.main(["report", edited, "-o", out]) == 0
        pages[name] = browse("file://" + out, tmp_path, "--dump-dom")
    dom = pages["hostile"]
    assert _tags(dom) == _tags(pages["plain"])  # not one element more
    assert "script" not in _tags(dom) and "iframe" not in _tags(dom)
    assert 'data-pwned="1"' not in dom and "<title>PWNED" not in dom
    assert "&lt;script&gt;document.documentElement" in dom  # shown as text

    # Controls: this browser runs a script where nothing forbids it, and the
    # report's Content-Security-Policy alone stops the same script.
    from sklearn_llmconf.cli._html import CSP

    script = "<script>document.documentElement.setAttribute('data-pwned','1')</script>"
    for name, head, ran in (("open", "", True),
                            ("csp", f'<meta http-equiv="Content-Security-Policy" '
                                    f'content="{CSP}">', False)):
        page = work / f"control_{name}.html"
        page.write_text(f"<!DOCTYPE html><html><head>{head}</head><body>{script}"
                        "</body></html>")
        assert ('data-pwned="1"' in browse("file://" + str(page), tmp_path,
                                           "--dump-dom")) is ran
