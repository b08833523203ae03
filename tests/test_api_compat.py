"""The public API of imgstore 0.4.0 (the seed README), for directory stores that we write.

Every test here also runs against the original implementation
(``IMGSTORE_TEST_AGAINST_ORIGINAL=1 python-with-original -m pytest tests/test_api_compat.py``);
tests marked ``beyond_original`` pin fixes/features the original lacks and are skipped there.
"""
import datetime
import glob
import json
import os
import random
import sqlite3
import tempfile

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import imgstore
from imgstore.stores import DirectoryImgStore, VideoImgStore, new_for_filename, new_for_format, STORE_MD_FILENAME
from imgstore.util import ensure_color, ensure_grayscale

from conftest import (AGAINST_ORIGINAL, COLOR_VARIANT_FORMATS, DIRECTORY_FORMATS, LOSSY_DIRECTORY_FORMATS, assert_color_patches,
                      base_format, bgr2gray_reference, decode_frame, expected_image, make_frame)

SHAPE_GRAY = (48, 64)
SHAPE_COLOR = (48, 64, 3)
T0 = 1700000000.0

STORE_MD_KEYS = {'class', 'version', 'format', 'imgshape', 'imgdtype', 'chunksize', 'encoding',
                 'created_utc', 'timezone_local', 'uuid'}


# -- helpers --------------------------------------------------------------------------------------

def code(frame_number):
    """barcode value drawn for a frame number (negative numbers wrap, the barcode has 16 bits)"""
    return int(frame_number) % (2 ** 16)


def times_for(frame_numbers):
    return [T0 + i / 30. + 0.001 * (i % 3) for i in range(len(frame_numbers))]


def write_store(basedir, fmt='npy', frame_numbers=(), shape=SHAPE_GRAY, dtype=np.uint8, chunksize=5,
                frame_times=None, metadata=None, extra=None, codes=None, close=True, **kwargs):
    """Write a store; frame i shows the barcode codes[i] (default: its frame number).
    extra: {i: dict} -> add_extra_data(**dict) right after add_image of frame i."""
    frame_numbers = list(frame_numbers)
    if frame_times is None:
        frame_times = times_for(frame_numbers)
    if codes is None:
        codes = [code(fn) for fn in frame_numbers]
    kw = dict(basedir=str(basedir), imgshape=shape, imgdtype=dtype, chunksize=chunksize)
    if metadata is not None:
        kw['metadata'] = metadata
    kw.update(kwargs)
    s = new_for_format(fmt, **kw)
    for i, (fn, ft) in enumerate(zip(frame_numbers, frame_times)):
        s.add_image(make_frame(codes[i], shape, dtype), fn, ft)
        if extra and i in extra:
            s.add_extra_data(**extra[i])
    if close:
        s.close()
    return s, frame_times


def check_image(fmt, img, value, shape, dtype):
    """exact for lossless formats; barcode + patches for jpg"""
    img = np.asarray(img)
    assert img.shape == tuple(shape)
    assert img.dtype == np.dtype(dtype)
    assert decode_frame(img) == value
    if base_format(fmt) == 'jpg':
        if len(shape) == 3:
            assert_color_patches(img, tol=48, margin=4)
        else:
            band = img[36:44, 4:60].astype(np.int64)
            assert np.max(np.abs(band - 128)) <= 16
    else:
        want = expected_image(fmt, value, shape, dtype)
        assert np.array_equal(img, want), 'max abs diff %d' % np.max(np.abs(img.astype(np.int64) - want))


def read_all(store):
    out = []
    while True:
        try:
            out.append(store.get_next_image())
        except EOFError:
            return out


# -- formats --------------------------------------------------------------------------------------

def _roundtrip_params():
    params = []
    for fmt in DIRECTORY_FORMATS + COLOR_VARIANT_FORMATS:
        for color in (False, True):
            params.append(pytest.param(fmt, color, 'uint8', id='%s-%s-uint8' % (fmt, 'color' if color else 'gray')))
    for fmt in ('npy', 'png', 'tif'):
        for color in (False, True):
            # the original reads png/tif with cv2.imread(IMREAD_COLOR/GRAYSCALE), which converts 16 bit
            # images to 8 bit: its uint16 stores do not round trip (only npy does)
            marks = [pytest.mark.beyond_original] if fmt != 'npy' else []
            params.append(pytest.param(fmt, color, 'uint16', marks=marks,
                                       id='%s-%s-uint16' % (fmt, 'color' if color else 'gray')))
    return params


@pytest.mark.parametrize('fmt,color,dtype', _roundtrip_params())
def test_roundtrip_directory_formats(tmp_path, fmt, color, dtype):
    shape = SHAPE_COLOR if color else SHAPE_GRAY
    fns = [1000, 1001, 1002, 1005, 1006, 1007, 1008, 1009, 1010, 1020, 1021, 1022]
    w, times = write_store(tmp_path / 's', fmt, fns, shape=shape, dtype=dtype, chunksize=5)
    assert w.frame_count == len(fns)
    assert w.lossless == (fmt not in LOSSY_DIRECTORY_FORMATS)

    with open(str(tmp_path / 's' / STORE_MD_FILENAME)) as f:
        smd = yaml.safe_load(f)['__store']
    assert smd['format'] == base_format(fmt)
    assert smd['class'] == 'DirectoryImgStore'
    assert list(smd['imgshape']) == list(shape)
    assert smd['imgdtype'] == dtype
    assert sorted(os.path.basename(p) for p in glob.glob(str(tmp_path / 's' / '000000' / ('*.' + base_format(fmt))))) \
        == ['%06d.%s' % (i, base_format(fmt)) for i in range(5)]

    s = new_for_filename(str(tmp_path / 's'))
    assert isinstance(s, DirectoryImgStore)
    assert s.frame_count == len(fns)
    assert tuple(s.image_shape) == shape
    assert s.lossless == (fmt not in LOSSY_DIRECTORY_FORMATS)
    assert list(s.chunks) == [0, 1, 2]
    assert s.frame_min == 1000 and s.frame_max == 1022
    md = s.get_frame_metadata()
    assert list(md['frame_number']) == fns
    assert list(md['frame_time']) == times

    # sequential
    for fn, ft in zip(fns, times):
        img, (frame_number, frame_time) = s.get_next_image()
        assert (frame_number, frame_time) == (fn, ft)
        check_image(fmt, img, fn, shape, dtype)
    with pytest.raises(EOFError):
        s.get_next_image()

    # random by frame number and by index
    order = list(range(len(fns)))
    random.Random(1).shuffle(order)
    for i in order:
        img, (frame_number, frame_time) = s.get_image(fns[i])
        assert (frame_number, frame_time) == (fns[i], times[i])
        check_image(fmt, img, fns[i], shape, dtype)
        img, (frame_number, _) = s.get_image(None, frame_index=i)
        assert frame_number == fns[i]
        check_image(fmt, img, fns[i], shape, dtype)

    for i in order:
        img = imgstore.extract_only_frame(s.full_path, i)
        check_image(fmt, img, fns[i], shape, dtype)
    s.close()


def test_get_supported_formats():
    fmts = imgstore.get_supported_formats()
    for fmt in DIRECTORY_FORMATS + COLOR_VARIANT_FORMATS:
        assert fmt in fmts
    assert set(DirectoryImgStore.supported_formats()) >= set(DIRECTORY_FORMATS + COLOR_VARIANT_FORMATS)
    from imgstore import stores
    assert stores.get_supported_formats() == fmts


def test_unknown_format_raises(tmp_path):
    with pytest.raises(ValueError):
        new_for_format('nosuchformat', basedir=str(tmp_path / 'x'), imgshape=SHAPE_GRAY, imgdtype=np.uint8)


def test_write_requires_imgshape(tmp_path):
    with pytest.raises(ValueError):
        new_for_format('npy', basedir=str(tmp_path / 'x'), imgdtype=np.uint8)


def test_imports():
    import imgstore.stores as stores
    assert STORE_MD_FILENAME == 'metadata.yaml'
    for name in ('new_for_filename', 'new_for_format', 'extract_only_frame', 'get_supported_formats',
                 'VideoImgStore', 'DirectoryImgStore', 'ensure_color', 'ensure_grayscale'):
        assert hasattr(imgstore, name), name
    assert imgstore.new_for_filename is stores.new_for_filename
    assert imgstore.DirectoryImgStore is DirectoryImgStore
    assert imgstore.VideoImgStore is VideoImgStore
    assert isinstance(imgstore.__version__, str)


# -- paths ----------------------------------------------------------------------------------------

def test_path_and_basedir_spellings(tmp_path):
    p = str(tmp_path / 'store')
    fullp = os.path.join(p, STORE_MD_FILENAME)
    write_store(p, 'npy', [0, 1, 2])

    # read
    with pytest.raises(ValueError):
        new_for_filename(p, basedir=p)
    with pytest.raises(ValueError):
        new_for_filename(None)
    with pytest.raises(ValueError):
        new_for_filename(None, basedir=fullp)
    with pytest.raises(ValueError):
        new_for_filename(str(tmp_path / 'does-not-exist'))
    os.mkdir(str(tmp_path / 'not-a-store'))
    with pytest.raises(ValueError):
        new_for_filename(str(tmp_path / 'not-a-store'))

    for d in (new_for_filename(p), new_for_filename(fullp), new_for_filename(None, basedir=p),
              new_for_format(fmt=None, path=None, mode='r', basedir=p),
              new_for_format(fmt=None, path=p, mode='r'),
              new_for_format(fmt=None, path=fullp, mode='r'),
              DirectoryImgStore(basedir=p, mode='r')):
        assert d.full_path == fullp
        assert d.filename == p
        assert d.mode == 'r'
        assert d.frame_count == 3
        img, (fn, _) = d.get_next_image()
        assert fn == 0 and decode_frame(img) == 0
        d.close()

    with pytest.raises(ValueError):
        new_for_format(fmt=None, mode='r')

    # write
    for i, spelling in enumerate(('path', 'fullpath', 'basedir')):
        p = str(tmp_path / ('w%d' % i))
        fullp = os.path.join(p, STORE_MD_FILENAME)
        kw = dict(imgshape=(10, 10), imgdtype=np.uint8)
        if spelling == 'path':
            d = new_for_format('npy', path=p, **kw)
        elif spelling == 'fullpath':
            d = new_for_format('npy', path=fullp, **kw)
        else:
            d = new_for_format('npy', basedir=p, **kw)
        assert d.full_path == fullp
        assert d.filename == p
        assert d.mode == 'w'
        d.add_image(np.full((10, 10), 7, np.uint8), 0, 1.0)
        d.close()
        r = new_for_filename(p)
        assert r.frame_count == 1
        assert int(r.get_next_image()[0][0, 0]) == 7

    p = str(tmp_path / 'wbad')
    with pytest.raises(ValueError):
        new_for_format('npy', basedir=os.path.join(p, STORE_MD_FILENAME), imgshape=(10, 10), imgdtype=np.uint8)
    with pytest.raises(ValueError):
        new_for_format('npy', path=p, basedir=p, imgshape=(10, 10), imgdtype=np.uint8)


def test_direct_class_construction(tmp_path):
    p = str(tmp_path / 's')
    d = DirectoryImgStore(basedir=p, mode='w', imgshape=SHAPE_GRAY, imgdtype=np.uint8, chunksize=4, format='png')
    for i in range(6):
        d.add_image(make_frame(i, SHAPE_GRAY), i, float(i))
    d.close()
    r = DirectoryImgStore(basedir=p, mode='r')
    assert [decode_frame(img) for img, _ in read_all(r)] == list(range(6))
    with pytest.raises(ValueError):
        DirectoryImgStore(basedir=p, mode='x')


# -- reading --------------------------------------------------------------------------------------

def test_next_image_and_next_framenumber(tmp_path):
    fns = [10, 11, 12, 13, 14, 15, 16, 17]
    write_store(tmp_path / 's', 'npy', fns, chunksize=3)
    s = new_for_filename(str(tmp_path / 's'))
    assert np.isnan(s.frame_number)
    assert s.get_next_framenumber() == 10
    assert s.get_next_framenumber() == 10  # does not advance
    for i, fn in enumerate(fns):
        assert s.get_next_framenumber() == fn
        img, (frame_number, _) = s.get_next_image()
        assert frame_number == fn
        assert s.frame_number == fn
        assert decode_frame(img) == fn
    with pytest.raises(EOFError):
        s.get_next_framenumber()
    with pytest.raises(EOFError):
        s.get_next_image()
    # a seek resets the sequential position
    img, (frame_number, _) = s.get_image(12)
    assert frame_number == 12
    assert s.get_next_framenumber() == 13
    img, (frame_number, _) = s.get_next_image()
    assert frame_number == 13 and decode_frame(img) == 13
    # seek to the last frame of a chunk, then continue into the next chunk
    s.get_image(None, frame_index=5)
    assert s.get_next_framenumber() == 16
    img, (frame_number, _) = s.get_next_image()
    assert frame_number == 16 and decode_frame(img) == 16
    s.close()


def test_missing_frames_raise_valueerror(tmp_path):
    fns = [3, 4, 5, 8, 9]
    write_store(tmp_path / 's', 'npy', fns, chunksize=2)
    s = new_for_filename(str(tmp_path / 's'))
    for bad in (6, 7, 0, 100, -1):
        with pytest.raises(ValueError):
            s.get_image(bad)
        with pytest.raises(ValueError):
            s.get_image(bad, exact_only=True)
    for bad_index in (5, 6, 1000, -1, -5):
        with pytest.raises(ValueError):
            s.get_image(None, frame_index=bad_index)
    # still usable afterwards
    img, (fn, _) = s.get_image(8)
    assert fn == 8 and decode_frame(img) == 8
    s.close()


def test_nearest_frame_number_ties_go_to_earliest_written(tmp_path):
    # written order: 20, 10, 30, 16, 14 (spread over chunks)
    fns = [20, 10, 30, 16, 14]
    write_store(tmp_path / 's', 'npy', fns, chunksize=2)
    s = new_for_filename(str(tmp_path / 's'))
    for query, want in ((15, 16),    # 16 (written 4th) and 14 (5th) both 1 away
                        (25, 20),    # 20 (1st) and 30 (3rd)
                        (12, 10),    # 10 (2nd) and 14 (5th)
                        (18, 20),    # 20 (1st) and 16 (4th)
                        (17, 16),
                        (-100, 10), (1000, 30),
                        (14, 14), (30, 30)):
        img, (frame_number, _) = s.get_image(query, exact_only=False)
        assert frame_number == want, query
        assert decode_frame(img) == want
        assert s.frame_number == want
    s.close()


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(fns=st.lists(st.integers(min_value=-40, max_value=40), min_size=1, max_size=12),
       queries=st.lists(st.integers(min_value=-60, max_value=60), min_size=1, max_size=8),
       chunksize=st.integers(min_value=1, max_value=5))
def test_lookup_semantics_property(fns, queries, chunksize):
    """exact lookups find the first written frame with that number; nearest lookups the smallest
    |frame_number - query|, ties to the earliest written (the original's sqlite queries)"""
    codes = list(range(1000, 1000 + len(fns)))   # frame i shows 1000 + i
    with tempfile.TemporaryDirectory() as d:
        write_store(os.path.join(d, 's'), 'npy', fns, chunksize=chunksize, codes=codes)
        s = new_for_filename(os.path.join(d, 's'))
        try:
            assert s.frame_count == len(fns)
            assert s.frame_min == min(fns) and s.frame_max == max(fns)
            for q in queries:
                if q in fns:
                    img, (fn, _) = s.get_image(q)
                    assert fn == q and decode_frame(img) == codes[fns.index(q)]
                else:
                    with pytest.raises(ValueError):
                        s.get_image(q)
                want = min(range(len(fns)), key=lambda i: (abs(q - fns[i]), i))
                img, (fn, _) = s.get_image(q, exact_only=False)
                assert fn == fns[want] and decode_frame(img) == codes[want], (q, fns)
            i = len(fns) // 2
            img, (fn, _) = s.get_image(None, frame_index=i)
            assert fn == fns[i] and decode_frame(img) == codes[i]
            # sequential reading after the lookups continues after the last frame read
            if i + 1 < len(fns):
                img, (fn, _) = s.get_next_image()
                assert fn == fns[i + 1] and decode_frame(img) == codes[i + 1]
        finally:
            s.close()


def test_nearest_image_by_time(tmp_path):
    fns = [1, 2, 3, 4, 5]
    times = [10.0, 12.0, 11.0, 13.0, 20.0]
    write_store(tmp_path / 's', 'npy', fns, frame_times=times, chunksize=2)
    s = new_for_filename(str(tmp_path / 's'))
    for query, want in ((10.0, 1), (12.0, 2), (11.0, 3), (13.0, 4), (20.0, 5),
                        (11.4, 3), (11.6, 2), (16.4, 4), (16.6, 5),
                        (11.5, 2),   # tie 12.0 (written 2nd) / 11.0 (3rd)
                        (10.5, 1),   # tie 10.0 (1st) / 11.0 (3rd)
                        (12.5, 2),   # tie 12.0 (2nd) / 13.0 (4th)
                        (-1e9, 1), (0.0, 1), (1e12, 5)):
        img, (frame_number, frame_time) = s.get_nearest_image(query)
        assert frame_number == want, query
        assert frame_time == times[fns.index(want)]
        assert decode_frame(img) == want
    assert s.frame_time_min == 10.0
    assert s.frame_time_max == 20.0
    assert s.duration == 10.0
    s.close()


@pytest.mark.parametrize('chunksize', [2, 100])
def test_non_monotonic_wrapping_frame_numbers(tmp_path, chunksize):
    fns = [6050, 6055, 6056, 0, 1, 2]
    _, times = write_store(tmp_path / 's', 'npy', fns, chunksize=chunksize)
    s = new_for_filename(str(tmp_path / 's'))
    assert s.frame_count == 6
    assert s.frame_min == 0
    assert s.frame_max == 6056
    assert list(s.chunks) == ([0, 1, 2] if chunksize == 2 else [0])

    got = [(fn, ft, decode_frame(img)) for img, (fn, ft) in read_all(s)]
    assert got == [(fn, ft, fn) for fn, ft in zip(fns, times)]

    for fn in reversed(fns):
        img, (frame_number, _) = s.get_image(fn)
        assert frame_number == fn and decode_frame(img) == fn
    for i in reversed(range(len(fns))):
        img, (frame_number, _) = s.get_image(None, frame_index=i)
        assert frame_number == fns[i] and decode_frame(img) == fns[i]

    with pytest.raises(ValueError):
        s.get_image(42)
    with pytest.raises(ValueError):
        s.get_image(None, frame_index=42)

    # nearest
    for query, want in ((42, 2), (6054, 6055), (6053, 6055), (3000, 2), (7000, 6056)):
        img, (frame_number, _) = s.get_image(query, exact_only=False)
        assert frame_number == want, query
        assert decode_frame(img) == want

    # seek into the middle, then keep reading
    s.get_image(6055)
    assert s.get_next_image()[1][0] == 6056
    img, (frame_number, _) = s.get_next_image()
    assert frame_number == 0 and decode_frame(img) == 0

    img, (frame_number, _) = s.get_nearest_image(times[0] - 1.0)
    assert frame_number == 6050
    img, (frame_number, _) = s.get_nearest_image(times[0] + 0.75 * (times[1] - times[0]))
    assert frame_number == 6055 and decode_frame(img) == 6055
    s.close()


def test_duplicate_frame_numbers(tmp_path):
    fns = [5, 7, 5, 8, 7]
    codes = [100, 101, 102, 103, 104]   # the image shows its write position
    write_store(tmp_path / 's', 'npy', fns, chunksize=2, codes=codes)
    s = new_for_filename(str(tmp_path / 's'))
    assert s.frame_count == 5
    assert list(s.get_frame_metadata()['frame_number']) == fns
    # an exact lookup finds the first written frame with that number
    img, (fn, _) = s.get_image(5)
    assert fn == 5 and decode_frame(img) == 100
    img, (fn, _) = s.get_image(7)
    assert fn == 7 and decode_frame(img) == 101
    img, (fn, _) = s.get_image(6, exact_only=False)
    assert fn == 5 and decode_frame(img) == 100
    # every one is reachable by index and by sequential reading
    for i in range(5):
        img, (fn, _) = s.get_image(None, frame_index=i)
        assert fn == fns[i] and decode_frame(img) == codes[i]
    s2 = new_for_filename(str(tmp_path / 's'))
    assert [(fn, decode_frame(img)) for img, (fn, _) in read_all(s2)] == list(zip(fns, codes))
    s.close()
    s2.close()


def test_negative_frame_numbers(tmp_path):
    fns = [-3, -2, -1, 0, 1, 2]
    write_store(tmp_path / 's', 'npy', fns, chunksize=4)
    s = new_for_filename(str(tmp_path / 's'))
    assert s.frame_min == -3 and s.frame_max == 2
    for fn in (-2, 1, -3, 2, 0, -1):
        img, (frame_number, _) = s.get_image(fn)
        assert frame_number == fn and decode_frame(img) == code(fn)
    img, (frame_number, _) = s.get_image(-10, exact_only=False)
    assert frame_number == -3
    s.close()


def test_convert_frame_time_to_datetime_uses_store_timezone(tmp_path):
    p = tmp_path / 's'
    write_store(p, 'npy', [0, 1], metadata={'timezone': 'Europe/Vienna'})
    # the store's timezone is __store.timezone_local (not the user metadata 'timezone')
    with open(str(p / STORE_MD_FILENAME)) as f:
        md = yaml.safe_load(f)
    md['__store']['timezone_local'] = 'America/New_York'
    with open(str(p / STORE_MD_FILENAME), 'w') as f:
        yaml.safe_dump(md, f)

    s = new_for_filename(str(p))
    _, tz = s.created
    assert getattr(tz, 'key', str(tz)) == 'America/New_York'
    dt = s.convert_frame_time_to_datetime(1700000000.0)  # 2023-11-14T22:13:20Z
    assert dt.utcoffset() == datetime.timedelta(hours=-5)
    assert (dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second) == (2023, 11, 14, 17, 13, 20)
    assert dt.timestamp() == 1700000000.0
    dt = s.convert_frame_time_to_datetime(1690000000.0)  # summer: EDT
    assert dt.utcoffset() == datetime.timedelta(hours=-4)
    dt = s.convert_frame_time_to_datetime(1700000000.5, tz=datetime.timezone.utc)
    assert dt == datetime.datetime(2023, 11, 14, 22, 13, 20, 500000, tzinfo=datetime.timezone.utc)
    s.close()


def test_user_metadata_roundtrip(tmp_path):
    user = {'genotype': 'CS', 'n_flies': 3, 'temperature': 25.5, 'tags': ['a', 'b'],
            'nested': {'k': [1, 2], 's': 'x'}, 'timezone': 'Europe/Vienna'}
    w, _ = write_store(tmp_path / 's', 'npy', [0, 1, 2], metadata=json.loads(json.dumps(user)))
    assert w.user_metadata == user
    s = new_for_filename(str(tmp_path / 's'))
    assert s.user_metadata == user
    with open(str(tmp_path / 's' / STORE_MD_FILENAME)) as f:
        md = yaml.safe_load(f)
    assert {k: v for k, v in md.items() if k != '__store'} == user
    s.close()


def test_user_metadata_empty(tmp_path):
    write_store(tmp_path / 's', 'npy', [0])
    s = new_for_filename(str(tmp_path / 's'))
    assert s.user_metadata == {}
    s.close()


# -- extra data -----------------------------------------------------------------------------------

@pytest.mark.beyond_original  # the original puts a record made after a chunk's last frame in the next chunk
def test_extra_data_goes_to_the_chunk_of_its_frame(tmp_path):
    p = tmp_path / 's'
    fns = [100, 101, 102, 103, 104, 105, 106, 107]
    extra = {1: dict(temperature=20.5, humidity=40),
             2: dict(temperature=21.0, humidity=41),    # after the 3rd frame, which fills chunk 0
             5: dict(temperature=22.0, humidity=42),    # after the 6th frame, which fills chunk 1
             7: dict(temperature=23.0, humidity=43)}
    w, times = write_store(p, 'npy', fns, chunksize=3, extra=extra)

    def _load(rel):
        with open(str(p / rel)) as f:
            return json.load(f)

    assert [r['frame_index'] for r in _load('000000/index.extra.json')] == [1, 2]
    assert [r['frame_index'] for r in _load('000001/index.extra.json')] == [5]
    assert [r['frame_index'] for r in _load('000002/index.extra.json')] == [7]
    rec = _load('000000/index.extra.json')[1]
    assert rec == {'temperature': 21.0, 'humidity': 41, 'frame_number': 102, 'frame_time': times[2],
                   'frame_index': 2}

    s = new_for_filename(str(p))
    assert s.has_extra_data
    assert [os.path.abspath(f) for f in s.find_extra_data_files()] == \
        [os.path.abspath(str(p / ('%06d' % c) / 'index.extra.json')) for c in (0, 1, 2)]
    df = s.get_extra_data()
    assert len(df) == 4
    assert {'temperature', 'humidity', 'frame_number', 'frame_time', 'frame_index'} <= set(df.columns)
    assert [int(v) for v in df['frame_index']] == [1, 2, 5, 7]
    assert [int(v) for v in df['frame_number']] == [101, 102, 105, 107]
    assert [float(v) for v in df['frame_time']] == [times[i] for i in (1, 2, 5, 7)]
    assert [float(v) for v in df['temperature']] == [20.5, 21.0, 22.0, 23.0]
    assert [int(v) for v in df['humidity']] == [40, 41, 42, 43]
    s.close()


def test_no_extra_data(tmp_path):
    p = tmp_path / 's'
    w, _ = write_store(p, 'npy', [0, 1, 2], close=False)
    w.add_extra_data()  # nothing to add: no-op
    w.close()
    assert not glob.glob(str(p / '*' / '*.json'))
    s = new_for_filename(str(p))
    assert not s.has_extra_data
    assert s.find_extra_data_files() == []
    df = s.get_extra_data()
    assert df is None or len(df) == 0
    s.close()


def test_extra_data_numpy_values_and_repeats(tmp_path):
    p = tmp_path / 's'
    s = new_for_format('npy', basedir=str(p), imgshape=SHAPE_GRAY, imgdtype=np.uint8, chunksize=10)
    s.add_image(make_frame(5, SHAPE_GRAY), np.int64(5), np.float64(1.5))
    s.add_extra_data(a=np.float32(0.5), b=np.int64(3), arr=np.arange(3))
    s.add_extra_data(a=1.0, b=4, arr=[1])
    s.add_image(make_frame(6, SHAPE_GRAY), 6, 2.5)
    s.close()
    r = new_for_filename(str(p))
    df = r.get_extra_data()
    assert len(df) == 2
    assert [float(v) for v in df['a']] == [0.5, 1.0]
    assert [int(v) for v in df['b']] == [3, 4]
    assert list(df['arr'].iloc[0]) == [0, 1, 2]
    assert [int(v) for v in df['frame_number']] == [5, 5]
    assert [int(v) for v in df['frame_index']] == [0, 0]
    assert [float(v) for v in df['frame_time']] == [1.5, 1.5]
    assert list(r.get_frame_metadata()['frame_number']) == [5, 6]
    img, (fn, ft) = r.get_image(5)
    assert (fn, ft) == (5, 1.5) and decode_frame(img) == 5
    r.close()


# -- index file / reindex -------------------------------------------------------------------------

@pytest.mark.parametrize('chunksize', [2, 100])
def test_close_save_index_writes_sqlite(tmp_path, chunksize):
    p = tmp_path / 's'
    fns = [6050, 6055, 6056, 0, 1, 2]
    s, times = write_store(p, 'npy', fns, chunksize=chunksize, close=False)
    s.close(save_index=True)
    path = str(p / '.index.sqlite')
    assert os.path.isfile(path)

    db = sqlite3.connect(path)
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {'frames', 'chunks', 'index_information', 'summary'} <= tables

        def cols(t):
            return [(r[1], r[2].upper()) for r in db.execute('PRAGMA table_info(%s)' % t)]
        assert cols('frames') == [('chunk', 'INTEGER'), ('frame_idx', 'INTEGER'),
                                  ('frame_number', 'INTEGER'), ('frame_time', 'REAL')]
        assert cols('chunks') == [('chunk', 'INTEGER'), ('chunk_path', 'TEXT')]
        assert cols('index_information') == [('name', 'TEXT'), ('value', 'TEXT')]
        assert cols('summary') == [('name', 'TEXT'), ('value', 'REAL')]

        assert db.execute("SELECT value FROM index_information WHERE name = 'version'").fetchone()[0] == '1'
        rows = db.execute('SELECT chunk, frame_idx, frame_number, frame_time FROM frames ORDER BY rowid').fetchall()
        assert rows == [(i // chunksize, i % chunksize, fn, ft) for i, (fn, ft) in enumerate(zip(fns, times))]
        chunks = [r[0] for r in db.execute('SELECT chunk FROM chunks ORDER BY chunk')]
        assert chunks == ([0, 1, 2] if chunksize == 2 else [0])
        summary = dict(db.execute('SELECT name, value FROM summary').fetchall())
        assert summary['frame_min'] == 0
        assert summary['frame_max'] == 6056
        assert summary['frame_time_min'] == min(times)
        assert summary['frame_time_max'] == max(times)
    finally:
        db.close()

    # the store still reads normally with the index file present
    r = new_for_filename(str(p))
    assert [fn for _, (fn, _) in read_all(r)] == fns
    r.close()


def test_close_without_save_index_writes_no_sqlite(tmp_path):
    write_store(tmp_path / 's', 'npy', [0, 1])
    assert not os.path.exists(str(tmp_path / 's' / '.index.sqlite'))


def test_reindex(tmp_path):
    p = tmp_path / 's'
    fns = [3, 4, 0, 1, 2, 3, 4]
    codes = [50, 51, 52, 53, 54, 55, 56]
    write_store(p, 'npy', fns, chunksize=3, codes=codes,
                extra={0: dict(ofn=3), 1: dict(ofn=4), 6: dict(ofn=42)})

    s = new_for_filename(str(p))
    assert list(s.get_frame_metadata()['frame_number']) == fns
    df = s.get_extra_data()
    assert sorted(df['frame_index'].tolist()) == [0, 1, 6]
    assert sorted(df['frame_number'].tolist()) == [3, 4, 4]
    s.reindex()
    s.close()

    r = new_for_filename(str(p))
    new_fns = [-2, -1, 0, 1, 2, 3, 4]
    assert list(r.get_frame_metadata()['frame_number']) == new_fns
    assert r.frame_min == -2 and r.frame_max == 4
    for fn, c in zip(new_fns, codes):
        img, (frame_number, _) = r.get_image(fn)
        assert frame_number == fn and decode_frame(img) == c
    df = r.get_extra_data().sort_values('frame_index')
    assert df['frame_index'].tolist() == [0, 1, 6]
    assert df['ofn'].tolist() == [3, 4, 42]
    assert df['frame_number'].tolist() == [-2, -1, 4]
    assert df['_frame_number_before_reindex'].tolist() == [3, 4, 4]
    with np.load(str(p / '000000' / 'index.npz')) as z:
        assert z['frame_number'].tolist() == [-2, -1, 0]
        assert z['_frame_number_before_reindex'].tolist() == [3, 4, 0]
    r.close()


@pytest.mark.parametrize('fns', [[1, 2, 3], [0, 1, 0, 2]], ids=['no-zero', 'two-zeros'])
def test_reindex_needs_exactly_one_zero(tmp_path, fns):
    write_store(tmp_path / 's', 'npy', fns, chunksize=2)
    s = new_for_filename(str(tmp_path / 's'))
    with pytest.raises(ValueError):
        s.reindex()
    s.close()
    # and nothing was changed
    r = new_for_filename(str(tmp_path / 's'))
    assert list(r.get_frame_metadata()['frame_number']) == fns
    r.close()


# -- writing: lifecycle ---------------------------------------------------------------------------

def test_lock_file_and_context_manager(tmp_path):
    p = tmp_path / 's'
    with new_for_format('npy', basedir=str(p), imgshape=SHAPE_GRAY, imgdtype=np.uint8, chunksize=3) as s:
        assert os.path.isfile(str(p / '.lock'))
        for i in range(4):
            s.add_image(make_frame(i, SHAPE_GRAY), i, float(i))
    assert not os.path.exists(str(p / '.lock'))
    with new_for_filename(str(p)) as r:
        assert not os.path.exists(str(p / '.lock'))
        assert len(r) == 4
        assert [decode_frame(img) for img, _ in read_all(r)] == [0, 1, 2, 3]


def test_empty_resets_store(tmp_path):
    p = tmp_path / 's'
    s = new_for_format('npy', basedir=str(p), imgshape=SHAPE_GRAY, imgdtype=np.uint8, chunksize=3)
    for i in range(4):
        s.add_image(make_frame(i, SHAPE_GRAY), i, float(i))
    s.empty()
    assert s.frame_count == 0
    assert np.isnan(s.frame_min) and np.isnan(s.frame_max)
    assert np.isnan(s.frame_number)
    s.close()
    r = new_for_filename(str(p))
    with pytest.raises(ValueError):
        r.empty()  # only in write mode
    r.close()


@pytest.mark.beyond_original
def test_empty_then_write_again(tmp_path):
    # the original's DirectoryImgStore.empty() neither removes the written chunks nor starts a new chunk:
    # the frames written before empty() are still there after close (and new ones overwrite them)
    p = tmp_path / 's'
    s = new_for_format('npy', basedir=str(p), imgshape=SHAPE_GRAY, imgdtype=np.uint8, chunksize=3)
    for i in range(5):
        s.add_image(make_frame(i, SHAPE_GRAY), i, float(i))
    s.add_extra_data(x=1)
    s.empty()
    for fn in (20, 21):
        s.add_image(make_frame(fn, SHAPE_GRAY), fn, float(fn))
    s.close()
    r = new_for_filename(str(p))
    assert r.frame_count == 2
    assert [(fn, decode_frame(img)) for img, (fn, _) in read_all(r)] == [(20, 20), (21, 21)]
    assert not r.has_extra_data
    r.close()


def test_zero_frame_store(tmp_path):
    w, _ = write_store(tmp_path / 's', 'npy', [], chunksize=13)
    assert w.frame_count == 0
    s = new_for_filename(str(tmp_path / 's'))
    assert s.frame_count == 0
    assert len(s) == 0
    assert np.isnan(s.frame_min) and np.isnan(s.frame_max)
    assert s.duration == 0
    assert list(s.chunks) == []
    md = s.get_frame_metadata()
    assert list(md['frame_number']) == [] and list(md['frame_time']) == []
    assert tuple(s.image_shape) == SHAPE_GRAY
    with pytest.raises(EOFError):
        s.get_next_image()
    with pytest.raises(ValueError):
        s.get_image(0)
    with pytest.raises(ValueError):
        s.get_image(None, frame_index=0)
    assert not s.has_extra_data
    s.close()


def test_one_frame_store(tmp_path):
    _, times = write_store(tmp_path / 's', 'png', [77], shape=SHAPE_COLOR, chunksize=13)
    s = new_for_filename(str(tmp_path / 's'))
    assert s.frame_count == 1 and len(s) == 1
    assert s.frame_min == 77 and s.frame_max == 77
    assert s.duration == 0
    assert s.frame_time_min == times[0] == s.frame_time_max
    assert list(s.chunks) == [0]
    img, (fn, ft) = s.get_next_image()
    assert (fn, ft) == (77, times[0])
    check_image('png', img, 77, SHAPE_COLOR, np.uint8)
    with pytest.raises(EOFError):
        s.get_next_image()
    img, (fn, _) = s.get_image(77)
    check_image('png', img, 77, SHAPE_COLOR, np.uint8)
    img, (fn, _) = s.get_nearest_image(0.0)
    assert fn == 77
    s.close()


def test_frame_count_multiple_of_chunksize(tmp_path):
    p = tmp_path / 's'
    fns = list(range(200, 214))
    w, times = write_store(p, 'npy', fns, chunksize=7, extra={13: dict(last=True), 6: dict(last=False)})
    assert w.frame_count == 14
    if not AGAINST_ORIGINAL:  # the original puts them in the next chunk (1, resp. an empty chunk 2)
        assert not os.path.exists(str(p / '000002'))
        with open(str(p / '000001' / 'index.extra.json')) as f:
            assert [r['frame_index'] for r in json.load(f)] == [13]
        with open(str(p / '000000' / 'index.extra.json')) as f:
            assert [r['frame_index'] for r in json.load(f)] == [6]

    s = new_for_filename(str(p))
    assert s.frame_count == 14
    assert list(s.chunks) == [0, 1]
    got = [(fn, decode_frame(img)) for img, (fn, _) in read_all(s)]
    assert got == [(fn, fn) for fn in fns]
    img, (fn, _) = s.get_image(None, frame_index=13)
    assert fn == 213 and decode_frame(img) == 213
    with pytest.raises(ValueError):
        s.get_image(None, frame_index=14)
    img = imgstore.extract_only_frame(s.full_path, 13)
    assert decode_frame(img) == 213
    df = s.get_extra_data()
    assert [int(v) for v in df['frame_index']] == [6, 13]
    assert [bool(v) for v in df['last']] == [False, True]
    s.close()


@pytest.mark.parametrize('fmt', ['npy', 'png', 'bmp', 'tif'])
@pytest.mark.parametrize('shape', [(49, 65), (49, 65, 3), (51, 97)], ids=str)
def test_odd_image_sizes_are_kept(tmp_path, fmt, shape):
    fns = [0, 1, 2, 3]
    write_store(tmp_path / 's', fmt, fns, shape=shape, chunksize=3)
    with open(str(tmp_path / 's' / STORE_MD_FILENAME)) as f:
        assert list(yaml.safe_load(f)['__store']['imgshape']) == list(shape)
    s = new_for_filename(str(tmp_path / 's'))
    assert tuple(s.image_shape) == shape
    for img, (fn, _) in read_all(s):
        check_image(fmt, img, fn, shape, np.uint8)
    s.close()


def test_properties(tmp_path):
    p = str(tmp_path / 's')
    fns = [10, 12, 11, 15, 14]
    times = [100.0, 100.5, 101.0, 101.25, 102.0]
    s = new_for_format('png', basedir=p, imgshape=SHAPE_COLOR, imgdtype='uint8', chunksize=2,
                       metadata={'genotype': 'wt'})
    assert s.mode == 'w'
    assert s.frame_count == 0 and len(s) == 0
    assert s.filename == p
    assert s.full_path == os.path.join(p, STORE_MD_FILENAME)
    assert tuple(s.image_shape) == SHAPE_COLOR
    assert s.user_metadata == {'genotype': 'wt'}
    assert s.lossless
    created, tz = s.created
    assert created.tzinfo is not None and created.utcoffset() == datetime.timedelta(0)
    assert abs((datetime.datetime.now(datetime.timezone.utc) - created).total_seconds()) < 60
    assert tz is not None
    uuid = s.uuid
    assert isinstance(uuid, str) and len(uuid) == 32 and int(uuid, 16) >= 0
    for i, (fn, ft) in enumerate(zip(fns, times)):
        s.add_image(make_frame(fn, SHAPE_COLOR), fn, ft)
        assert s.frame_count == i + 1 == len(s)
        assert s.frame_number == fn
        assert s.frame_min == min(fns[:i + 1])
        assert s.frame_max == max(fns[:i + 1])
    s.close()

    r = new_for_filename(p)
    assert r.mode == 'r'
    assert r.frame_count == 5 and len(r) == 5
    assert r.frame_min == 10 and r.frame_max == 15
    assert r.frame_time_min == 100.0 and r.frame_time_max == 102.0
    assert r.duration == 2.0
    assert list(r.chunks) == [0, 1, 2]
    assert tuple(r.image_shape) == SHAPE_COLOR
    assert r.user_metadata == {'genotype': 'wt'}
    assert r.filename == p
    assert r.full_path == os.path.join(p, STORE_MD_FILENAME)
    assert r.uuid == uuid
    assert r.created[0] == created
    assert getattr(r.created[1], 'key', str(r.created[1])) == getattr(tz, 'key', str(tz))
    assert r.lossless
    assert np.isnan(r.frame_number)
    img, (fn, _) = r.get_image(None, frame_index=3)
    assert r.frame_number == 15 == fn
    r.close()


@pytest.mark.parametrize('fmt', ['jpg', 'jpg+color'])
def test_lossless_property_jpg(tmp_path, fmt):
    write_store(tmp_path / 's', fmt, [0], shape=SHAPE_COLOR)
    s = new_for_filename(str(tmp_path / 's'))
    assert s.lossless is False
    s.close()


# -- colour conversion ----------------------------------------------------------------------------

def test_ensure_grayscale_matches_opencv():
    rng = np.random.RandomState(0)
    img = rng.randint(0, 256, size=(37, 53, 3)).astype(np.uint8)
    # all extremes, too
    extremes = np.array([[[b, g, r] for b in (0, 1, 127, 128, 254, 255) for g in (0, 128, 255)
                          for r in (0, 3, 128, 255)]], dtype=np.uint8)
    for x in (img, extremes, make_frame(1234, SHAPE_COLOR)):
        g = ensure_grayscale(x)
        assert g.shape == x.shape[:2]
        assert g.dtype == np.uint8
        assert np.array_equal(g, bgr2gray_reference(x))
    gray = rng.randint(0, 256, size=(5, 7)).astype(np.uint8)
    assert np.array_equal(ensure_grayscale(gray), gray)


def test_ensure_grayscale_all_colours():
    # every one of the 2**24 BGR colours, as one 4096x4096 image
    v = np.arange(256, dtype=np.uint8)
    b, g, r = np.meshgrid(v, v, v, indexing='ij')
    img = np.stack([b, g, r], axis=-1).reshape(4096, 4096, 3)
    del b, g, r
    assert np.array_equal(ensure_grayscale(img), bgr2gray_reference(img))


def test_ensure_color():
    rng = np.random.RandomState(1)
    gray = rng.randint(0, 256, size=(9, 11)).astype(np.uint8)
    c = ensure_color(gray)
    assert c.shape == (9, 11, 3) and c.dtype == np.uint8
    for ch in range(3):
        assert np.array_equal(c[:, :, ch], gray)
    color = rng.randint(0, 256, size=(9, 11, 3)).astype(np.uint8)
    assert np.array_equal(ensure_color(color), color)


# -- on-disk layout -------------------------------------------------------------------------------

@pytest.mark.parametrize('fmt', DIRECTORY_FORMATS + COLOR_VARIANT_FORMATS)
def test_written_files_match_original_layout(tmp_path, fmt):
    p = tmp_path / 's'
    fns = [5, 6, 7, 8, 9, 10, 11]
    _, times = write_store(p, fmt, fns, shape=SHAPE_COLOR, chunksize=3, metadata={'genotype': 'CS'},
                           extra={0: dict(t=1.0), 4: dict(t=2.0)})
    ext = base_format(fmt)
    names = sorted(os.path.relpath(os.path.join(dp, f), str(p)) for dp, _, fs in os.walk(str(p)) for f in fs)
    want = ['000000/%06d.%s' % (i, ext) for i in range(3)] + ['000000/index.extra.json', '000000/index.npz'] + \
           ['000001/%06d.%s' % (i, ext) for i in range(3)] + ['000001/index.extra.json', '000001/index.npz'] + \
           ['000002/%06d.%s' % (i, ext) for i in range(1)] + ['000002/index.npz'] + \
           ['metadata.yaml']
    # files we add must not be in the way of the original reader: only check that these exist
    assert set(want) <= set(names), sorted(set(want) - set(names))
    chunk_dirs = sorted(d for d in os.listdir(str(p)) if os.path.isdir(str(p / d)))
    assert chunk_dirs == ['000000', '000001', '000002']

    with open(str(p / 'metadata.yaml')) as f:
        md = yaml.safe_load(f)
    smd = md.pop('__store')
    assert md == {'genotype': 'CS'}
    assert STORE_MD_KEYS <= set(smd)
    assert smd['class'] == 'DirectoryImgStore'
    assert smd['version'] == 2
    assert smd['format'] == ext
    assert smd['imgshape'] == list(SHAPE_COLOR)
    assert smd['imgdtype'] == 'uint8'
    assert smd['chunksize'] == 3
    assert not smd['encoding']
    created = datetime.datetime.fromisoformat(smd['created_utc'])
    assert created.tzinfo is None
    assert abs((datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - created).total_seconds()) < 60
    import zoneinfo
    zoneinfo.ZoneInfo(smd['timezone_local'])
    assert len(smd['uuid']) == 32 and int(smd['uuid'], 16) >= 0

    for c, sl in ((0, slice(0, 3)), (1, slice(3, 6)), (2, slice(6, 7))):
        with np.load(str(p / ('%06d' % c) / 'index.npz'), allow_pickle=True) as z:
            assert z['frame_number'].dtype == np.int64
            assert z['frame_time'].dtype == np.float64
            assert z['frame_number'].tolist() == fns[sl]
            assert z['frame_time'].tolist() == times[sl]
            # writers copy the __store metadata into every chunk index
            assert STORE_MD_KEYS <= set(z.files), sorted(STORE_MD_KEYS - set(z.files))
            assert str(z['uuid']) == smd['uuid']
            assert str(z['class']) == 'DirectoryImgStore'
            assert str(z['format']) == ext

    with open(str(p / '000001' / 'index.extra.json')) as f:
        recs = json.load(f)
    assert recs == [{'t': 2.0, 'frame_number': 9, 'frame_time': times[4], 'frame_index': 4}]

    # frame files hold the image in the format named by the extension
    if ext == 'npy':
        arr = np.load(str(p / '000001' / '000001.npy'))
        assert np.array_equal(arr, make_frame(9, SHAPE_COLOR))
    else:
        from PIL import Image
        with Image.open(str(p / '000001' / ('000001.%s' % ext))) as im:
            want_mode = {'pgm': 'L'}.get(ext, 'RGB')
            assert im.mode == want_mode
            arr = np.asarray(im)
        if ext == 'pgm':
            assert decode_frame(arr) == 9
            assert np.array_equal(arr, bgr2gray_reference(make_frame(9, SHAPE_COLOR)))
        else:
            # files hold RGB: the BGR frame's blue patch (columns 0..31) is blue in the file
            assert decode_frame(arr) == 9
            left = arr[36:44, 4:28].reshape(-1, 3).mean(axis=0)
            assert left[2] > 200 and left[0] < 50, left


@pytest.mark.parametrize('fmt', ['png', 'npy', 'pgm', 'tif'])
def test_written_gray_files(tmp_path, fmt):
    p = tmp_path / 's'
    write_store(p, fmt, [300, 301], shape=SHAPE_GRAY, chunksize=5)
    path = str(p / '000000' / ('000001.%s' % fmt))
    if fmt == 'npy':
        arr = np.load(path)
    else:
        from PIL import Image
        with Image.open(path) as im:
            assert im.mode == 'L'
            arr = np.asarray(im)
    assert arr.shape == SHAPE_GRAY
    assert np.array_equal(arr, make_frame(301, SHAPE_GRAY))


# -- reading stores written by others ---------------------------------------------------------------

def test_yaml_chunk_index_is_read(tmp_path):
    # older stores have NNNNNN/index.yaml (frame_number, frame_time) instead of index.npz
    p = tmp_path / 's'
    fns = [10, 11, 12, 13, 14]
    _, times = write_store(p, 'npy', fns, chunksize=3)
    with np.load(str(p / '000000' / 'index.npz')) as z:
        idx = {'frame_number': z['frame_number'].tolist(), 'frame_time': z['frame_time'].tolist()}
    os.unlink(str(p / '000000' / 'index.npz'))
    with open(str(p / '000000' / 'index.yaml'), 'w') as f:
        yaml.safe_dump(idx, f)
    s = new_for_filename(str(p))
    assert s.frame_count == 5
    assert list(s.get_frame_metadata()['frame_number']) == fns
    assert list(s.get_frame_metadata()['frame_time']) == times
    assert [(fn, decode_frame(img)) for img, (fn, _) in read_all(s)] == [(fn, fn) for fn in fns]
    s.close()


def test_chunk_without_index_is_skipped(tmp_path):
    p = tmp_path / 's'
    fns = list(range(20, 29))
    write_store(p, 'npy', fns, chunksize=3)
    os.unlink(str(p / '000001' / 'index.npz'))
    s = new_for_filename(str(p))
    assert s.frame_count == 6
    assert list(s.chunks) == [0, 2]
    assert list(s.get_frame_metadata()['frame_number']) == [20, 21, 22, 26, 27, 28]
    for fn in (28, 20, 26, 22):
        img, (frame_number, _) = s.get_image(fn)
        assert frame_number == fn and decode_frame(img) == fn
    with pytest.raises(ValueError):
        s.get_image(24)
    img, (frame_number, _) = s.get_image(None, frame_index=3)
    assert frame_number == 26 and decode_frame(img) == 26
    s.close()


@pytest.mark.beyond_original
def test_unrelated_files_and_folders_are_ignored(tmp_path):
    # FORMAT.md: chunks are the sub-folders whose name is a number; readers ignore files they do not
    # know. (The original did int() on every sub-folder name and failed on e.g. 'notes'.)
    p = tmp_path / 's'
    fns = [1, 2, 3, 4]
    write_store(p, 'png', fns, chunksize=3, extra={1: dict(a=1)})
    os.mkdir(str(p / 'notes'))
    (p / 'notes' / 'readme.txt').write_text('hello')
    (p / 'thumbnail.png').write_bytes(b'not really a png')
    (p / '000000' / 'something.else').write_text('x')
    s = new_for_filename(str(p))
    assert s.frame_count == 4
    assert list(s.chunks) == [0, 1]
    assert [(fn, decode_frame(img)) for img, (fn, _) in read_all(s)] == [(fn, fn) for fn in fns]
    assert len(s.get_extra_data()) == 1
    s.close()
