"""Sphinx configuration for sklearn_llmconf.

Builds offline: no intersphinx inventories are fetched and no remote image is
referenced. Build with ``docs/build.sh`` (or ``make -C docs html``); set
``-D plot_gallery=0`` to skip running the examples.
"""

import os
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent / "_ext"))
# Examples and the sphinx-gallery run happen in this process: pin the plotting
# backend before anything imports pyplot.
os.environ.setdefault("MPLBACKEND", "Agg")

import sklearn_llmconf  # noqa: E402

project = "sklearn_llmconf"
author = "sklearn_llmconf developers"
copyright = "sklearn_llmconf developers"  # noqa: A001
version = release = sklearn_llmconf.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.doctest",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "runblock",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "auto_examples/*.ipynb", "**/*.py.md5",
                    "sg_execution_times.rst"]
root_doc = "index"
default_role = "obj"
nitpicky = False

# -- autodoc / autosummary / numpydoc -----------------------------------------
autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
# Validate the docstring sections of every documented object; a failure is a
# warning, hence an error under -W.
numpydoc_validation_checks = {"GL06", "GL07", "PR10", "SA04"}
numpydoc_xref_param_type = False

# -- sphinx-gallery -----------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    "image_scrapers": ("matplotlib",),
    # Each example must finish; one that raises fails the build.
    "abort_on_example_error": False,
    "only_warn_on_example_error": False,
    "reference_url": {"sklearn_llmconf": None},
    "doc_module": ("sklearn_llmconf",),
    "backreferences_dir": "generated/backreferences",
    "inspect_global_variables": False,
}

# -- HTML ---------------------------------------------------------------------
html_theme = "alabaster"
html_theme_options = {"description": "LLM classifiers with calibrated probabilities"}
html_static_path = []

warnings.filterwarnings("ignore", category=UserWarning,
                        message="Matplotlib is currently using agg")


def _skip_member(app, what, name, obj, skip, options):
    # scikit-learn adds set_{method}_request methods for metadata routing;
    # their docstrings are scikit-learn's, with links into its own docs.
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


def _check_api_complete(app):
    """Warn (an error under -W) about public names missing from api.rst."""
    import importlib
    import re

    from sphinx.util import logging

    text = (Path(app.srcdir) / "api.rst").read_text()
    documented = set(re.findall(r"^   (\w+)$", text, flags=re.M))
    documented |= set(re.findall(r"^\.\. autodata:: (\w+)", text, flags=re.M))
    documented |= {"__version__", "log_loss"}  # shown in prose
    for module in ("sklearn_llmconf", "sklearn_llmconf.backends",
                   "sklearn_llmconf.metrics", "sklearn_llmconf.plotting",
                   "sklearn_llmconf.datasets"):
        for name in importlib.import_module(module).__all__:
            if name not in documented:
                logging.getLogger(__name__).warning(
                    "%s.%s is public but not in docs/api.rst", module, name)


def setup(app):
    app.connect("autodoc-skip-member", _skip_member)
    app.connect("builder-inited", _check_api_complete)
