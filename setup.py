"""Package discovery, the one part of the build that pyproject.toml cannot declare.

Every package under ``mmfuse/`` is found (a new subpackage cannot be left out of the wheel), and the
built-in plugins in ``plugins/`` install as ``mmfuse_plugins`` (``[tool.setuptools.package-dir]``).
Everything else about the package is in pyproject.toml.
"""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["mmfuse", "mmfuse.*"]), "mmfuse_plugins"])
