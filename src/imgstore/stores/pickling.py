"""Pickling a store open for reading as its location and options; it opens again, lazily, where it is
unpickled (worker processes, dask, DataLoaders)."""

from __future__ import annotations


class Pickling:
    """The pickling of :class:`~.base.ImgStore`. Owns ``_reopen_args`` (set on an unpickled store until
    its first use)."""

    def __reduce__(self):
        """A store open for reading pickles as its location and options (no frames, no caches) and is
        opened again, at its first use, where it is unpickled (worker processes, dask, DataLoaders)."""
        if self.__dict__.get("_reopen_args") is not None:  # unpickled and not used yet
            basedir, options, raw = self._reopen_args
        elif self._mode != "r":
            raise TypeError(f"{self._basedir}: a store open for writing cannot be pickled (it holds the store's "
                            f"lock, its encoders and open files); pickle a store opened for reading instead")
        else:
            basedir, options, raw = self._basedir, dict(self._options), self._raw_frames
        return (_unpickled_store, (type(self), basedir, options, raw))

    def __getattr__(self, name: str):
        # only called for attributes that do not exist: an unpickled store opens at its first use
        d = self.__dict__
        args = d.get("_reopen_args")
        if args is None or d.get("_reopening") or name.startswith("__"):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        basedir, options, raw = args
        d["_reopening"] = True
        try:
            self.__init__(basedir=basedir, mode="r", **options)
        finally:
            del d["_reopening"]
        del d["_reopen_args"]
        if raw:
            self.disable_decoding()
        return getattr(self, name)


def _unpickled_store(cls: type["ImgStore"], basedir: str, options: dict, raw_frames: bool) -> "ImgStore":
    """A store of class *cls* at *basedir* that opens for reading at its first use (see ``ImgStore.__reduce__``)."""
    store = cls.__new__(cls)
    store.__dict__["_reopen_args"] = (basedir, options, raw_frames)
    return store
