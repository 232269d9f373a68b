"""Bit-identity check of a behaviour-preserving change, on the embedded model.

Records, or recomputes and compares, the outputs of a fixed suite of real
embedded-model cases (SmolLM2-135M through ``LlamaCppBackend``), using the
public API only:

========== ==================================================================
case       what
========== ==================================================================
sms8       SMS spam, ``n_shots=8`` (stratified), default in-fit calibration
sms16      SMS spam, default 16 shots, default in-fit calibration
trec0      TREC, 6 coarse classes in words, zero-shot, in-fit calibration
qtypes30   the 30 question types (``load_question_types``), default 16 shots
similar    TREC coarse, ``demo_selection="similar"`` (4 nearest shots)
router     ``ConfidenceRouter(FrozenEstimator(8-shot SMS classifier))``
========== ==================================================================

Per classifier case: ``predict_proba``, ``decision_function``, ``predict``
(each a separate call, so each scores the test texts again: ``cache=None``)
and the documented fitted calibration (``calibration_temperature_``,
``calibration_bias_``). Router: ``thresholds_``, ``n_accepted_``,
``n_errors_`` and ``route`` (the tier of each test text) of an LTT router and
of a plug-in router fitted on the same texts; its classifier has a fresh
SQLite ``ResponseCache`` in a temporary directory, so the second router reads
the first one's scores from it. Nothing is read from an earlier run.

Every case draws its texts from a bundled data set with a fixed seed (every
class present in the fit texts); the backend is ``LlamaCppBackend(n_threads=1,
n_threads_batch=1)`` (default model; the thread settings are fixed so that a
run does not depend on the machine's core count or ``OMP_NUM_THREADS``;
``--threads N`` changes them, to probe that). The cases share one loaded
model and run in the order above; each scores its own prompts from the
model's state, so a case's numbers do not depend on the cases before it.
Usage::

Usage::

    python benchmarks/check_identical.py --record FILE.npz
    python benchmarks/check_identical.py --compare FILE.npz

``--compare`` exits with status 1 and names every array that is not
bit-identical (``np.array_equal(..., equal_nan=True)`` with the same dtype and
shape), missing or new, in a table (case, array, max abs diff). ``--only CASE
...`` runs some cases (``--compare`` then checks only those).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.frozen import FrozenEstimator

import sklearn_llmconf
from sklearn_llmconf import (
    InFitCalibration,
    LLMClassifier,
    PromptTemplate,
    ResponseCache,
)
from sklearn_llmconf.backends import LlamaCppBackend
from sklearn_llmconf.datasets import load_question_types, load_sms_spam, load_trec
from sklearn_llmconf.prompts import DEFAULT_TEMPLATE
from sklearn_llmconf.routing import ConfidenceRouter

THREADS = 1
TREC_WORDS = {"ABBR": "abbreviation", "DESC": "description", "ENTY": "entity",
              "HUM": "human being", "LOC": "location", "NUM": "numeric value"}
TREC_PROMPT = PromptTemplate(DEFAULT_TEMPLATE, verbalizer=TREC_WORDS)
TIERS = (("accept", 0.95), ("review", 0.8))


def _backend():
    return LlamaCppBackend(n_threads=THREADS, n_threads_batch=THREADS)


def _sample(y, n, rng, *, balanced=False):
    """``n`` indices drawn with ``rng``, every class present.

    One of every class, then the others at random; ``balanced=True``: class by
    class in turn.
    """
    order = rng.permutation(len(y))
    by_class = [order[y[order] == c] for c in np.unique(y)]
    if balanced:
        return np.array([i for group in zip(*by_class) for i in group][:n])
    first = [group[0] for group in by_class]
    rest = order[~np.isin(order, first)][: n - len(first)]
    return np.concatenate([first, rest])


def _split(load, n_fit, n_test, seed=0):
    """Fit texts (every class present) and test texts, disjoint."""
    X, y = load(return_X_y=True)
    rng = np.random.RandomState(seed)
    fit = _sample(y, n_fit, rng)
    rest = np.setdiff1d(np.arange(len(y)), fit)
    test = rng.permutation(rest)[:n_test]
    return X[fit], y[fit], X[test], y[test]


def _outputs(clf, X_test):
    return {
        "predict_proba": clf.predict_proba(X_test),
        "decision_function": clf.decision_function(X_test),
        "predict": clf.predict(X_test),
        "calibration_temperature_": np.float64(clf.calibration_temperature_),
        "calibration_bias_": clf.calibration_bias_,
    }


def _classifier_case(load, n_fit, n_test, **params):
    X_fit, y_fit, X_test, _ = _split(load, n_fit, n_test)
    clf = LLMClassifier(backend=_backend(), random_state=0, cache=None, **params)
    clf.fit(X_fit, y_fit)
    return clf, _outputs(clf, X_test)


def case_sms8():
    return _classifier_case(load_sms_spam, 40, 20, n_shots=8)[1]


def case_sms16():
    return _classifier_case(load_sms_spam, 40, 20)[1]


def case_trec0():
    return _classifier_case(load_trec, 40, 20, n_shots=0, prompt=TREC_PROMPT)[1]


def case_qtypes30():
    return _classifier_case(load_question_types, 60, 15)[1]


def case_similar():
    return _classifier_case(load_trec, 30, 12, n_shots=4, prompt=TREC_PROMPT,
                            demo_selection="similar",
                            calibration=InFitCalibration(max_samples=18))[1]


def case_router():
    """Routers on a frozen, fitted 8-shot SMS classifier.

    The classifier is fitted on texts half ham, half spam, so that its
    confidences spread and the thresholds fall inside (0, 1). It has a fresh
    SQLite :class:`ResponseCache` (a temporary file), so the second router and
    the second ``route`` read the first one's scores from it: the cached path
    is checked against the computed one.
    """
    X, y = load_sms_spam(return_X_y=True)
    rng = np.random.RandomState(1)
    fit = _sample(y, 40, rng, balanced=True)
    rest = np.setdiff1d(np.arange(len(y)), fit)
    cal = rng.permutation(rest)[:60]
    test = rng.permutation(np.setdiff1d(rest, cal))[:20]
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        cache = ResponseCache(Path(tmp) / "scores.sqlite")
        clf = LLMClassifier(backend=_backend(), n_shots=8, random_state=1,
                            cache=cache).fit(X[fit], y[fit])
        for method in ("ltt", "plugin"):
            router = ConfidenceRouter(FrozenEstimator(clf), tiers=TIERS,
                                      delta=0.2, method=method).fit(X[cal], y[cal])
            for name in ("thresholds_", "n_accepted_", "n_errors_"):
                out[f"{method}.{name}"] = getattr(router, name)
            out[f"{method}.route"] = router.route(X[test])
        cache.close()
    return out


CASES = {name[len("case_"):]: fn for name, fn in globals().items()
         if name.startswith("case_")}


def _storable(value):
    """(array without object dtype, dtype name of the value)."""
    arr = np.asarray(value)
    dtype = str(arr.dtype)
    if arr.dtype == object:
        arr = arr.astype(str)
    return arr, dtype


def run_suite(names):
    """Compute every case; returns {"case/array": ndarray} and timings."""
    arrays, timings = {}, {}
    for name in names:
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = CASES[name]()
        timings[name] = time.perf_counter() - start
        for key, value in out.items():
            arr, dtype = _storable(value)
            arrays[f"{name}/{key}"] = arr
            arrays[f"{name}/{key}.dtype"] = np.array(dtype)
        seen = sorted({str(w.message)[:60] for w in caught})
        print(f"  {name:<9} {timings[name]:6.1f} s  {len(out)} arrays"
              + (f"  ({len(caught)} warnings: {'; '.join(seen)})" if caught else ""),
              flush=True)
    return arrays, timings


def _max_abs_diff(a, b):
    """What differs between two arrays, as a short text."""
    if a.shape != b.shape:
        return f"shape {a.shape} vs {b.shape}"
    if a.dtype.kind in "fiub" and b.dtype.kind in "fiub":
        a, b = a.astype(np.float64), b.astype(np.float64)
        nan_a, nan_b = np.isnan(a), np.isnan(b)
        if (nan_a != nan_b).any():
            return f"NaN in {int((nan_a != nan_b).sum())} other places"
        with np.errstate(invalid="ignore"):
            diff = np.where((a == b) | nan_a, 0.0, np.abs(a - b))
        return f"{diff.max(initial=0.0):.3g}"
    return f"{int(np.sum(a != b))} of {a.size} differ"


def _identical(a, b, dtype_a, dtype_b):
    return (dtype_a == dtype_b and a.shape == b.shape
            and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))


def compare(recorded, arrays, names):
    """Rows (case, array, what differs) for every array that is not identical."""
    keys = {k for k in recorded if k.split("/")[0] in names} | set(arrays)
    rows = []
    for key in sorted(k for k in keys if not k.endswith(".dtype")):
        case, array = key.split("/", 1)
        if key not in arrays or key not in recorded:
            rows.append((case, array, "missing now" if key not in arrays
                         else "not recorded"))
            continue
        a, b = recorded[key], arrays[key]
        dtype_a, dtype_b = str(recorded[key + ".dtype"]), str(arrays[key + ".dtype"])
        if not _identical(a, b, dtype_a, dtype_b):
            what = _max_abs_diff(a, b)
            if dtype_a != dtype_b:
                what += f" (dtype {dtype_a} vs {dtype_b})"
            rows.append((case, array, what))
    return rows


def main(argv=None):
    global THREADS
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--record", metavar="FILE.npz")
    mode.add_argument("--compare", metavar="FILE.npz")
    parser.add_argument("--only", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--threads", type=int, default=1,
                        help="n_threads = n_threads_batch of the backend (default "
                        "1, as recorded; another value probes whether the "
                        "numbers depend on it)")
    args = parser.parse_args(argv)
    THREADS = args.threads
    print(f"sklearn_llmconf {sklearn_llmconf.__version__} from "
          f"{sklearn_llmconf.__file__}; LlamaCppBackend(n_threads={THREADS}, "
          f"n_threads_batch={THREADS}), default model; cases: {' '.join(args.only)}",
          flush=True)
    start = time.perf_counter()
    arrays, _ = run_suite(args.only)
    print(f"total {time.perf_counter() - start:.1f} s")
    if args.record:
        np.savez(args.record, threads=np.int64(THREADS), **arrays)
        print(f"recorded {sum(not k.endswith('.dtype') for k in arrays)} arrays "
              f"to {args.record}")
        return 0
    with np.load(args.compare, allow_pickle=False) as f:
        recorded = {k: f[k] for k in f.files}
    if int(recorded.get("threads", THREADS)) != THREADS:
        print(f"note: recorded with {int(recorded['threads'])} threads, "
              f"compared with {THREADS}")
    rows = compare(recorded, arrays, set(args.only))
    n = sum(not k.endswith(".dtype") for k in arrays)
    if not rows:
        print(f"all {n} arrays bit-identical to {args.compare}")
        return 0
    print(f"{len(rows)} of {n} arrays differ from {args.compare}:")
    print(f"  {'case':<9} {'array':<28} max abs diff")
    for case, array, what in rows:
        print(f"  {case:<9} {array:<28} {what}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
