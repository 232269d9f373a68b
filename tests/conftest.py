"""Shared fixtures (OpenAI backend: fault-injecting HTTP server)."""

import os

# Models load from installed packages only (sentence embeddings, transformers):
# a hub download would fail on a machine without internet.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# README's test command runs two pytest-xdist workers on two cores: each
# worker's embedded models get one thread (default_n_threads honours it, as
# it does in joblib's workers), so that two models never spin against each
# other at llama.cpp's barriers. An explicit setting is kept.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest

from sklearn_llmconf.testing._fault_server import FaultServer


@pytest.fixture(scope="session")
def _fault_server_session():
    server = FaultServer().start()
    yield server
    server.stop()


@pytest.fixture
def fault_server(_fault_server_session):
    """A running :class:`sklearn_llmconf.testing.FaultServer`, reset for each test."""
    _fault_server_session.reset()
    yield _fault_server_session
    _fault_server_session.reset()
