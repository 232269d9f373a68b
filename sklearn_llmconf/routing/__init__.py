"""Decisions at a certified precision: accept, review or escalate each text.

:class:`ConfidenceRouter` wraps a probabilistic classifier and certifies, on
held-out labels, one confidence threshold per tier (learn-then-test,
Angelopoulos et al. 2021) so that the accepted predictions reach each tier's
target precision on new data with probability at least ``1 - delta``.
After deployment, :class:`RoutingMonitor` audits a random share of the
accepted rows with anytime-valid bounds, :class:`DriftMonitor` raises a
label-free alarm when live confidences drift, the router's ``certificate_``
flags scoring with another model or prompt, and :class:`ConfidenceCascade`
certifies a chain of models that ends with a person. :class:`MultiLabelRouter`
certifies a threshold per label and direction for several labels per text.
"""

from ._cascade import ConfidenceCascade
from ._certificate import UncertifiedWarning
from ._drift import DriftAlarmWarning, DriftMonitor
from ._monitor import PrecisionAlarmWarning, RoutingMonitor
from ._multilabel import MultiLabelRouter
from ._report import routing_report
from ._router import ConfidenceRouter, RefittedWarning
from ._stats import required_calibration_size

__all__ = [
    "ConfidenceCascade",
    "ConfidenceRouter",
    "DriftAlarmWarning",
    "DriftMonitor",
    "MultiLabelRouter",
    "PrecisionAlarmWarning",
    "RefittedWarning",
    "RoutingMonitor",
    "UncertifiedWarning",
    "required_calibration_size",
    "routing_report",
]
