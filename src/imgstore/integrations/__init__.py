"""Bridges from stores to other libraries (dask). They sit above ``imgstore.stores`` and import it;
the composition root (``imgstore/__init__.py``) wires them into the store API."""
