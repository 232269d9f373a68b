"""Argument types of the command: every bad value is refused while parsing,
before any data is read or any model is loaded."""

from __future__ import annotations

import argparse
import math

__all__ = ["fraction", "non_negative_int", "parse_tiers", "positive_int"]


def positive_int(text):
    """An int >= 1."""
    return _int(text, 1)


def non_negative_int(text):
    """An int >= 0."""
    return _int(text, 0)


def _int(text, low):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") \
            from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
    return value


def fraction(text):
    """A float in the open interval (0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 < value < 1.0 or math.isnan(value):
        raise argparse.ArgumentTypeError(f"must lie in (0, 1), got {value:g}")
    return value


def parse_tiers(text):
    """``"accept=0.99,review=0.9"`` -> ``[("accept", 0.99), ("review", 0.9)]``.

    Names must be distinct and non-empty, targets in (0, 1) and strictly
    decreasing, as :class:`~sklearn_llmconf.routing.ConfidenceRouter` needs.
    """
    try:
        tiers = [(name.strip(), float(target)) for name, target in
                 (part.split("=") for part in text.split(","))]
    except ValueError as e:
        raise argparse.ArgumentTypeError(
            f"tiers must read like accept=0.99,review=0.9; got {text!r}") from e
    names = [n for n, _ in tiers]
    targets = [t for _, t in tiers]
    if not all(names) or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(
            f"tier names must be distinct and non-empty; got {text!r}")
    if not all(0.0 < t < 1.0 for t in targets):
        raise argparse.ArgumentTypeError(
            f"tier targets must lie in (0, 1); got {text!r}")
    if any(b >= a for a, b in zip(targets, targets[1:])):
        raise argparse.ArgumentTypeError(
            f"tier targets must be strictly decreasing, highest first; got {text!r}")
    return tiers
