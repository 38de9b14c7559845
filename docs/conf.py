"""Sphinx configuration for the skmoe documentation."""

project = "skmoe"
author = "the skmoe developers"
copyright = "2026, the skmoe developers"

import skmoe  # noqa: E402

release = skmoe.__version__
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "numpydoc",
    "myst_parser",  # docs/architecture.md
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
autosummary_generate = True
templates_path = ["_templates"]
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
intersphinx_mapping = {}
# benchmarks.md is the record of measured figures, read in the source tree.
exclude_patterns = ["_build", "benchmarks.md"]
html_theme = "alabaster"
