"""``sklearn-llmconf`` command.

- ``fit DATA``: fit and certify on your labelled rows, write one model file
  (``--multilabel``: several labels per row);
- ``predict MODEL DATA -o decisions.csv``: one decision per row, streamed;
- ``report MODEL [LABELLED] -o report.html``: a self-contained audit page;
- ``evaluate`` (the default) and ``route``: the bundled data sets.

Every bad argument or input is one line on standard error and exit status 2,
before any model work.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

from ._args import parse_tiers as _parse_tiers  # noqa: F401 (tests use it)
from ._bundled import (
    _split,  # noqa: F401 (tests use it)
    add_evaluate,
    add_route,
    evaluate,
    route,
)
from ._data import CLIError

__all__ = ["build_parser", "main"]

_COMMANDS = ("evaluate", "route", "fit", "predict", "report")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``--help`` has the rest)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The command's argument parser."""
    from ._fit import add_fit
    from ._predict import add_predict
    from ._report import add_report

    parser = _Parser(
        prog="sklearn-llmconf",
        description=(
            "A language model as a calibrated, certified classifier. With no "
            "arguments: the embedded model on SMS spam, raw vs calibrated."
        ),
    )
    sub = parser.add_subparsers(dest="command")
    add_evaluate(sub)
    add_route(sub)
    add_fit(sub)
    add_predict(sub)
    add_report(sub)
    return parser


def _bundled(run, args) -> int:
    from .._classifier import LLMClassifier

    defaults = LLMClassifier().get_params()
    if args.n_shots is None:
        args.n_shots = defaults["n_shots"]
    if args.demo_selection is None:
        args.demo_selection = defaults["demo_selection"]
    if args.cache is None:
        # Without a cache file the calibrators would score every text again.
        with tempfile.TemporaryDirectory() as tmp:
            args.cache = os.path.join(tmp, "responses.sqlite")
            return run(args)
    return run(args)


def main(argv=None) -> int:
    """Entry point of the ``sklearn-llmconf`` command."""
    from .._persistence import ModelFileError, UnconfirmedBackendError
    from ._common import unconfirmed_message

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["evaluate", *argv]
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        if args.command in ("evaluate", "route"):
            return _bundled(evaluate if args.command == "evaluate" else route, args)
        from ._fit import fit
        from ._label_sets import wants_multilabel
        from ._multilabel import fit_multilabel
        from ._predict import predict
        from ._report import report

        if args.command == "fit" and wants_multilabel(args):
            return fit_multilabel(args)  # several labels per row
        return {"fit": fit, "predict": predict, "report": report}[args.command](args)
    except UnconfirmedBackendError as exc:
        _error(args.command, unconfirmed_message(exc))
        return 2
    except (CLIError, ModelFileError) as exc:
        _error(args.command, str(exc))
        return 2


#: What str.splitlines() breaks on: shown as escapes in an error line.
_LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def _error(command, message):
    """One line on standard error, whatever line breaks the message holds."""
    for char in _LINE_BREAKS:
        message = message.replace(char, char.encode("unicode_escape").decode())
    print(f"sklearn-llmconf {command}: error: {message}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
