"""Deprecated: the Gradio page is :mod:`mmfuse.gradio_app` (this name is kept for Spaces written by 0.1.0).

A Space that ``mmfuse push --with-space`` wrote with 0.1.0 imports ``build_app`` from here and installs an
unpinned ``mmfuse[demo]``, so it would stop building with the next release. Re-run ``push --with-space`` to
write the new import; this module goes in 0.3.
"""

import warnings

from mmfuse.gradio_app import build_app

warnings.warn(
    "mmfuse.demo is deprecated: import build_app from mmfuse.gradio_app (re-run `mmfuse push --with-space`)",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["build_app"]
