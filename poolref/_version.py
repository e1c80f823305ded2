"""poolref's version: read by the package root, the command line and the build (pyproject.toml)."""

__version__ = "0.1.0"
