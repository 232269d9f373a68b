"""Optional dependencies: imported where they are used, with the extra to install."""

from __future__ import annotations

import importlib

__all__ = ["check_matplotlib_support", "import_optional"]


def import_optional(module: str, *, extra: str, needed_by: str):
    """Import ``module`` or raise an ImportError that names the package extra.

    Parameters
    ----------
    module : str
        Dotted module name, e.g. ``"matplotlib"``.
    extra : str
        The ``sklearn-llmconf`` extra that installs it, e.g. ``"plot"``.
    needed_by : str
        What needs it, for the message, e.g. ``"RoutingDisplay.plot"``.

    Returns
    -------
    module : module
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{needed_by} needs {module.split('.')[0]}, which is not installed. "
            f'Install it with: pip install "sklearn-llmconf[{extra}]"'
        ) from exc


def check_matplotlib_support(caller_name: str) -> None:
    """Raise an ImportError naming the ``plot`` extra if matplotlib is missing.

    Shared by every Display of the package.
    """
    import_optional("matplotlib", extra="plot", needed_by=caller_name)
