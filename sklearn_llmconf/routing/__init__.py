"""Decisions at a certified precision: accept, review or escalate each text.

:class:`ConfidenceRouter` wraps a probabilistic classifier and certifies, on
held-out labels, one confidence threshold per tier (learn-then-test,
Angelopoulos et al. 2021) so that the accepted predictions reach each tier's
target precision on new data with probability at least ``1 - delta``.
"""

from ._report import routing_report
from ._router import ConfidenceRouter
from ._stats import required_calibration_size

__all__ = ["ConfidenceRouter", "required_calibration_size", "routing_report"]
