"""Metadata and extra data: Motif extra-data files, created-time fallbacks, colour encodings (Bayer)."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import yaml

import imgstore
from imgstore.apps.synthetic import make_frame, read_frame_number

SHAPE = (48, 64)


def write_store(path, n=9, chunksize=4, fmt="npy", **kw):
    with imgstore.new_for_format(fmt, basedir=str(path), imgshape=SHAPE, imgdtype=np.uint8, chunksize=chunksize,
                                 **kw) as s:
        for i in range(n):
            s.add_image(make_frame(i, SHAPE), i, 1000.0 + i)
    return str(path)


def write_motif_h5(path, rows, samplerate=1000.0, unused=2, audio=True):
    import h5py

    n = rows + unused
    camera = np.zeros(n, dtype=[("frame_number", "<i8"), ("frame_time", "<f8")])
    camera["frame_number"] = list(range(rows)) + [-1] * unused  # pre-allocated rows that were never used
    camera["frame_time"] = 1000.0 + np.arange(n) / samplerate
    with h5py.File(path, "w") as f:
        f.attrs["datasets"] = b"daq, audio" if audio else b"daq"
        d = f.create_dataset("daq", data=np.arange(2 * n, dtype=float).reshape(2, n))
        d.attrs["column_names"] = b"voltage, current"
        d.attrs["samplerate"] = samplerate
        if audio:
            a = f.create_dataset("audio", data=np.arange(n, dtype=float).reshape(1, n) * 10)
            a.attrs["column_names"] = "mic"
        f.create_dataset("camera", data=camera)
        f.create_dataset("sample_delay", data=np.arange(n) * 0.5)


def test_motif_h5_and_json_extra_data(tmp_path):
    path = write_store(tmp_path / "s")
    write_motif_h5(os.path.join(path, "000000.extra_data.h5"), rows=5)
    recs = [{"frame_number": 6, "frame_index": 6, "sensor_time": 2.0, "x": 1},
            {"frame_number": -1, "frame_index": 7, "sensor_time": 0.0, "x": 99},  # unused row
            {"frame_number": 5, "frame_index": 5, "sensor_time": 1.0, "x": 2}]
    with open(os.path.join(path, "000001.extra_data.json"), "w") as f:
        json.dump(recs, f)
    # the store's own file for chunk 1 is ignored when Motif wrote one for it, as in the original
    with open(os.path.join(path, "000001", "index.extra.json"), "w") as f:
        json.dump([{"frame_number": 4, "frame_index": 4, "frame_time": 1.0, "y": 3}], f)
    s = imgstore.new_for_filename(path)
    assert s.has_extra_data
    files = [os.path.basename(p) for p in s.find_extra_data_files()]
    assert files == ["000000.extra_data.h5", "000001.extra_data.json"]
    df = s.get_extra_data()
    h5 = df.iloc[:5]
    assert list(h5["voltage"]) == [0, 1, 2, 3, 4] and list(h5["current"]) == [7, 8, 9, 10, 11]
    assert list(h5["mic"]) == [0, 10, 20, 30, 40] and list(h5["sample_delay"]) == [0, 0.5, 1, 1.5, 2]
    assert list(h5["frame_number"]) == [0, 1, 2, 3, 4]
    js = df.iloc[5:]
    assert list(js["x"]) == [2, 1]  # negative frame numbers dropped, sorted by frame_index
    with pytest.raises(ValueError, match="Multiple sample rates"):  # two datasets, as the original says
        s.get_extra_data_samplerate()
    write_motif_h5(os.path.join(path, "000000.extra_data.h5"), rows=5, samplerate=250.0, audio=False)
    assert imgstore.new_for_filename(path).get_extra_data_samplerate() == 250.0


def test_corrupt_extra_data_is_named_or_skipped(tmp_path):
    path = write_store(tmp_path / "s")
    with open(os.path.join(path, "000001.extra_data.h5"), "wb") as f:
        f.write(b"\x89HDF\r\n\x1a\n garbage")
    s = imgstore.new_for_filename(path)
    with pytest.raises(imgstore.CorruptChunkError) as e:
        s.get_extra_data()
    assert "000001.extra_data.h5" in str(e.value)
    assert s.get_extra_data(ignore_corrupt_chunks=True) is None


def _rewrite_metadata(path, fn):
    p = os.path.join(path, "metadata.yaml")
    with open(p) as f:
        doc = yaml.safe_load(f)
    fn(doc)
    with open(p, "w") as f:
        yaml.safe_dump(doc, f)


def test_created_fallbacks_for_old_stores(tmp_path):
    # no created_utc: from a YYYYmmdd_HHMMSS in the folder name, in the user metadata's time zone
    path = write_store(tmp_path / "fly_20200131_235959.cam1", metadata={"timezone": "Europe/Vienna"})
    _rewrite_metadata(path, lambda d: (d["__store"].pop("created_utc"), d["__store"].pop("timezone_local")))
    created, tz = imgstore.new_for_filename(path).created
    assert str(tz) == "Europe/Vienna"
    assert created == datetime.datetime(2020, 1, 31, 22, 59, 59, tzinfo=datetime.timezone.utc)
    # else from the file's modification time
    path2 = write_store(tmp_path / "plain")
    _rewrite_metadata(path2, lambda d: d["__store"].pop("created_utc"))
    os.utime(os.path.join(path2, "metadata.yaml"), (1.6e9, 1.6e9))
    created, _ = imgstore.new_for_filename(path2).created
    assert created.timestamp() == 1.6e9 and created.tzinfo is not None
    # convert_frame_time_to_datetime uses the store's zone
    s = imgstore.new_for_filename(path)
    assert s.convert_frame_time_to_datetime(0).utcoffset() == datetime.timedelta(hours=1)


def test_created_round_trip(tmp_path):
    path = write_store(tmp_path / "s")
    with open(os.path.join(path, "metadata.yaml")) as f:
        smd = yaml.safe_load(f)["__store"]
    created, _ = imgstore.new_for_filename(path).created
    assert created.replace(tzinfo=None).isoformat() == smd["created_utc"]
    assert created.tzinfo == datetime.timezone.utc


def _bayer_mosaic(bgr):
    """A BG-pattern Bayer mosaic of a BGR image (OpenCV's COLOR_BayerBG2BGR convention)."""
    h, w = bgr.shape[:2]
    m = np.zeros((h, w), np.uint8)
    m[0::2, 0::2] = bgr[0::2, 0::2, 2]  # OpenCV's 'BG' names the second row's pattern: R at (0, 0)
    m[0::2, 1::2] = bgr[0::2, 1::2, 1]
    m[1::2, 0::2] = bgr[1::2, 0::2, 1]
    m[1::2, 1::2] = bgr[1::2, 1::2, 0]
    return m


def test_bayer_encoding_is_converted_to_bgr_on_read(tmp_path):
    cv2 = pytest.importorskip("cv2")
    src = np.zeros((48, 64, 3), np.uint8)
    src[:, :32] = (255, 0, 0)  # blue left half
    src[:, 32:] = (0, 0, 255)  # red right half
    mosaic = _bayer_mosaic(src)
    path = str(tmp_path / "s")
    with imgstore.new_for_format("npy", basedir=path, imgshape=(48, 64), imgdtype=np.uint8, chunksize=4,
                                 encoding="cv_bayerbg") as s:
        for i in range(3):
            s.add_image(mosaic, i, float(i))
    r = imgstore.new_for_filename(path)
    assert r.image_shape == (48, 64, 3)
    img, _ = r.get_image(1)
    assert np.array_equal(img, cv2.cvtColor(mosaic, cv2.COLOR_BayerBG2BGR))
    assert img[20, 10, 0] > 200 and img[20, 10, 2] < 50 and img[20, 50, 2] > 200  # blue left, red right
    r.disable_decoding()
    raw, _ = r.get_image(1)
    assert raw.shape == (48, 64) and np.array_equal(raw, mosaic)

    # the "+color" formats convert at write time and store plain BGR
    path2 = str(tmp_path / "c")
    with imgstore.new_for_format("png+color", basedir=path2, imgshape=(48, 64), imgdtype=np.uint8,
                                 encoding="cv_bayerbg") as s:
        s.add_image(mosaic, 0, 0.0)
    r2 = imgstore.new_for_filename(path2)
    assert r2.store_metadata["encoding"] is None and r2.image_shape == (48, 64, 3)
    assert np.array_equal(r2.get_image(0)[0], img)


def test_bayer_store_without_opencv_gives_a_clear_error(tmp_path):
    path = str(tmp_path / "s")
    with imgstore.new_for_format("npy", basedir=path, imgshape=SHAPE, imgdtype=np.uint8, encoding="cv_bayerbg") as s:
        s.add_image(make_frame(5, SHAPE), 5, 0.0)
    code = textwrap.dedent(f"""
        import sys
        sys.modules['cv2'] = None  # as if OpenCV were not installed
        import imgstore
        s = imgstore.new_for_filename({path!r})
        print(s.frame_count, s.get_frame_metadata()['frame_number'])
        try:
            s.get_image(5)
        except imgstore.ImgStoreError as e:
            print('ERROR', type(e).__name__, e)
        s.disable_decoding()
        from imgstore.apps.synthetic import read_frame_number
        print('RAW', read_frame_number(s.get_image(5)[0]))
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "1 [5]"
    assert lines[1].startswith("ERROR OptionalDependencyError") and "opencv" in lines[1].lower()
    assert "metadata.yaml" in lines[1]
    assert lines[2] == "RAW 5"
