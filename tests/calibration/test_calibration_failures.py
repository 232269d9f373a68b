"""Failed rows of an LLMClassifier survive calibration as failures (#11 item 2)."""

import warnings

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator

from sklearn_llmconf import LLMClassifier, TemperatureScaler
from sklearn_llmconf.testing import KeywordBackend

# KeywordBackend scores a label by counting its word in the text; the ham rows
# outnumber the spam rows, so the fitted bias is far from 0.
TRAIN = [
    "spam offer now", "cheap spam deal", "spam prize", "ham at lunch",
    "call me ham", "ham meeting at noon", "thanks for dinner ham",
    "are you home yet ham", "lunch tomorrow ham", "running late ham",
    "ham see you", "spam ham mixed", "ham tonight", "ham later",
]
Y = ["spam", "spam", "spam", "ham", "ham", "ham", "ham", "ham", "ham", "ham",
     "ham", "spam", "ham", "ham"]
TEST = ["spam for you", "FAIL this one", "ham soon", "FAIL again"]


def _llm(on_error):
    # raw scores: the scaler is what is under test
    return LLMClassifier(backend=KeywordBackend(fail_on="FAIL"), n_shots=0,
                         calibration=None, on_error=on_error)


def _scaler(on_error, **params):
    clf = _llm(on_error).fit(TRAIN, Y)
    return TemperatureScaler(FrozenEstimator(clf), bias=True, **params).fit(TRAIN, Y)


def test_warn_rows_stay_uniform_after_bias():
    scaler = _scaler("warn", bias_shrinkage=0.0)
    assert abs(scaler.bias_) > 0.05  # the bias would move a logit of 0
    with pytest.warns(UserWarning, match="2 of 4 rows could not be scored"):
        proba = scaler.predict_proba(TEST)
    np.testing.assert_array_equal(proba[[1, 3]], 0.5)
    assert np.all(np.abs(proba[[0, 2]] - 0.5) > 0.05)
    with pytest.warns(UserWarning):
        np.testing.assert_array_equal(scaler.decision_function(TEST)[[1, 3]], 0.0)


def test_nan_rows_stay_nan_and_do_not_sink_the_batch():
    scaler = _scaler("nan")
    proba = scaler.predict_proba(TEST)
    assert np.isnan(proba[[1, 3]]).all()
    assert np.isfinite(proba[[0, 2]]).all()
    np.testing.assert_allclose(proba[[0, 2]].sum(axis=1), 1.0)
    assert np.isnan(scaler.decision_function(TEST)[[1, 3]]).all()
    with pytest.raises(ValueError, match="2 rows have no score"):
        scaler.predict(TEST)
    np.testing.assert_array_equal(scaler.predict([TEST[0], TEST[2]]),
                                  ["spam", "ham"])


def test_multiclass_nan_rows_stay_nan():
    texts = ["red apple", "blue sky", "green grass", "FAIL red", "red blue",
             "green tea", "blue sea", "red wine", "green leaf"]
    labels = ["red", "blue", "green", "red", "blue", "green", "blue", "red",
              "green"]
    clf = _llm("nan").fit(texts, labels)
    with pytest.warns(UserWarning, match="1 of 9 calibration rows failed"):
        scaler = TemperatureScaler(FrozenEstimator(clf), bias=True).fit(
            texts, labels)
    proba = scaler.predict_proba(texts)
    assert np.isnan(proba[3]).all()
    assert np.isfinite(np.delete(proba, 3, axis=0)).all()


@pytest.mark.parametrize("on_error", ["warn", "nan"])
def test_failed_rows_are_left_out_of_fit(on_error):
    clf = _llm(on_error).fit(TRAIN, Y)
    X = TRAIN + ["FAIL one", "FAIL two", "FAIL three"]
    y = Y + ["spam", "spam", "spam"]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*could not be scored")
        with pytest.warns(UserWarning, match="3 of 17 calibration rows failed"):
            with_failed = TemperatureScaler(FrozenEstimator(clf), bias=True,
                                            bias_shrinkage=0.0).fit(X, y)
    clean = TemperatureScaler(FrozenEstimator(clf), bias=True,
                              bias_shrinkage=0.0).fit(TRAIN, Y)
    assert with_failed.temperature_ == pytest.approx(clean.temperature_)
    assert with_failed.bias_ == pytest.approx(clean.bias_)


def test_sklearn_calibrated_classifier_cv_with_failed_rows():
    """What scikit-learn's calibrator (which we do not control) does, 1.9.

    Documented in docs/user_guide/failures.rst: a "warn" row (logit 0) comes out
    as an ordinary, rescaled prediction; a NaN row in the calibration set
    silently spoils method="sigmoid" (one constant output) and makes
    method="temperature" raise for the whole batch at predict time.
    """
    warn_clf = _llm("warn").fit(TRAIN, Y)
    cal = CalibratedClassifierCV(FrozenEstimator(warn_clf), method="sigmoid")
    cal.fit(TRAIN, Y)
    with pytest.warns(UserWarning, match="could not be scored"):
        proba = cal.predict_proba(TEST)
    # The failed rows are no longer uniform: the sigmoid moved them.
    assert np.all(np.abs(proba[[1, 3], 0] - 0.5) > 0.01)

    nan_clf = _llm("nan").fit(TRAIN, Y)
    sigmoid = CalibratedClassifierCV(FrozenEstimator(nan_clf), method="sigmoid")
    proba = sigmoid.fit(TRAIN + ["FAIL x"], Y + ["spam"]).predict_proba(TEST)
    np.testing.assert_allclose(proba[0], proba[2])  # the spam/ham signal is gone
    temperature = CalibratedClassifierCV(FrozenEstimator(nan_clf),
                                         method="temperature").fit(TRAIN, Y)
    with pytest.raises(ValueError, match="NaN"):
        temperature.predict_proba(TEST)
    # Our scaler keeps both the signal and the batch.
    ours = TemperatureScaler(FrozenEstimator(nan_clf)).fit(TRAIN, Y)
    proba = ours.predict_proba(TEST)
    assert proba[0, 1] > 0.5 > proba[2, 1]


def test_missing_class_in_calibration_labels_does_not_raise():
    # sklearn's CalibratedClassifierCV(FrozenEstimator) raises IndexError here.
    texts = ["red apple", "blue sky", "green grass", "red wine", "blue sea"]
    labels = ["red", "blue", "green", "red", "blue"]
    clf = LLMClassifier(backend=KeywordBackend(), n_shots=0, calibration=None)
    clf.fit(texts, labels)
    keep = [0, 1, 3, 4]  # no "green"
    X_cal = [texts[i] for i in keep] * 3
    y_cal = [labels[i] for i in keep] * 3
    scaler = TemperatureScaler(FrozenEstimator(clf), bias=True).fit(X_cal, y_cal)
    np.testing.assert_array_equal(scaler.classes_, ["blue", "green", "red"])
    proba = scaler.predict_proba(["green grass"])
    assert proba.shape == (1, 3) and np.isfinite(proba).all()
    assert proba[0, 1] > 0.0
