"""Generates the folder behind ``imgstore.tests.TEST_DATA_DIR`` (see :mod:`imgstore.tests`)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

import numpy as np

#: bump when what is generated changes (a new cache folder is then made)
GENERATOR_VERSION = 1
ENV_VAR = "IMGSTORE_TEST_DATA_DIR"

STORE_NAME = "store_mp4"
PICTURE_NAME = "graffiti.png"
STORE_FRAMES = 179
STORE_CHUNKSIZE = 100
BARCODE_BITS = 16
FRAME_SIZE = 512


def barcode_frame(number: int, nbits: int = BARCODE_BITS, size: int = FRAME_SIZE) -> np.ndarray:
    """A square gray frame showing *number*: bit k (MSB first) sets columns [k*size/nbits, (k+1)*size/nbits) to 255."""
    bits = np.array([(int(number) >> (nbits - 1 - k)) & 1 for k in range(nbits)], dtype=np.uint8) * 255
    row = np.repeat(bits, size // nbits)
    return np.ascontiguousarray(np.broadcast_to(row, (size, size)))


def write_store(dest: str) -> None:
    """The ``store_mp4`` video store at *dest* (a folder that must not exist yet)."""
    import yaml

    from ..constants import STORE_MD_FILENAME, STORE_MD_KEY
    from ..errors import OptionalDependencyError
    from ..stores import get_supported_formats, new_for_format

    if "avc1/mp4" not in get_supported_formats():
        raise OptionalDependencyError("generating imgstore.tests.TEST_DATA_DIR needs an H.264 encoder "
                                      "(PyAV built with libx264, as its wheels are)")
    store = new_for_format("avc1/mp4", mode="w", basedir=dest, imgshape=(FRAME_SIZE, FRAME_SIZE),
                           imgdtype=np.uint8, chunksize=STORE_CHUNKSIZE)
    for fn in range(STORE_FRAMES):
        store.add_image(barcode_frame(fn), fn, float(fn + 1))
    store.close()
    # metadata as an old Motif recording's: no creation time or time zone, the old format name
    path = os.path.join(dest, STORE_MD_FILENAME)
    with open(path, "rt") as f:
        md = yaml.safe_load(f)
    smd = md[STORE_MD_KEY]
    md[STORE_MD_KEY] = {"chunksize": STORE_CHUNKSIZE, "class": "VideoImgStore", "encoding": "",
                        "format": "libx264", "imgdtype": "uint8", "imgshape": [FRAME_SIZE, FRAME_SIZE],
                        "uuid": smd["uuid"], "version": smd.get("version", 2)}
    with open(path, "wt") as f:
        yaml.safe_dump(md, f)


def write_picture(path: str, width: int = 640, height: int = 512, seed: int = 2) -> None:
    """A colour PNG picture: smooth colour fields, blobs and stripes (some texture, some edges)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    img = np.zeros((height, width, 3))
    for c in range(3):  # low-frequency colour waves
        fx, fy, ph = rng.uniform(0.5, 3.0), rng.uniform(0.5, 3.0), rng.uniform(0, 2 * np.pi)
        img[..., c] = 0.5 + 0.35 * np.sin(2 * np.pi * (fx * xx / width + fy * yy / height) + ph)
    for _ in range(40):  # soft coloured blobs
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(15, 90)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))[..., None]
        img = img * (1 - 0.8 * blob) + 0.8 * blob * rng.uniform(0, 1, 3)
    stripes = (np.sin(xx / 3.0 + yy / 7.0) > 0.6)[..., None]
    img = np.where(stripes & (yy[..., None] > height * 0.6), img * 0.4, img)
    img += rng.normal(0, 0.02, img.shape)
    rgb = (np.clip(img, 0, 1) * 255).astype(np.uint8)
    Image.fromarray(rgb, "RGB").save(path)


def _default_dir() -> str:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "imgstore", f"test-data-{GENERATOR_VERSION}")


def _fallback_dir() -> str:
    user = getattr(os, "getuid", lambda: "user")()
    return os.path.join(tempfile.gettempdir(), f"imgstore-test-data-{GENERATOR_VERSION}-{user}")


def _place(folder: str, name: str, make) -> None:
    """Make ``folder/name`` with ``make(path)`` unless it exists; atomic, so concurrent callers are safe."""
    final = os.path.join(folder, name)
    if os.path.exists(final):
        return
    work = tempfile.mkdtemp(prefix=f".{name}-", dir=folder)
    try:
        tmp = os.path.join(work, name)
        make(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not os.path.exists(final):  # not a concurrent writer that got there first
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def ensure_test_data(folder: str) -> str:
    """Generate what is missing of the test data in *folder*; returns *folder*."""
    os.makedirs(folder, exist_ok=True)
    _place(folder, PICTURE_NAME, write_picture)
    _place(folder, STORE_NAME, write_store)
    return folder


def test_data_dir() -> str:
    """The test data folder, generated if needed (see :mod:`imgstore.tests`)."""
    chosen = os.environ.get(ENV_VAR)
    if chosen:
        return ensure_test_data(os.path.abspath(chosen))
    try:
        return ensure_test_data(_default_dir())
    except OSError:
        return ensure_test_data(_fallback_dir())


def main(argv=None) -> None:
    args = sys.argv[1:] if argv is None else argv
    print(ensure_test_data(os.path.abspath(args[0])) if args else test_data_dir())


if __name__ == "__main__":
    main()
