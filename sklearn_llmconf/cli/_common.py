"""Options and helpers shared by ``fit``, ``predict`` and ``report``."""

from __future__ import annotations

import os
import platform
import sys

from ._data import CLIError, Table, data_format

__all__ = ["BASE_URL_ENV", "KEY_VARIABLE_ENV", "add_backend_options",
           "add_input_options", "backend_overrides", "check_cache",
           "check_description", "check_output", "default_cache",
           "further_backends", "make_backend",
           "one_line", "open_table", "prepare_classifiers", "progress_bar",
           "shown_cache",
           "total_usage", "unconfirmed_message", "versions"]

#: predict / report: the server to send requests to, when --base-url is not given.
BASE_URL_ENV = "SKLEARN_LLMCONF_BASE_URL"
#: predict / report: the variable holding the server's key, when --api-key-env
#: is not given ("none": the server needs no key).
KEY_VARIABLE_ENV = "SKLEARN_LLMCONF_API_KEY_ENV"

#: The parts of a model file's description the command reads beyond the model.
DATA_SCHEMA = {
    "data": {"source": "str", "text_columns": ["str"],
             "field_columns": ["str", "?"], "label_column": "str"},
    "usage": "dict",
    "versions": "dict",
    "created": "str",
}


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
    lives; its identity is still checked against the certificate. A server
    backend needs ``--base-url`` and ``--api-key-env`` (or ``--no-api-key``)
    there, or :data:`BASE_URL_ENV` and :data:`KEY_VARIABLE_ENV`: the model
    file's own are shown, never used unconfirmed.
    """
    g = p.add_argument_group(
        "model" + (" (default: as in the model file)" if override else
                   " (default: the embedded SmolLM2-135M)"))
    if override:
        g.add_argument("--gguf", metavar="PATH", help="a local GGUF model file")
    else:
        from ..backends._checkpoints import CHECKPOINTS

        g.add_argument(
            "--gguf", metavar="PATH|NAME", action="append",
            help="a local GGUF model file, or a model this package obtains "
                 f"itself ({', '.join(sorted(CHECKPOINTS))}); given more than "
                 "once, every model is one LLM block of the hybrid and the "
                 "first is the llm candidate")
    g.add_argument("--base-url", metavar="URL",
                   help="an OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1"
                   + (f" (default: ${BASE_URL_ENV}); a model file's server is "
                      "used only when named here" if override else ""))
    if override:
        g.add_argument("--api-key-env", metavar="VAR", default=None,
                       help="environment variable holding the server's key "
                            f"(default: ${KEY_VARIABLE_ENV}); a model file's key "
                            "variable is used only when named here")
        g.add_argument("--no-api-key", action="store_true",
                       help="the server needs no key")
    else:
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
        check_url(args.base_url)
        from ..backends import OpenAIBackend

        return OpenAIBackend(
            args.model, base_url=args.base_url, endpoint=args.endpoint,
            api_key_env=None if args.no_api_key else args.api_key_env,
        )
    if args.model:
        raise CLIError("--model names a model on a server: give --base-url too.")
    return _local_backend(_gguf(args.gguf[0]) if args.gguf else None)


def further_backends(args) -> list:
    """fit: the backends of the second and later ``--gguf``."""
    return [_local_backend(_gguf(g)) for g in (args.gguf or [])[1:]]


def _gguf(value):
    """A ``--gguf`` value: a checkpoint name as it is, a file's absolute path."""
    from ..backends._checkpoints import CHECKPOINTS

    if value in CHECKPOINTS and not os.path.exists(value):
        return value
    if not os.path.isfile(value):
        raise CLIError(f"--gguf {value}: no such file. The model names are: "
                       f"{', '.join(sorted(CHECKPOINTS))}.")
    return os.path.abspath(value)


def backend_overrides(args, description) -> dict:
    """Predict / report: the backend parameters the user names.

    A GGUF model file: ``--gguf`` for a moved file. A server model file: the
    server (``--base-url``, else :data:`BASE_URL_ENV`) and the key variable
    (``--api-key-env`` / ``--no-api-key``, else :data:`KEY_VARIABLE_ENV`);
    those the file names and the user does not are refused later by
    :func:`~sklearn_llmconf.persistence.attach_backend`.
    """
    if args.gguf and args.base_url:
        raise CLIError("give --gguf or --base-url, not both.")
    if args.api_key_env and args.no_api_key:
        raise CLIError("give --api-key-env or --no-api-key, not both.")
    server = description["backend"]["class"] == "OpenAIBackend"
    if not server:
        for flag, given in (("--base-url", args.base_url),
                            ("--api-key-env", args.api_key_env),
                            ("--no-api-key", args.no_api_key)):
            if given:
                raise CLIError(
                    f"{flag}: the model file's backend is "
                    f"{description['backend']['class']!r}, not a server.")
        if args.gguf:
            if not os.path.isfile(args.gguf):
                raise CLIError(f"--gguf {args.gguf}: no such file.")
            return {"model_path": os.path.abspath(args.gguf)}
        return {}
    if args.gguf:
        raise CLIError("--gguf: the model file's backend is a server "
                       "(OpenAIBackend); give --base-url.")
    out = {}
    base_url = args.base_url or os.environ.get(BASE_URL_ENV) or None
    if base_url is not None:
        check_url(base_url)
        out["base_url"] = base_url
    variable = args.api_key_env or os.environ.get(KEY_VARIABLE_ENV) or None
    if args.no_api_key or (variable is not None and args.api_key_env is None
                           and variable.lower() == "none"):
        out["api_key_env"] = None
    elif variable is not None:
        out["api_key_env"] = variable
    return out


def check_url(url):
    """Refuse a server URL that is not http(s) or does not parse (no password shown)."""
    from urllib.parse import urlsplit

    if not url.startswith(("http://", "https://")):
        raise CLIError(f"--base-url must start with http:// or https://, got "
                       f"{strip_password(url)!r}.")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (parses the port)
    except ValueError as exc:
        raise CLIError(f"--base-url is not a valid URL ({exc}).") from None
    if not parts.hostname:
        raise CLIError("--base-url names no host.")


def unconfirmed_message(exc) -> str:
    """One line: what the model file asks for and how to allow it."""
    asks = exc.asks
    parts = []
    if "base_url" in asks:
        parts.append(f"send requests to {strip_password(str(asks['base_url']))!r}")
    if "api_key_env" in asks:
        parts.append("send the key in the environment variable "
                     f"{asks['api_key_env']!r}")
    return (f"the model file asks to {' and to '.join(parts)}; nothing was sent. "
            "A model file never chooses where your key goes: name the server "
            f"and the key variable yourself with --base-url URL and --api-key-env "
            f"VAR (or --no-api-key), or set {BASE_URL_ENV} and {KEY_VARIABLE_ENV}.")


def check_description(description):
    """Refuse a description without the data columns the command reads."""
    from .._persistence import validate_description

    validate_description(description, DATA_SCHEMA)
    fields = description["data"]["field_columns"]
    if fields is None and len(description["data"]["text_columns"]) != 1:
        raise CLIError("the model file names several text columns but no fields.")
    return description


def check_output(output, inputs, flag="-o"):
    """Refuse an output that is an input (symlinks followed) or has no folder.

    Parameters
    ----------
    output : str
    inputs : list of (what, path)
        Paths that must not be written: data files, the model file, the
        cache (``"-"``, None and database URLs are skipped).
    """
    where = os.path.dirname(os.path.abspath(output))
    if os.path.isdir(output):
        raise CLIError(f"{flag} {output} is a directory.")
    if not os.path.isdir(where):
        raise CLIError(f"{flag} {output}: no directory {where}.")
    target = os.path.realpath(output)
    for what, path in inputs:
        if path in (None, "-") or _is_url(path):
            continue
        same = os.path.realpath(path) == target
        if not same and os.path.exists(output) and os.path.exists(path):
            same = os.path.samefile(path, output)
        if same:
            raise CLIError(f"{flag} {output} is the {what} ({path}): refusing to "
                           "overwrite an input; choose another output file.")


def _is_url(path) -> bool:
    return isinstance(path, str) and "://" in path


def strip_password(url: str) -> str:
    """``url`` with any password in it shown as ``***``."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<a URL that cannot be parsed>"
    if password is None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    name = user.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{name}:***@{host}"))


def shown_cache(cache) -> str:
    """The cache as printed: a database URL's password as ``***``."""
    return strip_password(str(cache)) if _is_url(cache) else str(cache)


def one_line(text) -> str:
    """``text`` on one line."""
    return " ".join(str(text).split())


def check_cache(cache) -> None:
    """Open the response cache once, so that every cache error is one line.

    A folder, another application's database, a file that is not a
    database, a PostgreSQL server that refuses the connection: each is a
    :class:`CLIError` (no password shown), before any output is written.
    """
    from ..cache import open_cache

    try:
        with open_cache(cache) as opened:
            len(opened)
    except Exception as exc:  # sqlite3, psycopg, OS and format errors alike
        message = one_line(exc)
        if _is_url(cache):
            from urllib.parse import urlsplit

            try:
                password = urlsplit(str(cache)).password
            except ValueError:
                password = None
            if password:
                message = message.replace(password, "***")
        raise CLIError(f"--cache {shown_cache(cache)}: {type(exc).__name__}: "
                       f"{message}") from None


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


def prepare_classifiers(router, cache, progress):
    """Set the cache and progress of every fitted LLM in the router's model
    (one, or a hybrid's), with fresh usage counters; return them."""
    from .._persistence import llm_classifiers
    from ..backends import Usage

    clfs = [c for c in llm_classifiers(router.estimator_) if hasattr(c, "classes_")]
    for clf in clfs:
        clf.set_params(cache=cache, progress=progress)
        clf.usage_ = Usage()  # this run only (fit's cost is in the model file)
    return clfs


def total_usage(clfs):
    """The usage of this run, summed over the LLMs."""
    from ..backends import Usage

    total = Usage()
    for clf in clfs:
        total += clf.usage_
    return total


def progress_bar(total, quiet):
    """A progress bar on standard error (None when quiet or without tqdm)."""
    if quiet:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="rows", file=sys.stderr)


def data_source(args, fields) -> dict:
    """What a model file says of the user's data: where it came from, its columns."""
    return {
        "source": "standard input" if args.data == "-" else
        os.path.basename(args.data),
        "text_columns": list(args.text_columns),
        "field_columns": fields,
        "label_column": args.label_column,
    }


def print_written(output, cache) -> None:
    """The last line of ``fit``: the model file, whether it is signed, its cache."""
    from .._archive import KEY_ENV

    signed = (f"signed with {KEY_ENV}" if os.environ.get(KEY_ENV) else
              f"not signed: set {KEY_ENV} to sign")
    print(f"\nwrote {output} ({signed}; cache: {shown_cache(cache)})")
