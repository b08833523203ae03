"""Shared helpers for the imgstore behaviour tests.

The tests in this directory pin the behaviour of loopbio's imgstore 0.4.0 (the
"original"), so that this rewrite can be a drop-in replacement.  They are
written so that they can also be run against the original implementation:

    IMGSTORE_TEST_AGAINST_ORIGINAL=1 /path/to/python-with-original-imgstore -m pytest tests

Under that variable every test marked ``@pytest.mark.beyond_original`` (a
feature or a bug fix the original lacks) is skipped.

Frames are identified by a "barcode" drawn into the image (see ``make_frame``),
the same encoding that was used to write the reference stores in
``../shared/reference_stores`` (see its ``manifest.json``).
"""
import functools
import json
import os
import pathlib

import numpy as np
import pytest

TESTS_DIR = pathlib.Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
REFERENCE_DIR = (REPO_ROOT / '..' / 'shared' / 'reference_stores').resolve()
MANIFEST_PATH = REFERENCE_DIR / 'manifest.json'

AGAINST_ORIGINAL = os.environ.get('IMGSTORE_TEST_AGAINST_ORIGINAL', '').strip() not in ('', '0', 'false', 'no')

# the directory-store formats of the original (``DirectoryImgStore._cv2_fmts`` + 'npy'; 'bpk' needs bloscpack)
DIRECTORY_FORMATS = ('npy', 'png', 'jpg', 'tif', 'bmp', 'ppm', 'pgm')
COLOR_VARIANT_FORMATS = ('tif+color', 'png+color', 'jpg+color', 'bmp+color')
LOSSY_DIRECTORY_FORMATS = ('jpg', 'jpg+color')

BARCODE_BITS = 16
BARCODE_ROWS = 32          # rows 0..31 hold the barcode
PATCH_ROWS = (32, 48)      # rows 32..47 hold the grey level / colour patches
MIN_FRAME_SHAPE = (48, 64)

# colour patches in rows 32..47 (BGR): a swapped channel order turns blue into red
PATCH_LEFT_BGR = (255, 0, 0)     # columns 0..31: pure blue
PATCH_RIGHT_BGR = (0, 0, 255)    # columns 32..63: pure red

T0 = 1700000000.0


def pytest_configure(config):
    config.addinivalue_line(
        'markers',
        'beyond_original: behaviour the original imgstore 0.4.0 lacks or gets wrong; '
        'skipped when IMGSTORE_TEST_AGAINST_ORIGINAL is set')


def pytest_collection_modifyitems(config, items):
    if not AGAINST_ORIGINAL:
        return
    skip = pytest.mark.skip(reason='beyond_original: not supported by the original imgstore')
    for item in items:
        if 'beyond_original' in item.keywords:
            item.add_marker(skip)


# -- reference stores -----------------------------------------------------------------------------

def have_reference_stores():
    return MANIFEST_PATH.is_file()


requires_reference_stores = pytest.mark.skipif(
    not have_reference_stores(), reason='reference stores not found at %s' % REFERENCE_DIR)


@functools.lru_cache(maxsize=None)
def _load_manifest_cached():
    with open(MANIFEST_PATH, 'rt') as f:
        return json.load(f)


def load_manifest():
    """The reference stores' manifest (a fresh copy), or skip the calling test if it is missing."""
    if not have_reference_stores():
        pytest.skip('reference stores not found at %s' % REFERENCE_DIR)
    return json.loads(json.dumps(_load_manifest_cached()))


def reference_store_names():
    """Store names for parametrisation (empty list when the reference stores are missing)."""
    if not have_reference_stores():
        return []
    return sorted(_load_manifest_cached()['stores'])


# -- frame barcodes -------------------------------------------------------------------------------

def _dtype_max(dtype):
    dtype = np.dtype(dtype)
    if dtype.kind in 'ui':
        return int(np.iinfo(dtype).max)
    raise ValueError('unsupported dtype %s' % dtype)


def _threshold(dtype):
    # "set" is the dtype's max value; threshold at half range (127 for uint8, 32767 for uint16)
    return _dtype_max(dtype) // 2


def decode_barcode(img, threshold=127):
    """The manifest's ``common.decode_rule``: bit_k = mean(img[0:32, 4k+1:4k+3]) > threshold
    (over all channels if colour), 16 bits MSB first."""
    img = np.asarray(img)
    assert img.ndim in (2, 3), img.shape
    assert img.shape[0] >= BARCODE_ROWS and img.shape[1] >= 4 * BARCODE_BITS, img.shape
    value = 0
    for k in range(BARCODE_BITS):
        bit = float(np.mean(img[0:BARCODE_ROWS, 4 * k + 1:4 * k + 3])) > threshold
        value |= int(bit) << (BARCODE_BITS - 1 - k)
    return value


def decode_frame(img):
    """Decode the barcode of a uint8 or uint16, grey or colour frame."""
    img = np.asarray(img)
    return decode_barcode(img, threshold=_threshold(img.dtype))


def decode_motif_barcode(img):
    """The Motif reference store's rule (imgstore's own test ``encode_image(num, 16, 512)``):
    bit k (MSB first) = columns 32k..32k+31; bit_k = mean(img[:, 32k+8:32k+24]) > 127."""
    img = np.asarray(img)
    value = 0
    for k in range(BARCODE_BITS):
        bit = float(np.mean(img[:, 32 * k + 8:32 * k + 24])) > 127
        value |= int(bit) << (BARCODE_BITS - 1 - k)
    return value


def make_frame(frame_number, shape=(48, 64), dtype=np.uint8):
    """A frame showing ``frame_number`` as a barcode (the encoding the reference stores use).

    rows 0..31: bit k of the 16 bit number (MSB first) -> columns 4k..4k+3 at the max value
    (the decoder samples the middle columns 4k+1..4k+2; the full-width bars are what the generator
    of the reference stores drew, so ``make_frame`` reproduces their source frames exactly).
    rows 32..47: grey frames the mid value (128 for uint8); colour frames BGR (max,0,0) in
    columns 0..31 and BGR (0,0,max) in columns 32..63. Everything else is 0.
    """
    shape = tuple(int(s) for s in shape)
    assert len(shape) == 2 or (len(shape) == 3 and shape[2] == 3), shape
    assert shape[0] >= MIN_FRAME_SHAPE[0] and shape[1] >= MIN_FRAME_SHAPE[1], shape
    assert 0 <= int(frame_number) < 2 ** BARCODE_BITS, frame_number
    dtype = np.dtype(dtype)
    vmax = _dtype_max(dtype)
    img = np.zeros(shape, dtype=dtype)
    for k in range(BARCODE_BITS):
        if (int(frame_number) >> (BARCODE_BITS - 1 - k)) & 1:
            img[0:BARCODE_ROWS, 4 * k:4 * k + 4] = vmax
    r0, r1 = PATCH_ROWS
    if len(shape) == 2:
        img[r0:r1, 0:64] = vmax // 2 + 1
    else:
        img[r0:r1, 0:32] = [vmax * (c // 255) for c in PATCH_LEFT_BGR]
        img[r0:r1, 32:64] = [vmax * (c // 255) for c in PATCH_RIGHT_BGR]
    return img


def frame_time_for(frame_number):
    """Frame times as used in the reference stores."""
    return T0 + (frame_number - 1000) / 30.


def assert_color_patches(img, tol=0, margin=0):
    """Check the BGR colour patches of a colour frame (rows 32..47), ``margin`` pixels in from the
    patch edges, to within ``tol`` per pixel (tol=0: exact)."""
    img = np.asarray(img)
    assert img.ndim == 3 and img.shape[2] == 3, img.shape
    vmax = _dtype_max(img.dtype)
    r0, r1 = PATCH_ROWS
    left = img[r0 + margin:r1 - margin, 0 + margin:32 - margin].astype(np.int64)
    right = img[r0 + margin:r1 - margin, 32 + margin:64 - margin].astype(np.int64)
    for patch, want, name in ((left, PATCH_LEFT_BGR, 'left (blue)'), (right, PATCH_RIGHT_BGR, 'right (red)')):
        want = np.array([vmax * (c // 255) for c in want], dtype=np.int64)
        err = int(np.max(np.abs(patch - want)))
        assert err <= tol, 'colour patch %s differs from BGR %s by %d (> %d): mean %s' % (
            name, want.tolist(), err, tol, patch.reshape(-1, 3).mean(axis=0).round(1).tolist())


def bgr2gray_reference(img):
    """OpenCV's COLOR_BGR2GRAY for uint8 (what the original's ensure_grayscale and pgm writer use).

    OpenCV 4.x computes it in 15 bit fixed point: Y = (R*9798 + G*19235 + B*3735 + 16384) >> 15
    (checked exhaustively over all 2**24 BGR values against OpenCV 4.6, the version that wrote the
    reference stores). The often quoted 14 bit variant (4899, 9617, 1868, +8192 >> 14) differs from
    it for 43864 of the 2**24 colours, by 1."""
    img = np.asarray(img).astype(np.int32)
    b, g, r = img[..., 0], img[..., 1], img[..., 2]
    return ((r * 9798 + g * 19235 + b * 3735 + 16384) >> 15).astype(np.uint8)


def base_format(fmt):
    """the format a directory store records (and uses as file extension): '+color' is dropped"""
    return fmt.replace('+color', '')


def expected_image(fmt, value, shape, dtype=np.uint8):
    """what a lossless directory store of format ``fmt`` reads back for ``make_frame(value, shape, dtype)``"""
    src = make_frame(value, shape, dtype)
    if base_format(fmt) == 'pgm' and len(shape) == 3:
        # pgm is a grey format: a colour store writes grey and reads it back as 3 equal channels
        g = bgr2gray_reference(src)
        return np.dstack([g, g, g])
    return src
