"""``imgstore save``: stores from image files, a video stream, and a camera that is not there."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import numpy as np
from PIL import Image

from cli_helpers import exe, run
from conftest import decode_frame, make_frame

import imgstore


def test_folder_and_glob_of_images_in_natural_order(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(12):  # img_2 must come before img_10
        Image.fromarray(make_frame(i, (48, 64, 3))[:, :, ::-1]).save(folder / f"img_{i}.png")  # files are RGB
    (folder / "notes.txt").write_text("not an image")
    p = run("save", tmp_path / "a", "--source", folder, "--format", "npy", "--fps", "10", "--start-time", "1000")
    assert "saved 12 frames" in p.stdout
    a = imgstore.new_for_filename(str(tmp_path / "a"))
    assert a.frame_numbers.tolist() == list(range(12)) and a.frame_times.tolist() == [1000 + i / 10 for i in range(12)]
    assert [decode_frame(f) for f in a[:]] == list(range(12))
    assert np.array_equal(a[3], make_frame(3, (48, 64, 3)))  # BGR, as stores hold colour
    run("save", tmp_path / "b", "--source", str(folder / "img_1*.png"), "--format", "png", "--gray", "-q",
        "--metadata", "genotype=CS", "--metadata", "fly=3")
    b = imgstore.new_for_filename(str(tmp_path / "b"))
    assert [decode_frame(f) for f in b[:]] == [1, 10, 11] and b.image_shape == (48, 64)
    assert b.user_metadata == {"genotype": "CS", "fly": 3}


def test_sixteen_bit_tiffs(tmp_path):
    import tifffile

    for i in range(3):
        tifffile.imwrite(tmp_path / f"f{i:03d}.tif", make_frame(i, (48, 64), dtype=np.uint16))
    run("save", tmp_path / "s", "--source", str(tmp_path / "*.tif"), "--format", "npy", "-q")
    s = imgstore.new_for_filename(str(tmp_path / "s"))
    assert s.dtype == np.uint16 and [decode_frame(f) for f in s[:]] == [0, 1, 2]


def test_sources_that_are_not_there(tmp_path):
    for source, what in (("/dev/video97", "no such camera"), ("97", "no such camera"),
                         (str(tmp_path / "none.mp4"), "no such file"), (str(tmp_path / "*.png"), "no image files")):
        p = run("save", tmp_path / "x", "--source", source, check=False)
        assert p.returncode == 1 and what in p.stderr and p.stderr.count("\n") == 1, p.stderr
    assert not os.path.exists(tmp_path / "x")


def _write_y4m(fifo, stop: threading.Event, shape=(48, 64)):
    """A raw YUV video stream, one frame every 10 ms, until *stop* (as a camera would deliver frames)."""
    h, w = shape
    with open(fifo, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F100:1 Ip A1:1 C420jpeg\n".encode())
        chroma = np.full((h // 2) * (w // 2) * 2, 128, np.uint8).tobytes()
        i = 0
        try:
            while not stop.is_set() and i < 3000:
                f.write(b"FRAME\n" + make_frame(i, shape).tobytes() + chroma)
                f.flush()
                i += 1
                time.sleep(0.01)
        except BrokenPipeError:
            pass


def test_ctrl_c_closes_the_store_cleanly(tmp_path):
    fifo = tmp_path / "camera.y4m"
    os.mkfifo(fifo)
    dest = tmp_path / "rec"
    p = subprocess.Popen([exe(), "save", str(dest), "--source", str(fifo), "--format", "mjpeg/avi", "--gray",
                          "--chunksize", "50"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stop = threading.Event()
    writer = threading.Thread(target=_write_y4m, args=(fifo, stop), daemon=True)
    writer.start()
    t0 = time.monotonic()
    while not (dest / "000001.npz").exists() and time.monotonic() - t0 < 60:
        time.sleep(0.02)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    stop.set()
    writer.join(timeout=10)
    assert p.returncode == 0, err
    assert "(stopped)" in out
    s = imgstore.new_for_filename(str(dest))
    n = s.frame_count
    assert n >= 100 and f"saved {n} frames" in out
    assert [decode_frame(f) for f in s[:]] == list(range(n))
    assert not any(f.endswith((".lock", ".frames")) for f in os.listdir(dest))
    assert s.frame_times[-1] > s.frame_times[0]
