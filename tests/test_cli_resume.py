"""kill -9 during ``predict``, then the same command: the same file, no row paid
twice beyond the batch in flight (model-free: the keyword backend, slowed
down in the child process so that the kill lands mid-run; the embedded-model
version is in test_cli_real_model.py)."""

import csv
import os
import signal
import subprocess
import sys
import time

from sklearn_llmconf import cli
from tests.test_cli_workflow import (  # noqa: F401 (fixtures)
    files,
    keyword_model,
    read_decisions,
)

RUNNER = """
import sys, time
from sklearn_llmconf import cli
from sklearn_llmconf.cli import _common
from sklearn_llmconf.testing import KeywordBackend
score = KeywordBackend._score_labels
def slow(self, prompts, labels):
    time.sleep(float(sys.argv[1]))
    return score(self, prompts, labels)
KeywordBackend._score_labels = slow
_common._local_backend = lambda path: KeywordBackend()
sys.exit(cli.main(sys.argv[2:]))
"""


def test_kill_then_rerun_writes_the_same_file(files, keyword_model, tmp_path,  # noqa: F811
                                              capsys):
    work, lab, new = files
    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    model = str(work / "m.skops")
    # only the killed run needs a process of its own: the fit, the rerun and
    # the fresh reference run in this one (the same keyword backend, not
    # slowed down), each saving an interpreter start and its imports
    assert cli.main(["fit", lab, "--text-column", "body", "--label-column",
                     "kind", "--n-shots", "2", "--classifier", "llm", "--quiet",
                     "-o", model]) == 0
    out, cache = str(work / "d.csv"), str(work / "d.sqlite")
    args = ["predict", model, new, "-o", out, "--cache", cache, "--chunk-size",
            "10", "--quiet"]
    proc = subprocess.Popen([sys.executable, str(script), "0.2", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    written, deadline = 0, time.monotonic() + 120
    while written < 51 and time.monotonic() < deadline:  # 5 chunks of 10 rows
        time.sleep(0.02)
        if os.path.exists(out + ".partial"):
            with open(out + ".partial", newline="") as f:
                written = sum(1 for _ in csv.reader(f))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 51 <= written < 231 and not os.path.exists(out)
    capsys.readouterr()
    assert cli.main(args) == 0
    err = capsys.readouterr().err
    calls, hits = (int(w) for w in err.split("failed. ")[1].split()[::3][:2])
    # every row written before the kill came from the cache, and at most the
    # chunk in flight (10 rows) was paid for twice
    assert calls + hits == 230 and hits >= written - 1
    assert calls <= 230 - (written - 1)
    ref = str(work / "ref.csv")
    assert cli.main(["predict", model, new, "-o", ref, "--cache",
                     str(work / "fresh.sqlite"), "--quiet"]) == 0
    assert "230 model calls, 0 cache hits" in capsys.readouterr().err
    with open(out, "rb") as a, open(ref, "rb") as b:
        assert a.read() == b.read()
    assert len(read_decisions(out)) == 231
