"""BoundedDict: the registries of loaded models and file fingerprints."""

import threading

import pytest

from sklearn_llmconf.backends.llamacpp import _model as llamacpp_model
from sklearn_llmconf.backends.transformers import _model as transformers_model
from sklearn_llmconf.utils._bounded import BoundedDict


def test_least_recently_used_entry_goes_first():
    d = BoundedDict(2)
    d["a"], d["b"] = 1, 2
    assert d["a"] == 1  # "a" is now the most recent
    d["c"] = 3
    assert d.keys() == ["a", "c"] and "b" not in d
    assert d.get("b") is None and d.get("a") == 1
    d["c"] = 30  # replacing refreshes
    d["e"] = 5
    assert d.items() == [("c", 30), ("e", 5)] and len(d) == 2
    with pytest.raises(KeyError):
        d["a"]
    with pytest.raises(ValueError, match="at least 1"):
        BoundedDict(0)


def test_threads_sharing_it_keep_the_bound():
    d = BoundedDict(16)
    errors = []

    def work(t):
        try:
            for i in range(2000):
                d[(t, i % 40)] = i
                d.get((t, (i + 7) % 40))
                d.items()
        except Exception as exc:  # pragma: no cover - the failure reported
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == [] and len(d) == 16


@pytest.mark.parametrize("module", [llamacpp_model, transformers_model])
def test_model_and_fingerprint_registries_are_bounded(module):
    assert isinstance(module._MODELS, BoundedDict)
    assert module._MODELS.maxsize == module.MAX_LOADED_MODELS == 8
    # one file-fingerprint memo for both backends, in the checkpoint registry
    from sklearn_llmconf.backends import _checkpoints
    from sklearn_llmconf.backends.llamacpp import _embedding

    assert isinstance(_checkpoints._FINGERPRINTS, BoundedDict)
    assert isinstance(_embedding._MODELS, BoundedDict)


def test_memoized_rows_computes_each_missing_key_once():
    from sklearn_llmconf.utils._bounded import memoized_rows

    memo = BoundedDict(3)
    memo["b"] = "B (remembered)"
    asked = []

    def compute(first):
        asked.append(first)
        return [keys[i].upper() for i in first]

    keys = ["a", "b", "a", "c"]
    assert memoized_rows(keys, memo, compute) == ["A", "B (remembered)", "A", "C"]
    assert asked == [[0, 3]]  # "a" once (its first row), "c"; "b" not at all
    assert memo.keys() == ["b", "a", "c"]
    assert memoized_rows(["c", "a"], memo, compute) == ["C", "A"]
    assert asked == [[0, 3]]  # all remembered: compute not called
    assert memoized_rows([], memo, compute) == []
