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

# The test files that take longest, longest first (from README's test command
# with --durations=0 on 2 cores, 2026-12-06, after the issue-34 trims).
# pytest-xdist's loadfile scheduling hands files out in collection order once
# its own reordering (by number of tests, most first) is off: the longest
# files start first and the short ones fill the gaps, instead of a long
# real-model file starting last on one worker while the other idles. The
# order changes no result; a file missing from the list runs after these, in
# collection order.
LONGEST_FIRST = (
    "tests/test_cli_real_model.py",
    "tests/calibration/test_real_calibration.py",
    "tests/backends/test_transformers.py",
    "tests/backends/test_openai_server.py",
    "tests/test_cli_real_model_server.py",
    "tests/test_cli_real_model_multilabel.py",
    "tests/scoring/test_strategies.py",
    "tests/test_cli_real_model_hybrid.py",
    "tests/backends/test_transformers_checks.py",
    "tests/routing/test_routing_mapie.py",
    "tests/backends/test_llamacpp_threads.py",
    "tests/test_composition_real_model.py",
    "tests/test_default_real_model.py",
    "tests/test_cli_resume.py",
    "tests/hybrid/test_several_llms_real.py",
    "tests/prompts/test_injection_real_model.py",
    "tests/hybrid/test_setfit.py",
    "tests/backends/test_llamacpp.py",
    "tests/test_cli_candidates.py",
    "tests/test_cli.py",
    "tests/routing/test_certificate_real_model.py",
    "tests/backends/test_openai_providers.py",
    "tests/test_multilabel_real_model.py",
    "tests/test_cli_workflow.py",
    "tests/test_cli_inputs.py",
    "tests/test_report_browser.py",
    "tests/test_cli_outputs.py",
)


def pytest_configure(config):
    if hasattr(config.option, "loadscopereorder"):  # pytest-xdist
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config, items):
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


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
