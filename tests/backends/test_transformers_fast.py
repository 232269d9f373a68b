"""TransformersBackend behaviour that needs no model (fast)."""

import pickle
import subprocess
import sys

import numpy as np
import pytest

from sklearn_llmconf.backends import TransformersBackend
from sklearn_llmconf.backends.transformers import _model
from sklearn_llmconf.backends.transformers._dropout import combine_passes
from sklearn_llmconf.backends.transformers._scoring import (
    LabelTree,
    common_prefix_length,
)


def test_importing_the_package_does_not_import_torch():
    code = ("import sys, sklearn_llmconf, sklearn_llmconf.backends; "
            "from sklearn_llmconf.backends import TransformersBackend; "
            "TransformersBackend(); "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_torch_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch", None)  # import now fails
    # a model folder of one's own: the default model's package may be absent too
    with pytest.raises(ImportError,
                       match=r'pip install "sklearn-llmconf\[transformers\]"'):
        TransformersBackend(model=str(tmp_path), device="cpu").score_labels(
            ["Text: hi"], [" a", " b"])


def test_parameters_are_plain_and_pickle_drops_the_model():
    backend = TransformersBackend(dtype="float32", mc_dropout=0.05)
    assert backend.get_params() == {
        "model": None, "dtype": "float32", "device": "auto", "n_threads": None,
        "n_ctx": 2048, "batch_size": 8, "scoring": "full_sequence",
        "mc_dropout": 0.05, "mc_samples": 10, "random_state": 0,
    }
    backend._loaded = object()  # stands for a loaded model
    restored = pickle.loads(pickle.dumps(backend))
    assert not hasattr(restored, "_loaded")
    assert hasattr(backend, "_loaded")
    assert restored.get_params() == backend.get_params()


@pytest.mark.parametrize("params, match", [
    ({"scoring": "last_token"}, "scoring"),
    ({"dtype": "int8"}, "dtype"),
    ({"mc_dropout": 1.0}, "mc_dropout"),
    ({"mc_samples": 0}, "mc_samples"),
    ({"batch_size": 0}, "batch_size"),
    ({"n_threads": 0}, "n_threads"),
])
def test_invalid_parameters_are_rejected_before_loading(params, match):
    backend = TransformersBackend(**params)
    with pytest.raises(ValueError, match=match):
        backend.score_labels(["Text: hi\nAnswer:"], [" a", " b"])


def test_missing_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.gguf"):
        _model.split_source(str(tmp_path / "nope.gguf"))
    with pytest.raises(ValueError, match="GGUF"):
        path = tmp_path / "weights.pt"
        path.write_bytes(b"x")
        _model.split_source(path)
    assert _model.split_source("org/some-model") == ("org/some-model", None, False)


def test_weights_fingerprint_reads_bytes_not_names(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        folder.mkdir()
        (folder / "config.json").write_text('{"model_type": "llama"}')
        (folder / "model.safetensors").write_bytes(bytes(1000))
    assert _model.weights_fingerprint(str(a), None) == \
        _model.weights_fingerprint(str(b), None)
    (b / "model.safetensors").write_bytes(bytes(999) + b"\1")  # one byte apart
    assert _model.weights_fingerprint(str(a), None) != \
        _model.weights_fingerprint(str(b), None)
    (a / "m.gguf").write_bytes(b"GGUF" + bytes(10))
    (b / "m.gguf").write_bytes(b"GGUF" + bytes(9) + b"\1")
    assert _model.weights_fingerprint(str(a), "m.gguf") != \
        _model.weights_fingerprint(str(b), "m.gguf")


def test_cache_identity_keeps_what_changes_scores(tmp_path):
    pytest.importorskip("torch")
    path = tmp_path / "m.gguf"
    path.write_bytes(b"GGUF" + bytes(100))
    base = TransformersBackend(path, dtype="float32", device="cpu").cache_identity()
    assert base["model"] == "m.gguf" and len(base["weights_sha256"]) == 64
    speed = TransformersBackend(path, dtype="float32", device="cpu", n_threads=1,
                                batch_size=2).cache_identity()
    assert speed == base
    assert "mc_dropout" not in base
    for other in ({"dtype": "bfloat16"}, {"scoring": "first_token"},
                  {"mc_dropout": 0.05}):
        params = {"dtype": "float32", "device": "cpu", **other}
        assert TransformersBackend(path, **params).cache_identity() != base
    mc = TransformersBackend(path, dtype="float32", device="cpu", mc_dropout=0.05)
    assert mc.cache_identity() != TransformersBackend(
        path, dtype="float32", device="cpu", mc_dropout=0.05, random_state=1
    ).cache_identity()


def test_auto_dtype_and_device(monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(_model, "_cpu_has_bf16", lambda: True)
    assert _model.resolve_dtype("auto", "cpu") == "bfloat16"
    monkeypatch.setattr(_model, "_cpu_has_bf16", lambda: False)
    assert _model.resolve_dtype("auto", "cpu") == "float32"
    assert _model.resolve_dtype("float64", "cpu") == "float64"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert _model.resolve_device("auto") == expected
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            _model.resolve_device("cuda")


def test_thread_setting_is_scoped():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    with _model.torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_label_tree_shares_prefixes_and_sees_only_ancestors():
    tree = LabelTree([[5], [6, 7], [6, 8, 9], [6, 8, 10]])
    # Internal nodes: (6,), (6, 8); each label token is read once.
    assert tree.node_tokens.tolist() == [6, 8]
    assert tree.node_depth.tolist() == [1, 2]
    assert tree.visible.tolist() == [[True, False], [True, True]]
    assert tree.entry_row.tolist() == [0, 0, 1, 0, 1, 2, 0, 1, 2]
    assert tree.entry_token.tolist() == [5, 6, 7, 6, 8, 9, 6, 8, 10]
    assert tree.entry_label.tolist() == [0, 1, 1, 2, 2, 2, 3, 3, 3]
    assert LabelTree([[1], [2]]).n_nodes == 0


def test_common_prefix_length():
    assert common_prefix_length([[1, 2, 3], [1, 2, 4], [1, 2]]) == 2
    assert common_prefix_length([[1, 2], [3]]) == 0
    assert common_prefix_length([[1, 2, 3]]) == 3


def test_combine_passes_averages_probabilities_and_measures_disagreement():
    agree = np.log(np.tile([[[0.2, 0.6]]], (3, 4, 1)))
    mean, extra = combine_passes(agree)
    np.testing.assert_allclose(mean, np.log([[0.2, 0.6]] * 3))
    np.testing.assert_allclose(extra["mc_mutual_information"], 0, atol=1e-12)
    np.testing.assert_allclose(extra["mc_variance"], 0, atol=1e-12)
    # Two passes that disagree completely (0.9/0.1 and 0.1/0.9): the mean is
    # 0.5/0.5 and the mutual information is H(0.5) - H(0.9).
    disagree = np.log([[[0.9, 0.1], [0.1, 0.9]]])
    mean, extra = combine_passes(disagree)
    np.testing.assert_allclose(np.exp(mean), [[0.5, 0.5]])
    h = lambda p: -(p * np.log(p) + (1 - p) * np.log(1 - p))  # noqa: E731
    np.testing.assert_allclose(extra["mc_mutual_information"], [h(0.5) - h(0.9)])
    np.testing.assert_allclose(extra["mc_variance"], [2 * 0.4**2])
    assert extra["mc_mutual_information"].shape == (1,)
