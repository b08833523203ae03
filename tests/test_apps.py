"""The command-line tools, run as real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import av
import numpy as np
import pytest

import imgstore
from imgstore.apps.synthetic import make_frame, read_frame_number

BIN = os.path.dirname(sys.executable)


def run(tool, *args, check=True):
    exe = os.path.join(BIN, tool)
    if not os.path.exists(exe):
        pytest.skip(f"{tool} is not installed next to {sys.executable}")
    p = subprocess.run([exe, *args], capture_output=True, text=True, timeout=300)
    if check and p.returncode != 0:
        raise AssertionError(f"{tool} {args} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p


def test_demo_writes_reads_and_checks_every_frame(tmp_path):
    d = str(tmp_path / "demo")
    p = run("imgstore-demo", "--dir", d, "--frames", "60", "--format", "png", "--shape", "96x128")
    assert "wrong: 0" in p.stdout and "frame_count     60" in p.stdout
    s = imgstore.new_for_filename(d)
    assert s.frame_count == 60 and read_frame_number(s[59]) == 59
    assert s.user_metadata["genotype"] == "demo"


def test_info_json(tmp_path):
    d = str(tmp_path / "s")
    with imgstore.new_for_format("npy", basedir=d, imgshape=(48, 64), imgdtype=np.uint8, chunksize=4,
                                 metadata={"genotype": "CS"}) as s:
        for i in range(10):
            s.add_image(make_frame(i, (48, 64)), 100 + i, 10.0 + i / 50)
    info = json.loads(run("imgstore-info", d, "--json").stdout)
    assert info["frame_count"] == 10 and info["frame_min"] == 100 and info["frame_max"] == 109
    assert info["chunks"] == 3 and info["user_metadata"] == {"genotype": "CS"}
    assert abs(info["median_fps"] - 50) < 1e-6
    bad = run("imgstore-info", str(tmp_path / "nope"), check=False)
    assert bad.returncode == 1 and "nope" in bad.stderr  # a failure (2 is bad usage)


def test_selftest_command():
    p = run("imgstore-test", "--format", "npy", "--format", "mjpeg/avi")
    assert "4 passed, 0 failed" in p.stdout


def test_save_converts_a_video_file(tmp_path):
    src = str(tmp_path / "in.mp4")
    with av.open(src, "w") as c:
        st = c.add_stream("libx264", rate=25)
        st.width, st.height, st.pix_fmt = 128, 96, "yuv420p"
        st.codec_context.options = {"crf": "10"}
        for i in range(20):
            vf = av.VideoFrame.from_ndarray(make_frame(i, (96, 128, 3)), format="bgr24")
            vf.pts = i
            for pkt in st.encode(vf):
                c.mux(pkt)
        for pkt in st.encode():
            c.mux(pkt)
    dest = str(tmp_path / "out")
    p = run("imgstore-save", dest, "--source", src, "--format", "npy", "--gray")
    assert "saved 20 frames" in p.stdout
    s = imgstore.new_for_filename(dest)
    assert s.frame_count == 20 and s.image_shape == (96, 128)
    assert [read_frame_number(f) for f in s[:]] == list(range(20))
    assert s.duration == pytest.approx(19 / 25)


def test_view_export_png_with_statusbar(tmp_path):
    from PIL import Image

    d = str(tmp_path / "s")
    with imgstore.new_for_format("npy", basedir=d, imgshape=(48, 64), imgdtype=np.uint8, chunksize=4) as s:
        for i in range(6):
            s.add_image(make_frame(40 + i, (48, 64)), 40 + i, 1.7e9 + i)
    out = str(tmp_path / "frame.png")
    run("imgstore-view", d, "--export", out, "--frame-index", "3")
    img = np.asarray(Image.open(out))
    assert img.shape[0] > 48 and img.shape[1] == 64  # the frame plus a status bar below it
    assert read_frame_number(img[:48, :, ::-1].copy()) == 43
    assert img[48:].max() > 200  # white status text was drawn


def test_player_steps_seeks_and_pauses(tmp_path):
    from imgstore.apps.viewer import Player

    d = str(tmp_path / "s")
    with imgstore.new_for_format("png", basedir=d, imgshape=(48, 64), imgdtype=np.uint8, chunksize=3) as s:
        for i in range(7):
            s.add_image(make_frame(10 + i, (48, 64)), 10 + i, 1.7e9 + i)
    p = Player(imgstore.new_for_filename(d))
    p.seek(0)
    assert read_frame_number(p.frame()[:48]) == 10 and "#10" in p.status()
    assert p.step(1) and p.step(1) and read_frame_number(p.frame()[:48]) == 12
    assert p.step(-2) and p.index == 0
    p.seek(6)
    assert not p.step(1) and p.index == 6 and "(7/7)" in p.status()
    p.toggle()
    assert "[paused]" in p.status()


@pytest.fixture
def xvfb_display():
    import shutil
    import time

    exe = shutil.which("Xvfb")
    if exe is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb)")
    disp = ":%d" % (90 + os.getpid() % 100)
    proc = subprocess.Popen([exe, disp, "-screen", "0", "640x480x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.8)
    yield disp
    proc.kill()
    proc.wait()


def test_viewer_window_runs_under_xvfb(tmp_path, xvfb_display):
    d = str(tmp_path / "s")
    with imgstore.new_for_format("npy", basedir=d, imgshape=(48, 64), imgdtype=np.uint8, chunksize=3) as s:
        for i in range(20):
            s.add_image(make_frame(i, (48, 64)), i, 1.7e9 + i / 30)
    env = dict(os.environ, DISPLAY=xvfb_display)
    exe = os.path.join(BIN, "imgstore-view")
    p = subprocess.run([exe, d, "--fps", "200", "--seconds", "1.5"], env=env, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
