"""Moved to :mod:`imgstore.integrations.dask` (this name stays importable)."""

from ..integrations.dask import to_dask_array

__all__ = ["to_dask_array"]
