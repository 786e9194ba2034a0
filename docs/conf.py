"""Sphinx configuration. Build: ``tox -e docs`` (warnings are errors; needs Graphviz's ``dot``)."""

import sys
from pathlib import Path

import hybiscus_webhooks

# The project's own directives: the settings table and the retry schedule come from the code.
sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "hybiscus-webhooks"
author = "hybiscus-webhooks contributors"
copyright = "the hybiscus-webhooks contributors"
release = version = hybiscus_webhooks.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.graphviz",
    "hybiscus_directives",
]

exclude_patterns = ["_build"]
nitpicky = False
default_role = "literal"

# Offline: no intersphinx, no remote images, and the diagram is rendered to SVG at build time.
graphviz_output_format = "svg"
graphviz_dot_args = ["-Gfontname=sans-serif", "-Nfontname=sans-serif", "-Efontname=sans-serif"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True

html_theme = "furo"
html_title = "hybiscus-webhooks %s" % release
html_static_path: list[str] = []
