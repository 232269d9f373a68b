"""scikit-learn's estimator checks on LLMClassifier over TransformersBackend.

The model is a two-layer Llama with random weights and the embedded model's
tokenizer, saved with ``save_pretrained``: the checks exercise the backend's
real path (tokenizing, the batched label tree, the cache identity from the
weights, pickling and cloning) in seconds, where SmolLM2 itself takes about
half a minute per check. Accuracy is not what these checks measure
(``LLMClassifier`` has the ``poor_score`` tag); the real model's scores are
tested in ``test_transformers.py``.
"""

import atexit
import os
import shutil
import tempfile

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before huggingface_hub reads it
pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("gguf")
pytest.importorskip("accelerate")

from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from sklearn_llmconf import LLMClassifier  # noqa: E402
from sklearn_llmconf.backends import TransformersBackend  # noqa: E402

# parametrize_with_checks needs the estimator when the module is collected;
# the folder is filled by the fixture below before the first check runs.
pytestmark = pytest.mark.slow  # about a minute on 2 cores

# The same path in every pytest-xdist worker of one run (the checks' test ids
# hold it, and workers must collect the same ids); the worker that runs the
# fixture writes the model and removes it at exit.
TINY_MODEL = os.path.join(
    tempfile.gettempdir(),
    f"llmconf-tiny-llama-{os.environ.get('PYTEST_XDIST_TESTRUNUID', os.getpid())}")


@pytest.fixture(scope="module", autouse=True)
def tiny_model():
    import torch
    import transformers

    from sklearn_llmconf.backends import default_model_path
    from sklearn_llmconf.backends.transformers._model import split_source

    folder, gguf_file, _ = split_source(default_model_path())
    tokenizer = transformers.AutoTokenizer.from_pretrained(
        folder, gguf_file=gguf_file, local_files_only=True)
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=4096, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    atexit.register(shutil.rmtree, TINY_MODEL, ignore_errors=True)
    transformers.LlamaForCausalLM(config).save_pretrained(TINY_MODEL)
    tokenizer.save_pretrained(TINY_MODEL)
    return TINY_MODEL


@parametrize_with_checks(
    # 2 demonstrations (stratified: both classes of a binary check): the
    # checks' prompts are much of their time, and the shots are not what the
    # checks are about.
    [LLMClassifier(n_shots=2, backend=TransformersBackend(
        TINY_MODEL, dtype="float32", device="cpu", n_threads=1, n_ctx=4096))],
    # LLMClassifier(**moved): the one-release keywords of its old parameters
    # (see tests/test_common.py).
    expected_failed_checks=lambda est: {
        "check_do_not_raise_errors_in_init_or_set_params": (
            "the one-release **moved keywords of LLMClassifier's old parameters")},
)
def test_sklearn_compatible_estimator_on_transformers(estimator, check):
    check(estimator)
