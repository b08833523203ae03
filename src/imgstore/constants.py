"""Names fixed by the on-disk format (kept importable as in the original)."""

from subprocess import DEVNULL  # noqa: F401  (the original exported it from here)

STORE_MD_KEY = "__store"
STORE_MD_FILENAME = "metadata.yaml"
STORE_LOCK_FILENAME = ".lock"
STORE_INDEX_FILENAME = ".index.sqlite"

EXTRA_DATA_FILE_EXTENSIONS = (".extra.json", ".extra_data.json", ".extra_data.h5")

FRAME_MD = ("frame_number", "frame_time")

#: our own frame-index cache beside the chunks (ignored by the original)
FRAME_INDEX_CACHE_FILENAME = ".imgstore-frameindex"
