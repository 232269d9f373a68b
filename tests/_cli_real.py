"""What the CLI tests share: the command (a process or in-process), CSV files, data.

The real-model CLI files (embedded model, llama.cpp server, hybrid, multi-label)
use it, each a file of its own so that pytest-xdist can run them on different
workers; the keyword-backend CLI tests take its CSV helpers.
"""

import contextlib
import csv
import io
import subprocess
import sys

import pytest

from sklearn_llmconf.datasets import load_sms_spam


def sklearn_llmconf(*args, check=True):
    """The command as a user runs it: a process of the installed package."""
    done = subprocess.run([sys.executable, "-m", "sklearn_llmconf.cli", *args],
                          capture_output=True, text=True, timeout=600)
    if check:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


def sklearn_llmconf_here(*args, check=True):
    """The same command run by ``cli.main`` in the test's process.

    For the commands after a test's first one: each process pays ~3.5 s of
    imports (scikit-learn, skops, torch through skops' estimator walk, the
    sentence embedder) before it reads a row, and the model file is read from
    disk either way. Every test keeps at least its ``fit`` as a process.
    """
    from sklearn_llmconf import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(list(args))
        except SystemExit as exc:
            code = exc.code
    done = subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())
    if check:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


def write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, *rows])
    return str(path)


def read(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


@pytest.fixture(scope="module")
def user_files(tmp_path_factory):
    """80 labelled SMS and 24 new ones, with the user's own column names."""
    tmp = tmp_path_factory.mktemp("cli")
    X, y = load_sms_spam(return_X_y=True)
    verdict = {"ham": "keep", "spam": "junk"}
    lab = write_csv(tmp / "inbox_labelled.csv", ["msg_id", "sms_body", "verdict"],
                    [[f"m{i}", X[i], verdict[y[i]]] for i in range(80)])
    new = write_csv(tmp / "inbox_new.csv", ["msg_id", "sms_body", "verdict"],
                    [[f"n{i}", X[i], verdict[y[i]]] for i in range(2000, 2024)])
    return tmp, lab, new
