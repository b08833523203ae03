"""Behaviour beyond the original: array view, locking, refresh, overwrite protection, error messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import imgstore
from imgstore.apps.synthetic import make_frame, read_frame_number
from imgstore.errors import StoreExistsError, StoreLockedError

SHAPE = (48, 64)


def write_store(path, fmt="npy", numbers=range(20), chunksize=7, shape=SHAPE, **kw):
    with imgstore.new_for_format(fmt, basedir=str(path), imgshape=shape, imgdtype=np.uint8,
                                 chunksize=chunksize, **kw) as s:
        for i, n in enumerate(numbers):
            s.add_image(make_frame(n, shape), n, 1000.0 + i / 30.0)
    return str(path)


def decoded(frames):
    return [read_frame_number(f) for f in frames]


@pytest.mark.parametrize("fmt", ["npy", "png"])
def test_array_view(tmp_path, fmt):
    numbers = [5, 9, 3, 100, 101, 7, 8, 200, 201, 202, 300, 1, 2]
    path = write_store(tmp_path / "s", fmt, numbers, chunksize=4)
    s = imgstore.new_for_filename(path)
    assert len(s) == 13 and s.shape == (13,) + SHAPE and s.dtype == np.uint8
    assert read_frame_number(s[0]) == 5 and read_frame_number(s[-1]) == 2
    assert decoded(s[2:11]) == numbers[2:11]
    assert decoded(s[::-3]) == numbers[::-3]
    assert decoded(s[[12, 0, 5, 5, 4]]) == [2, 5, 7, 7, 101]
    assert decoded(s[np.array([-1, -13])]) == [2, 5]
    mask = np.zeros(13, bool)
    mask[[1, 7]] = True
    assert decoded(s[mask]) == [9, 200]
    assert s[3, :32, :4].shape == (32, 4)
    assert s[0:0].shape == (0,) + SHAPE
    with pytest.raises(IndexError):
        s[13]
    with pytest.raises(IndexError):
        s[[0, 13]]
    assert decoded(s) == numbers
    assert decoded(s.get_series(3, 6)) == numbers[3:6]
    assert s.get_num_samples() == 13 and s.get_image_shape() == SHAPE
    assert s.get_sampling_frequency() == pytest.approx(30.0)
    assert np.allclose(s.get_native_timestamps(1, 3), [1000 + 1 / 30, 1000 + 2 / 30])
    # the array view does not move the sequential reader
    img, (fn, _) = s.get_next_image()
    assert fn == 5 and read_frame_number(img) == 5


def test_second_writer_is_refused_and_stale_lock_is_taken_over(tmp_path):
    path = str(tmp_path / "s")
    w = imgstore.new_for_format("npy", basedir=path, imgshape=SHAPE, imgdtype=np.uint8, chunksize=5)
    w.add_image(make_frame(1, SHAPE), 1, 0.0)
    lock = json.loads(open(os.path.join(path, ".lock")).read())
    assert lock["pid"] == os.getpid()
    with pytest.raises(StoreLockedError) as e:
        imgstore.new_for_format("npy", basedir=path, imgshape=SHAPE, imgdtype=np.uint8, overwrite=True)
    assert "pid %d" % os.getpid() in str(e.value) and ".lock" in str(e.value)
    r = imgstore.new_for_filename(path)
    assert r.is_recording
    w.close()
    assert not os.path.exists(os.path.join(path, ".lock"))
    assert not imgstore.new_for_filename(path).is_recording

    # a lock left by a process that died is stale
    p = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(p.stdout)
    path2 = str(tmp_path / "t")
    os.makedirs(path2)
    with open(os.path.join(path2, ".lock"), "w") as f:
        json.dump({"pid": dead, "host": os.uname().nodename, "started": 0}, f)
    s = imgstore.new_for_format("npy", basedir=path2, imgshape=SHAPE, imgdtype=np.uint8)
    s.close()


def test_existing_store_is_not_overwritten(tmp_path):
    path = write_store(tmp_path / "s")
    with pytest.raises(StoreExistsError) as e:
        imgstore.new_for_format("npy", basedir=path, imgshape=SHAPE, imgdtype=np.uint8)
    assert "metadata.yaml" in str(e.value)
    assert isinstance(e.value, FileExistsError)
    s = imgstore.new_for_filename(path)
    assert s.frame_count == 20 and decoded(s[:3]) == [0, 1, 2]
    assert not os.path.exists(os.path.join(path, ".lock"))
    # explicit overwrite replaces it
    write_store(tmp_path / "s", numbers=[42], overwrite=True)
    s = imgstore.new_for_filename(path)
    assert s.frame_count == 1 and decoded(s[:]) == [42] and s.chunks == [0]


def test_refresh_sees_frames_of_a_live_writer_process(tmp_path):
    path = str(tmp_path / "live")
    code = textwrap.dedent(f"""
        import sys, time, numpy as np, imgstore
        from imgstore.apps.synthetic import make_frame
        s = imgstore.new_for_format('png', basedir={path!r}, imgshape={SHAPE!r}, imgdtype=np.uint8, chunksize=10)
        for i in range(25):
            s.add_image(make_frame(i, {SHAPE!r}), i, float(i))
            if i in (4, 14):
                s.flush()  # every frame added so far is now visible to readers
                print(i, flush=True)
                sys.stdin.readline()
        s.close()
        print('closed', flush=True)
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "4"
        r = imgstore.new_for_filename(path)
        assert r.is_recording
        assert r.frame_count == 5 and decoded(r[:]) == [0, 1, 2, 3, 4]
        p.stdin.write("\n")
        p.stdin.flush()
        assert p.stdout.readline().strip() == "14"
        assert r.refresh() == 10
        assert decoded(r[:]) == list(range(15))
        img, (fn, _) = r.get_image(12)
        assert fn == 12 and read_frame_number(img) == 12
        p.stdin.write("\n")
        p.stdin.flush()
        assert p.stdout.readline().strip() == "closed"
        assert r.refresh() == 10
        assert decoded(r[:]) == list(range(25))
        assert not r.is_recording
    finally:
        p.kill()
        p.wait()


def test_bad_images_are_refused_with_the_store_named(tmp_path):
    path = str(tmp_path / "s")
    s = imgstore.new_for_format("npy", basedir=path, imgshape=SHAPE, imgdtype=np.uint8)
    with pytest.raises(ValueError, match="dtype"):
        s.add_image(np.zeros(SHAPE, np.float32), 0, 0.0)
    with pytest.raises(ValueError, match="shape") as e:
        s.add_image(np.zeros((10, 10), np.uint8), 0, 0.0)
    assert path in str(e.value)
    with pytest.raises(ValueError, match="frame_number"):
        s.add_image(np.zeros(SHAPE, np.uint8), 1.5, 0.0)
    s.add_image(make_frame(3, SHAPE), np.int64(3), np.float32(1.0))
    s.close()
    r = imgstore.new_for_filename(path)
    assert r.frame_count == 1 and read_frame_number(r[0]) == 3


def test_store_opened_for_writing_refuses_reads_clearly(tmp_path):
    s = imgstore.new_for_format("npy", basedir=str(tmp_path / "s"), imgshape=SHAPE, imgdtype=np.uint8)
    with pytest.raises(imgstore.ImgStoreError, match="writing"):
        s.get_next_image()
    s.close()
    with pytest.raises(imgstore.ImgStoreError, match="closed"):
        s.add_image(make_frame(0, SHAPE), 0, 0.0)


def test_writer_errors_surface(tmp_path, monkeypatch):
    path = str(tmp_path / "s")
    s = imgstore.new_for_format("png", basedir=path, imgshape=SHAPE, imgdtype=np.uint8, chunksize=100)
    s.add_image(make_frame(0, SHAPE), 0, 0.0)

    def broken(img):
        raise RuntimeError("encoder exploded")

    fmt = s._writer.fmt
    monkeypatch.setattr(s._writer, "fmt", type(fmt)(fmt.name, fmt.extension, broken, fmt.decode, fmt.lossless,
                                                    fmt.dtypes))
    with pytest.raises(RuntimeError, match="exploded"):
        for i in range(1, 20):
            s.add_image(make_frame(i, SHAPE), i, float(i))
        s.close()


@pytest.mark.parametrize("fmt", ["npy", "h264/mkv"])
def test_a_chunk_finished_in_the_background_reports_failure_and_keeps_its_frames(tmp_path, monkeypatch, fmt):
    # a full chunk is finished (writer closed, .npz written, frame log removed) on a background thread;
    # if that fails, the next flush / add_image / close raises it, and no frame is lost
    import imgstore.stores.chunk_finish as base

    path = str(tmp_path / "s")
    real = base.write_chunk_index

    def disk_full(storage, key, *a, **kw):
        if key.startswith("000000"):  # directory stores: 000000/index
            raise OSError(28, "No space left on device")
        return real(storage, key, *a, **kw)

    monkeypatch.setattr(base, "write_chunk_index", disk_full)
    s = imgstore.new_for_format(fmt, basedir=path, imgshape=SHAPE, imgdtype=np.uint8, chunksize=5)
    for i in range(6):  # chunk 0 fills at the 5th frame and finishes in the background when the 6th comes
        s.add_image(make_frame(i, SHAPE), i, 1000.0 + i / 30)
    with pytest.raises(OSError, match="No space"):
        s.flush()  # waits for it (an add_image finding it failed would raise before taking its frame)
    monkeypatch.setattr(base, "write_chunk_index", real)
    for i in range(6, 12):
        s.add_image(make_frame(i, SHAPE), i, 1000.0 + i / 30)
    s.close()
    names = sorted(os.path.relpath(os.path.join(d, f), path) for d, _, fs in os.walk(path) for f in fs)
    base = [s._layout.index_base(c) for c in range(3)]
    assert base[0] + ".npz" not in names and base[0] + ".frames" in names
    assert base[1] + ".npz" in names and base[2] + ".npz" in names
    r = imgstore.new_for_filename(path)  # chunk 0 from its frame log
    assert r.frame_count == 12
    assert [read_frame_number(r.get_image(i)[0]) for i in range(12)] == list(range(12))


@pytest.mark.parametrize("fmt", ["npy", "h264/mkv"])
def test_close_finishes_the_last_chunk_when_the_one_before_failed(tmp_path, monkeypatch, fmt):
    import time

    import imgstore.stores.chunk_finish as base

    path = str(tmp_path / "s")
    real = base.write_chunk_index

    def slow_disk_full(storage, key, *a, **kw):
        if key.startswith("000000"):
            time.sleep(0.5)  # still finishing when close() comes
            raise OSError(28, "No space left on device")
        return real(storage, key, *a, **kw)

    monkeypatch.setattr(base, "write_chunk_index", slow_disk_full)
    s = imgstore.new_for_format(fmt, basedir=path, imgshape=SHAPE, imgdtype=np.uint8, chunksize=5)
    for i in range(8):
        s.add_image(make_frame(i, SHAPE), i, 1000.0 + i / 30)
    with pytest.raises(OSError, match="No space"):
        s.close()
    assert os.path.exists(os.path.join(path, s._layout.index_base(1) + ".npz"))  # chunk 1 finished anyway
    r = imgstore.new_for_filename(path)
    assert [read_frame_number(r.get_image(i)[0]) for i in range(r.frame_count)] == list(range(8))


def test_close_waits_for_every_chunk(tmp_path):
    path = write_store(tmp_path / "s", "h264/mkv", range(30), chunksize=10)
    names = sorted(os.listdir(path))
    # a full chunk is finished when the next frame comes, or at close: no empty 000003 is left
    assert {"000000.npz", "000001.npz", "000002.npz"} <= set(names) and "000003.npz" not in names
    assert not [n for n in names if n.endswith(".frames")]
    assert imgstore.new_for_filename(path).frame_count == 30


@pytest.mark.parametrize("fmt", ["png", "h264/mkv", "mjpeg/avi"])
def test_reader_process_follows_a_writer_process(tmp_path, fmt):
    """A real writer process records; a real reader process follows it; every frame arrives, none torn."""
    path = str(tmp_path / "live")
    n = 90
    writer = textwrap.dedent(f"""
        import time, numpy as np, imgstore
        from imgstore.apps.synthetic import make_frame
        with imgstore.new_for_format({fmt!r}, basedir={path!r}, imgshape=(96, 128), imgdtype=np.uint8,
                                     chunksize=40) as s:
            print('open', flush=True)
            for i in range({n}):
                s.add_image(make_frame(1000 + i, (96, 128)), 1000 + i, 1.7e9 + i / 30)
                time.sleep(1 / 60)
    """)
    reader = textwrap.dedent(f"""
        import time, imgstore
        from imgstore.apps.synthetic import read_frame_number
        while True:
            try:
                s = imgstore.new_for_filename({path!r})
                break
            except imgstore.ImgStoreError:
                time.sleep(0.05)
        for img, (fn, ft) in s.follow(poll_interval=0.05, timeout=30):
            code = read_frame_number(img)
            print(fn, code, 'live' if s.is_recording else 'done', flush=True)
    """)
    w = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True)
    try:
        assert w.stdout.readline().strip() == "open"
        r = subprocess.run([sys.executable, "-c", reader], capture_output=True, text=True, timeout=120)
        assert w.wait(timeout=60) == 0
    finally:
        w.kill()
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines()]
    assert [int(a) for a, _, _ in rows] == list(range(1000, 1000 + n))  # every frame, in order
    assert all(a == b for a, b, _ in rows)  # pixels match the frame number: nothing torn
    assert any(state == "live" for _, _, state in rows)  # ... and most arrived while recording


def test_open_chunk_readers_are_closed_least_recently_used_first(tmp_path):
    with imgstore.new_for_format("npy", basedir=str(tmp_path / "s"), imgshape=(48, 64), imgdtype=np.uint8,
                                 chunksize=5) as w:
        for i in range(30):
            w.add_image(make_frame(i, (48, 64)), i, 1000.0 + i)
    s = imgstore.new_for_filename(str(tmp_path / "s"))
    assert s._max_open_readers == 4
    for c in (0, 1, 2, 3, 0, 4):  # chunk 0 is used again before chunk 4 needs a place
        img, (fn, _) = s.get_image(5 * c + 2)
        assert read_frame_number(img) == fn == 5 * c + 2
    assert list(s._readers) == [2, 3, 0, 4]  # chunk 1 went, not chunk 0
    s.close()
