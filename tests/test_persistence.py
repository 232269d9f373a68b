"""Model files: skops round trip, refused foreign / altered files, no secrets,
identity checked against the certificate (GGUF bytes, server model name)."""

import shutil
import zipfile

import numpy as np
import pytest
import skops.io as sio
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression

from sklearn_llmconf import LLMClassifier
from sklearn_llmconf.backends import OpenAIBackend
from sklearn_llmconf.persistence import ModelFileError, load_model, save_model
from sklearn_llmconf.routing import ConfidenceRouter
from sklearn_llmconf.testing import KeywordBackend
from tests._data import X_BIN, Y_BIN

X = [f"{t} {y if i % 3 else ''}"
     for i, (t, y) in enumerate(zip(X_BIN * 10, Y_BIN * 10))]
Y = list(Y_BIN) * 10


def fitted_router(backend=None):
    clf = LLMClassifier(backend=backend or KeywordBackend(), n_shots=2,
                        random_state=0).fit(X[:40], Y[:40])
    router = ConfidenceRouter(FrozenEstimator(clf), tiers=[("accept", 0.6)])
    return router.fit(X[40:], Y[40:])


def test_round_trip_is_bit_identical(tmp_path):
    router = fitted_router()
    path = tmp_path / "m.skops"
    desc = save_model(path, router, certification_proba=router.predict_proba(X[40:]),
                      certification_y=Y[40:], metadata={"note": "x"})
    loaded, desc2, extras = load_model(path)
    assert desc2 == desc and desc["note"] == "x"
    new = [f"new text {i} spam" if i % 2 else f"hello {i}" for i in range(30)]
    np.testing.assert_array_equal(loaded.predict_proba(new), router.predict_proba(new))
    np.testing.assert_array_equal(loaded.route(new), router.route(new))
    np.testing.assert_array_equal(loaded.thresholds_, router.thresholds_)
    assert extras["certification_proba"].shape == (len(X) - 40, 2)
    assert desc["certificate"]["tiers"] == ["accept"]
    # the saved classifier carries no backend object, cache or live model
    inner = loaded.estimator_.estimator
    assert isinstance(inner.backend, KeywordBackend) and inner.cache is None


def test_foreign_and_altered_files_are_refused(tmp_path):
    path = tmp_path / "m.skops"
    save_model(path, fitted_router())
    # a skops file of something else
    other = tmp_path / "lr.skops"
    sio.dump(LogisticRegression().fit([[0], [1]], [0, 1]), other)
    with pytest.raises(ModelFileError, match="not a sklearn-llmconf model file"):
        load_model(other)
    # a type nobody trusted (the package's own: trust is by name, not prefix)
    sio.dump({"format": "sklearn-llmconf-model/1", "f": KeywordBackend()},
             tmp_path / "kw.skops")
    with pytest.raises(ModelFileError, match="does not trust.*KeywordBackend"):
        load_model(tmp_path / "kw.skops")
    # the mark without the content
    sio.dump({"format": "sklearn-llmconf-model/1"}, tmp_path / "mark.skops")
    with pytest.raises(ModelFileError, match="not a sklearn-llmconf model file"):
        load_model(tmp_path / "mark.skops")
    # one byte of the archive changed
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF
    (tmp_path / "bad.skops").write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="bad.skops"):
        load_model(tmp_path / "bad.skops")
    (tmp_path / "text.skops").write_text("hello")
    with pytest.raises(ModelFileError, match="not a skops archive"):
        load_model(tmp_path / "text.skops")


def test_no_credential_in_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_SERVER_KEY", "sk-live-4f9c1e")
    router = fitted_router()
    router.estimator_.estimator.backend = OpenAIBackend(
        "smollm2", base_url="http://alice:pw-8d2e@127.0.0.1:9/v1",
        api_key_env="MY_SERVER_KEY", endpoint="chat")
    path = tmp_path / "m.skops"
    desc = save_model(path, router)
    with zipfile.ZipFile(path) as z:
        content = b"".join(z.read(n) for n in z.namelist())
    assert b"MY_SERVER_KEY" in content  # where the key comes from ...
    for secret in (b"sk-live-4f9c1e", b"pw-8d2e", b"alice"):  # ... never the key
        assert secret not in content
    assert desc["backend"]["params"]["base_url"] == "http://127.0.0.1:9/v1"
    confirmed = {"base_url": "http://127.0.0.1:9/v1", "api_key_env": "MY_SERVER_KEY"}
    loaded, _, _ = load_model(path, backend_overrides=confirmed)
    assert loaded.estimator_.estimator.backend.model == "smollm2"
    with pytest.raises(ModelFileError, match="model: certified 'smollm2', found "
                                             "'gpt-x'"):
        load_model(path, backend_overrides={**confirmed, "model": "gpt-x"})


def test_a_gguf_with_one_byte_changed_is_refused(tmp_path):
    from sklearn_llmconf.backends import LlamaCppBackend
    from sklearn_llmconf.backends.llamacpp import default_model_path

    try:
        original = default_model_path()
    except Exception as exc:
        pytest.skip(f"no embedded model installed ({exc})")
    a, b = tmp_path / "a.gguf", tmp_path / "b.gguf"
    shutil.copyfile(original, a)
    shutil.copyfile(original, b)
    with open(b, "r+b") as f:  # one byte in the middle of the weights
        f.seek(a.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0x01]))
    # certified on a.gguf (the keyword backend did the scoring: no model load)
    router = fitted_router()
    router.estimator_.estimator.backend = LlamaCppBackend(model_path=str(a))
    path = tmp_path / "m.skops"
    desc = save_model(path, router)
    assert len(desc["identity"]["model_sha256"]) == 64
    loaded, _, _ = load_model(path)
    assert loaded.estimator_.estimator.backend.model_path == str(a)
    with pytest.raises(ModelFileError, match=r"model_sha256: certified '[0-9a-f]{8}"
                                             r".*void for another model"):
        load_model(path, backend_overrides={"model_path": str(b)})


def test_a_hybrid_round_trip(tmp_path):
    """The model file holds a hybrid: every LLM inside loses its backend for
    the file, gets the rebuilt one on load, and the certificate still holds."""
    import warnings

    from sklearn_llmconf.hybrid import make_hybrid_classifier
    from sklearn_llmconf.persistence import TRUSTED_TYPES
    from sklearn_llmconf.routing import UncertifiedWarning

    llm = LLMClassifier(backend=KeywordBackend(), n_shots=2, random_state=0)
    model = make_hybrid_classifier(llm, embeddings=False, Cs=3, cv=3)
    model.fit(X[:40], Y[:40])
    router = ConfidenceRouter(FrozenEstimator(model), tiers=[("accept", 0.6)])
    router.fit(X[40:], Y[40:])
    path = tmp_path / "h.skops"
    desc = save_model(path, router)
    assert desc["estimator"] == "BlockStackingClassifier"
    assert desc["backend"]["class"] == "KeywordBackend"
    # the caller's model still has its backend after the file is written
    scores = model.transformers_[-1][1][0]
    assert isinstance(scores.estimator_.backend, KeywordBackend)
    untrusted = set(sio.get_untrusted_types(file=path))
    assert "sklearn_llmconf.hybrid._scores.LLMScores" in untrusted
    assert untrusted <= set(TRUSTED_TYPES)
    loaded, _, _ = load_model(path)
    inner = loaded.estimator_.estimator.transformers_[-1][1][0]
    assert isinstance(inner.estimator_.backend, KeywordBackend)
    assert inner.estimator_.cache is None
    new = [f"new text {i} spam" if i % 2 else f"hello {i}" for i in range(30)]
    with warnings.catch_warnings():
        warnings.simplefilter("error", UncertifiedWarning)
        np.testing.assert_array_equal(loaded.predict_proba(new),
                                      router.predict_proba(new))
        np.testing.assert_array_equal(loaded.route(new), router.route(new))
