"""Run llama-cpp-python's OpenAI-compatible server with this package's loader.

Usage is exactly that of ``python -m llama_cpp.server`` (same arguments)::

    python -m sklearn_llmconf.backends.llama_server --model MODEL.gguf \\
        --host 127.0.0.1 --port 8000 --logits_all true

The only difference: models are loaded without llama.cpp's extra CPU buffer
types, which crash llama-cpp-python 0.3.36 on processors with AMX (see
:func:`sklearn_llmconf.backends.llamacpp._backend.without_extra_buffer_types`). Needs
``pip install "sklearn-llmconf[server]"``.
"""

from .llamacpp._backend import without_extra_buffer_types


def main() -> None:
    """Start the server; the extra buffer types stay off for its lifetime."""
    from llama_cpp.server.__main__ import main as server_main

    with without_extra_buffer_types():
        server_main()


if __name__ == "__main__":  # pragma: no cover - exercised by the server tests
    main()
