"""A router certified on one GGUF file and used with another (slow, real model)."""

import shutil
import struct

import numpy as np
import pytest
from sklearn.frozen import FrozenEstimator

pytest.importorskip("llama_cpp")

from sklearn_llmconf import LLMClassifier  # noqa: E402
from sklearn_llmconf.backends import LlamaCppBackend, default_model_path  # noqa: E402
from sklearn_llmconf.routing import ConfidenceRouter, UncertifiedWarning  # noqa: E402

from .._data import short_sms  # noqa: E402

pytestmark = pytest.mark.slow


def _copy_with_one_byte_changed(src, dst):
    """Copy a GGUF file, changing the first letter of its ``general.name``."""
    shutil.copyfile(src, dst)
    with open(dst, "r+b") as f:
        head = f.read(1 << 16)
        key = head.find(b"general.name")
        assert key > 0
        at = key + len(b"general.name")
        value_type, length = struct.unpack("<IQ", head[at:at + 12])
        assert value_type == 8 and length > 0  # a string
        f.seek(at + 12)
        first = f.read(1)
        f.seek(at + 12)
        f.write(b"T" if first != b"T" else b"U")


def test_router_fitted_on_one_gguf_marks_another_uncertified(tmp_path):
    X, y, _, _ = short_sms(24, seed=0)
    original = str(default_model_path())
    copy = str(tmp_path / "SmolLM2-renamed.gguf")
    _copy_with_one_byte_changed(original, copy)

    backend = LlamaCppBackend(n_threads=1, n_threads_batch=1)
    clf = LLMClassifier(backend=backend, n_shots=0, calibration=None).fit(X, y)
    router = ConfidenceRouter(FrozenEstimator(clf), tiers=[("accept", 0.6)]).fit(X, y)
    certified = router.decide(X[:6])
    assert certified.certified.all() and router.check_certificate() == []

    router.estimator_.backend.set_params(model_path=copy)
    assert router.check_certificate() == ["model"]
    with pytest.warns(UncertifiedWarning, match="model differ"):
        other = router.decide(X[:6])
    assert not other.certified.any()
    # The copy loads and scores (its weights are the same: only a name changed),
    # so nothing but the certificate tells the two apart.
    np.testing.assert_allclose(other.confidence, certified.confidence, atol=1e-6)
    assert (router.certificate_["model"][0]["model_sha256"]
            != router.estimator_.backend.cache_identity()["model_sha256"])
