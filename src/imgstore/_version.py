"""This package's version (the root re-exports it as ``imgstore.__version__``)."""

__version__ = "1.0.0.dev0"
