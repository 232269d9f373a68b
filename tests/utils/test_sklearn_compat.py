"""The compatibility module is the only importer of private scikit-learn names."""

import ast
import importlib.util
from pathlib import Path

import pytest
import sklearn.utils.metadata_routing

from sklearn_llmconf.utils import _sklearn_compat

PACKAGE = Path(_sklearn_compat.__file__).parents[1]


def _private_sklearn_imports(path):
    """``module.name`` for every private scikit-learn name ``path`` imports."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            parts = node.module.split(".")
            if parts[0] != "sklearn":
                continue
            private_module = any(part.startswith("_") for part in parts)
            found += [
                f"{node.module}.{alias.name}"
                for alias in node.names
                if private_module or alias.name.startswith("_")
            ]
        elif isinstance(node, ast.Import):
            found += [
                alias.name
                for alias in node.names
                if alias.name.split(".")[0] == "sklearn"
                and any(part.startswith("_") for part in alias.name.split("."))
            ]
    return found


def test_only_the_compat_module_imports_private_sklearn_names():
    offenders = {
        str(path.relative_to(PACKAGE)): names
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "_sklearn_compat.py"
        and (names := _private_sklearn_imports(path))
    }
    assert offenders == {}


def test_the_check_sees_private_imports(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text(
        "from sklearn.base import _fit_context, clone\n"
        "from sklearn.utils._param_validation import Interval\n"
        "import sklearn.utils._testing\n"
        "from sklearn.utils import check_array\n"
    )
    assert _private_sklearn_imports(source) == [
        "sklearn.base._fit_context",
        "sklearn.utils._param_validation.Interval",
        "sklearn.utils._testing",
    ]


def _load_compat_fresh():
    spec = importlib.util.spec_from_file_location(
        "_sklearn_compat_fresh", _sklearn_compat.__file__
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "routing",
    [
        {"splitter": {}, "estimator": {"fit": {"sample_weight": [1, 2]}}},
        {"estimator": None},
    ],
)
def test_manual_routing_fallback_matches_sklearn(monkeypatch, routing):
    # Where scikit-learn has no _manual_routing (1.8), the fallback builds the
    # same nested Bunch: every method present, unlisted ones empty.
    reference = _sklearn_compat._manual_routing(routing)
    monkeypatch.delattr(
        sklearn.utils.metadata_routing, "_manual_routing", raising=False
    )
    fallback = _load_compat_fresh()._manual_routing
    assert fallback is not _sklearn_compat._manual_routing
    routed = fallback(routing)
    assert routed.keys() == reference.keys()
    for child in routing:
        assert dict(routed[child]) == dict(reference[child])
    if "estimator" in routing and routing["estimator"]:
        assert routed.estimator.fit == {"sample_weight": [1, 2]}
        assert routed.estimator.predict == {}
