"""Options and helpers shared by ``fit``, ``predict`` and ``report``."""

from __future__ import annotations

import os
import platform

from ._data import CLIError, Table, data_format

__all__ = ["add_backend_options", "add_input_options", "default_cache",
           "make_backend", "open_table", "versions"]


def add_input_options(p):
    """``--format`` and ``--encoding``."""
    p.add_argument("--format", choices=["csv", "tsv", "jsonl", "parquet"],
                   default=None, help="input format (default: from the extension; "
                   "csv for standard input)")
    p.add_argument("--encoding", default="utf-8",
                   help="text encoding of CSV / JSON Lines input (default utf-8)")


def add_backend_options(p, *, override=False):
    """The model: ``--gguf PATH`` or ``--base-url URL --model NAME``.

    With ``override`` (predict, report): where the model file's backend now
    lives; its identity is still checked against the certificate.
    """
    g = p.add_argument_group(
        "model" + (" (default: as in the model file)" if override else
                   " (default: the embedded SmolLM2-135M)"))
    g.add_argument("--gguf", metavar="PATH", help="a local GGUF model file")
    g.add_argument("--base-url", metavar="URL",
                   help="an OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1")
    if not override:
        g.add_argument("--model", metavar="NAME", help="model name on the server")
        g.add_argument("--api-key-env", metavar="VAR", default="OPENAI_API_KEY",
                       help="environment variable holding the server's key (the "
                            "key is never an argument; default OPENAI_API_KEY)")
        g.add_argument("--no-api-key", action="store_true",
                       help="the server needs no key")
        g.add_argument("--endpoint", choices=["chat", "completions"],
                       default="chat")


def open_table(path, fmt, encoding) -> Table:
    """A :class:`Table`, refusing an unknown format or encoding at once."""
    import codecs

    try:
        codecs.lookup(encoding)
    except LookupError:
        raise CLIError(f"--encoding: unknown encoding {encoding!r}.") from None
    return Table(path, data_format(path, fmt), encoding)


def _local_backend(path):
    """The embedded backend (a seam for the model-free plumbing tests)."""
    from ..backends.llamacpp import LlamaCppBackend

    backend = LlamaCppBackend(model_path=path)
    try:
        backend._resolved_path()
    except Exception as exc:  # no default model installed, unreadable file
        raise CLIError(f"no model: {exc}") from None
    return backend


def make_backend(args):
    """The backend the options name, checked before any model work."""
    if args.gguf and args.base_url:
        raise CLIError("give --gguf or --base-url, not both.")
    if args.base_url:
        if not args.model:
            raise CLIError("--base-url needs --model NAME (the model on the server).")
        if not args.base_url.startswith(("http://", "https://")):
            raise CLIError(f"--base-url must start with http:// or https://, got "
                           f"{args.base_url!r}.")
        from ..backends import OpenAIBackend

        return OpenAIBackend(
            args.model, base_url=args.base_url, endpoint=args.endpoint,
            api_key_env=None if args.no_api_key else args.api_key_env,
        )
    if args.model:
        raise CLIError("--model names a model on a server: give --base-url too.")
    if args.gguf and not os.path.isfile(args.gguf):
        raise CLIError(f"--gguf {args.gguf}: no such file.")
    return _local_backend(os.path.abspath(args.gguf) if args.gguf else None)


def backend_overrides(args) -> dict:
    """Predict / report: a moved GGUF file or another address of the server."""
    if args.gguf and args.base_url:
        raise CLIError("give --gguf or --base-url, not both.")
    if args.gguf:
        if not os.path.isfile(args.gguf):
            raise CLIError(f"--gguf {args.gguf}: no such file.")
        return {"model_path": os.path.abspath(args.gguf)}
    if args.base_url:
        return {"base_url": args.base_url}
    return {}


def default_cache(model_path) -> str:
    """The response cache beside the model file: ``MODEL.cache.sqlite``."""
    return str(model_path) + ".cache.sqlite"


def versions() -> dict:
    """Versions of Python and of the packages that change the results."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in ("sklearn-llmconf", "scikit-learn", "numpy", "scipy",
                 "llama-cpp-python", "openai", "skops"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out
