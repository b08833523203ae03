"""Every reference store (written by the original imgstore 0.4.0, or by Motif) must read back
exactly as its manifest says.

The stores and ``manifest.json`` live in ``../shared/reference_stores`` (relative to the repo
root). Video stores need the video backend; directory stores only numpy/pillow.
"""
import datetime
import os
import random

import numpy as np
import pytest

import imgstore
from imgstore.stores import new_for_filename

from conftest import (REFERENCE_DIR, assert_color_patches, decode_frame, decode_motif_barcode,
                      load_manifest, make_frame, reference_store_names, requires_reference_stores)

pytestmark = requires_reference_stores

STORE_NAMES = reference_store_names()


def _spec(name):
    return load_manifest()['stores'][name]


def _is_motif(name):
    return name.startswith('motif')


def _decode(name, img):
    return decode_motif_barcode(img) if _is_motif(name) else decode_frame(img)


def _open(name):
    return new_for_filename(str(REFERENCE_DIR / name))


def _is_directory_store(spec):
    return spec['class'] == 'DirectoryImgStore'


def _check_pixels(name, spec, img, frame_number):
    """decoded barcode, dtype, shape, and (where the manifest states a tolerance) pixels vs source"""
    assert _decode(name, img) == frame_number
    assert img.dtype == np.dtype(spec['dtype'])
    assert img.shape == tuple(spec['image_shape_read'])
    if spec['color']:
        assert img.ndim == 3 and img.shape[2] == 3
    else:
        assert img.ndim == 2

    tol = spec.get('max_abs_pixel_error_vs_source')
    if tol is None:
        return
    src = make_frame(frame_number, spec['writer_imgshape'], spec['dtype'])
    # video stores crop odd sizes down to even (last row/column dropped)
    src = src[:img.shape[0], :img.shape[1]]
    err = int(np.max(np.abs(src.astype(np.int64) - img.astype(np.int64))))
    assert err <= tol, 'frame %d: max abs pixel error vs source %d > %d' % (frame_number, err, tol)
    if spec['color']:
        # BGR channel order: a swapped order would turn the blue patch red (error 255)
        assert_color_patches(img, tol=tol)


@pytest.mark.parametrize('name', STORE_NAMES)
def test_frame_metadata_and_summary(name):
    spec = _spec(name)
    s = _open(name)
    try:
        assert s.frame_count == spec['frame_count']
        assert len(s) == spec['frame_count']
        assert len(spec['frame_numbers']) == spec['frame_count']

        md = s.get_frame_metadata()
        assert [int(v) for v in md['frame_number']] == spec['frame_numbers']
        # times exactly (float64 round trip)
        assert [float(v) for v in md['frame_time']] == spec['frame_times']

        assert list(s.chunks) == spec['chunks_nonempty']
        if 'frame_min' in spec:
            assert s.frame_min == spec['frame_min']
            assert s.frame_max == spec['frame_max']
        assert s.frame_min == min(spec['frame_numbers'])
        assert s.frame_max == max(spec['frame_numbers'])
        assert s.frame_time_min == min(spec['frame_times'])
        assert s.frame_time_max == max(spec['frame_times'])
        assert s.duration == pytest.approx(max(spec['frame_times']) - min(spec['frame_times']))

        assert tuple(s.image_shape) == tuple(spec['image_shape_read'])
        assert s.user_metadata == spec.get('user_metadata', {})
        assert s.mode == 'r'
        assert os.path.abspath(s.full_path) == os.path.abspath(str(REFERENCE_DIR / name / 'metadata.yaml'))
        if 'lossless' in spec:
            assert s.lossless == spec['lossless']
        # no frame read yet
        assert np.isnan(s.frame_number)
    finally:
        s.close()


@pytest.mark.parametrize('name', STORE_NAMES)
def test_created_and_uuid(name):
    spec = _spec(name)
    s = _open(name)
    try:
        created_utc, tz = s.created
        assert created_utc.tzinfo is not None
        assert created_utc.utcoffset() == datetime.timedelta(0)
        assert tz is not None
        if 'store_metadata' in spec:
            smd = spec['store_metadata']
            assert s.uuid == smd['uuid']
            want = datetime.datetime.fromisoformat(smd['created_utc']).replace(tzinfo=datetime.timezone.utc)
            assert created_utc == want
            assert getattr(tz, 'key', str(tz)) == smd['timezone_local']
            # convert_frame_time_to_datetime uses the store's timezone
            t = spec['frame_times'][0]
            dt = s.convert_frame_time_to_datetime(t)
            assert dt.timestamp() == pytest.approx(t, abs=1e-6)
            assert dt.utcoffset() == datetime.datetime.fromtimestamp(t, tz=tz).utcoffset()
    finally:
        s.close()


@requires_reference_stores
def test_motif_store_synthesizes_created_from_mtime():
    name = 'motif_store_mp4'
    if name not in STORE_NAMES:
        pytest.skip('no motif reference store')
    path = REFERENCE_DIR / name / 'metadata.yaml'
    import yaml
    with open(path) as f:
        smd = yaml.safe_load(f)['__store']
    # the store predates these keys: chunks are found with the '.mp4' default extension
    assert 'extension' not in smd
    assert 'created_utc' not in smd

    s = _open(name)
    try:
        assert s.uuid == smd['uuid']
        created_utc, tz = s.created
        assert created_utc.tzinfo is not None
        assert created_utc.utcoffset() == datetime.timedelta(0)
        want = datetime.datetime.fromtimestamp(os.path.getmtime(path), tz=datetime.timezone.utc)
        assert abs((created_utc - want).total_seconds()) < 1e-3
        assert tz is not None
        assert s.user_metadata == {}
        assert s.frame_count == 179
        assert list(s.chunks) == [0, 1]
    finally:
        s.close()


@pytest.mark.parametrize('name', STORE_NAMES)
def test_sequential_read(name):
    spec = _spec(name)
    s = _open(name)
    try:
        for fn, ft in zip(spec['frame_numbers'], spec['frame_times']):
            assert s.get_next_framenumber() == fn
            img, (frame_number, frame_time) = s.get_next_image()
            assert frame_number == fn
            assert frame_time == ft
            assert s.frame_number == fn
            _check_pixels(name, spec, img, fn)
        with pytest.raises(EOFError):
            s.get_next_image()
        with pytest.raises(EOFError):
            s.get_next_framenumber()
    finally:
        s.close()


@pytest.mark.parametrize('name', STORE_NAMES)
def test_random_access_by_frame_number(name):
    spec = _spec(name)
    pairs = list(zip(spec['frame_numbers'], spec['frame_times']))
    random.Random(42).shuffle(pairs)
    s = _open(name)
    try:
        for fn, ft in pairs:
            img, (frame_number, frame_time) = s.get_image(frame_number=fn)
            assert (frame_number, frame_time) == (fn, ft)
            assert s.frame_number == fn
            _check_pixels(name, spec, img, fn)
    finally:
        s.close()


@pytest.mark.parametrize('name', STORE_NAMES)
def test_random_access_by_frame_index(name):
    spec = _spec(name)
    idxs = list(range(spec['frame_count']))
    random.Random(7).shuffle(idxs)
    s = _open(name)
    try:
        for i in idxs:
            fn = spec['frame_numbers'][i]
            img, (frame_number, frame_time) = s.get_image(None, frame_index=i)
            assert (frame_number, frame_time) == (fn, spec['frame_times'][i])
            _check_pixels(name, spec, img, fn)
        with pytest.raises(ValueError):
            s.get_image(None, frame_index=spec['frame_count'])
        with pytest.raises(ValueError):
            s.get_image(None, frame_index=-1)
    finally:
        s.close()


@pytest.mark.parametrize('name', STORE_NAMES)
def test_random_access_then_sequential(name):
    # after a seek, get_next_image continues from the frame after it (across chunk boundaries)
    spec = _spec(name)
    fns = spec['frame_numbers']
    s = _open(name)
    try:
        for start in (len(fns) - 3, 1, 22, 0):
            img, (frame_number, _) = s.get_image(None, frame_index=start)
            assert frame_number == fns[start]
            for i in range(start + 1, min(start + 5, len(fns))):
                img, (frame_number, _) = s.get_next_image()
                assert frame_number == fns[i]
                assert _decode(name, img) == fns[i]
    finally:
        s.close()


@pytest.mark.parametrize('name', STORE_NAMES)
def test_nearest_image(name):
    spec = _spec(name)
    fns, fts = spec['frame_numbers'], spec['frame_times']
    s = _open(name)
    try:
        order = list(range(len(fns)))
        random.Random(3).shuffle(order)
        for i in order:
            img, (frame_number, frame_time) = s.get_nearest_image(fts[i])
            assert (frame_number, frame_time) == (fns[i], fts[i])
            assert _decode(name, img) == fns[i]
        # before the first / after the last frame time
        img, (frame_number, _) = s.get_nearest_image(min(fts) - 1000.0)
        assert frame_number == fns[int(np.argmin(fts))]
        assert _decode(name, img) == frame_number
        img, (frame_number, _) = s.get_nearest_image(max(fts) + 1000.0)
        assert frame_number == fns[int(np.argmax(fts))]
        assert _decode(name, img) == frame_number
    finally:
        s.close()


@pytest.mark.parametrize('name', [n for n in STORE_NAMES if not _is_motif(n)])
def test_nearest_frame_number(name):
    # frame numbers 1030..1034 are missing: get_image(exact_only=False) returns the nearest one,
    # ties going to the frame written first
    spec = _spec(name)
    s = _open(name)
    try:
        for query, want in ((1030, 1029), (1031, 1029), (1032, 1029), (1033, 1035), (1034, 1035),
                            (0, 1000), (99999, spec['frame_numbers'][-1])):
            img, (frame_number, _) = s.get_image(query, exact_only=False)
            assert frame_number == want, query
            assert decode_frame(img) == want
        with pytest.raises(ValueError):
            s.get_image(1032, exact_only=True)
        with pytest.raises(ValueError):
            s.get_image(1032)
    finally:
        s.close()


@pytest.mark.parametrize('name', STORE_NAMES)
def test_extra_data(name):
    spec = _spec(name)
    files = spec.get('extra_data_files', {})
    s = _open(name)
    try:
        found = sorted(os.path.relpath(os.path.abspath(p), str(REFERENCE_DIR)) for p in s.find_extra_data_files())
        assert found == sorted(files)
        assert s.has_extra_data == bool(files)

        df = s.get_extra_data()
        if not files:
            assert df is None or len(df) == 0
            return
        records = [r for k in sorted(files) for r in files[k]]
        assert df is not None
        assert len(df) == len(records)
        for col in ('frame_number', 'frame_index', 'temperature', 'humidity', 'frame_time'):
            assert col in df.columns, col
        assert [int(v) for v in df['frame_number']] == [r['frame_number'] for r in records]
        assert [int(v) for v in df['frame_index']] == [r['frame_index'] for r in records]
        assert [float(v) for v in df['temperature']] == [r['temperature'] for r in records]
        assert [int(v) for v in df['humidity']] == [r['humidity'] for r in records]
        assert [float(v) for v in df['frame_time']] == [r['frame_time'] for r in records]
        # each record refers to a real frame of the store
        fn = spec['frame_numbers']
        for r in records:
            assert fn[r['frame_index']] == r['frame_number']
    finally:
        s.close()


def _extract_indices(spec):
    n = spec['frame_count']
    if n <= 60:
        return list(range(n))
    # big (512x512 h264) store: a spread of indices incl. the chunk boundaries
    cs = spec['chunksize']
    return sorted(set(list(range(0, n, 7)) + [cs - 1, cs, cs + 1, n - 1]))


@pytest.mark.parametrize('name', STORE_NAMES)
@pytest.mark.parametrize('path_kind', ['dir', 'metadata.yaml'])
def test_extract_only_frame(name, path_kind):
    spec = _spec(name)
    path = REFERENCE_DIR / name
    if path_kind == 'metadata.yaml':
        path = path / 'metadata.yaml'
    idxs = _extract_indices(spec)
    if path_kind == 'metadata.yaml':
        idxs = idxs[::5] + [idxs[-1]]
    for i in idxs:
        img = imgstore.extract_only_frame(str(path), i)
        assert img is not None
        assert _decode(name, img) == spec['frame_numbers'][i], i
        if _is_directory_store(spec):
            assert img.shape == tuple(spec['image_shape_read'])
            assert img.dtype == np.dtype(spec['dtype'])


# numpy scalars as frame numbers / indices: the original passed them straight to sqlite, which
# cannot bind np.int64/np.int32 (the lookup failed, or silently found nothing)
NUMPY_FRAME_NUMBER_TYPES = [
    pytest.param(np.int64, marks=pytest.mark.beyond_original, id='int64'),
    pytest.param(np.int32, marks=pytest.mark.beyond_original, id='int32'),
    pytest.param(np.uint32, marks=pytest.mark.beyond_original, id='uint32'),
    pytest.param(np.float64, id='float64'),
    pytest.param(int, id='int'),
    pytest.param(float, id='float'),
]


@pytest.mark.parametrize('name', STORE_NAMES)
@pytest.mark.parametrize('ntype', NUMPY_FRAME_NUMBER_TYPES)
def test_numpy_scalar_frame_number(name, ntype):
    spec = _spec(name)
    fns = spec['frame_numbers']
    s = _open(name)
    try:
        for i in (len(fns) - 1, 0, 31, 5):
            fn = fns[i]
            img, (frame_number, frame_time) = s.get_image(ntype(fn))
            assert frame_number == fn
            assert frame_time == spec['frame_times'][i]
            assert _decode(name, img) == fn
            img, (frame_number, _) = s.get_image(ntype(fn), exact_only=False)
            assert frame_number == fn
            assert _decode(name, img) == fn
        # still an error for a frame number that is not there
        with pytest.raises(ValueError):
            s.get_image(ntype(max(fns) + 100))
    finally:
        s.close()


NUMPY_FRAME_INDEX_TYPES = [
    pytest.param(np.int64, id='int64'),
    pytest.param(np.int32, id='int32'),
    pytest.param(np.uint64, id='uint64'),
    pytest.param(np.float64, id='float64'),
]


@pytest.mark.parametrize('name', STORE_NAMES)
@pytest.mark.parametrize('ntype', NUMPY_FRAME_INDEX_TYPES)
def test_numpy_scalar_frame_index(name, ntype):
    spec = _spec(name)
    fns = spec['frame_numbers']
    s = _open(name)
    try:
        for i in (len(fns) - 1, 0, 31, 5):
            img, (frame_number, _) = s.get_image(None, frame_index=ntype(i))
            assert frame_number == fns[i]
            assert _decode(name, img) == fns[i]
    finally:
        s.close()


@pytest.mark.parametrize('name', STORE_NAMES)
def test_reading_does_not_modify_store(name):
    spec = _spec(name)
    before = {os.path.join(dp, p): os.stat(os.path.join(dp, p)).st_mtime
              for dp, _, fs in os.walk(str(REFERENCE_DIR / name)) for p in fs}
    s = _open(name)
    s.get_image(None, frame_index=spec['frame_count'] - 1)
    s.close()
    after = {os.path.join(dp, p): os.stat(os.path.join(dp, p)).st_mtime
             for dp, _, fs in os.walk(str(REFERENCE_DIR / name)) for p in fs}
    assert before == after
    assert not os.path.exists(str(REFERENCE_DIR / name / '.lock'))
