"""Calibration: post-hoc and in-fit rescaling of the label log-scores.

- ``_scaler``: :class:`TemperatureScaler`, the meta-estimator.
- ``_temperature``: temperature and bias maths on logits.
- ``_priors``: label-free prior corrections (content-free and batch priors).
- ``_infit``: the temperature and shrunk bias that ``LLMClassifier.fit`` learns.
"""

from ._infit import InFitCalibration
from ._scaler import TemperatureScaler

__all__ = ["InFitCalibration", "TemperatureScaler"]
