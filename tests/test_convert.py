"""``imgstore convert`` and ``imgstore.convert``: frames, numbers, times, extra data and metadata kept."""

from __future__ import annotations

import datetime
import os
import signal
import subprocess
import time
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from cli_helpers import exe, make_store, run
from conftest import REFERENCE_DIR, REPO_ROOT, decode_frame, have_reference_stores

import imgstore
from imgstore.conversion import ConvertError, convert_status


def assert_same_frames(src, dest, indices=None, exact=True):
    """*dest* holds the frames of *src* at *indices* (all by default), in order, with their numbers and times."""
    indices = np.arange(src.frame_count) if indices is None else np.asarray(indices)
    assert dest.frame_count == len(indices)
    assert dest.frame_numbers.tolist() == src.frame_numbers[indices].tolist()
    assert dest.frame_times.tolist() == src.frame_times[indices].tolist()  # exactly, not approximately
    for j, i in enumerate(indices.tolist()):
        img, (fn, t) = dest.get_next_image()
        assert (fn, t) == (src.frame_numbers[i], src.frame_times[i])
        assert decode_frame(img) == fn % 65536
        if exact:
            assert np.array_equal(img, src.get_image(None, frame_index=i)[0]), f"frame index {j}"


def expected_extra(src, indices):
    """The source's extra-data rows of the frames at *indices*, frame_index re-numbered."""
    df = src.get_extra_data()
    pos = {int(i): j for j, i in enumerate(indices)}
    df = df[df["frame_index"].isin(list(pos))].copy()
    df["frame_index"] = [pos[int(i)] for i in df["frame_index"]]
    return df.reset_index(drop=True)


def test_lossless_convert_keeps_everything(tmp_path):
    src = make_store(tmp_path / "src", n=90, fmt="npy", chunksize=25)
    dest_path = tmp_path / "dest"
    p = run("convert", src.filename, dest_path, "--format", "ffv1/mkv", "--chunksize", "20", "--workers", "2")
    assert "90 frames as ffv1/mkv in 5 chunks" in p.stdout
    dest = imgstore.new_for_filename(str(dest_path))
    assert dest.format == "ffv1/mkv" and dest.chunks == [0, 1, 2, 3, 4] and dest.chunksize == 20
    assert_same_frames(src, dest)
    pd.testing.assert_frame_equal(dest.get_extra_data(), src.get_extra_data())
    assert dest.user_metadata == src.user_metadata
    assert dest.created == src.created and dest.uuid != src.uuid
    assert sorted(os.listdir(dest_path)) == sorted(f for f in os.listdir(dest_path) if not f.startswith(".imgstore-c"))


def test_selection_to_lossy_video(tmp_path):
    src = make_store(tmp_path / "src", n=120, fmt="mjpeg/avi", chunksize=40)
    run("convert", src.filename, tmp_path / "d", "--format", "h264/mkv", "--time", "0.5:3.5", "--every", "3", "-q")
    t = src.frame_times - src.frame_times[0]
    want = np.flatnonzero((t >= 0.5) & (t < 3.5))[::3]
    dest = imgstore.new_for_filename(str(tmp_path / "d"))
    assert_same_frames(src, dest, want, exact=False)
    pd.testing.assert_frame_equal(dest.get_extra_data(), expected_extra(src, want))


def test_selection_by_index_number_and_iso_time(tmp_path):
    src = make_store(tmp_path / "src", n=80, fmt="npy", chunksize=30)
    imgstore.convert(src, tmp_path / "a", format="npy", start=5, stop=-5, workers=1)
    assert_same_frames(src, imgstore.new_for_filename(str(tmp_path / "a")), np.arange(5, 75))
    imgstore.convert(src.filename, tmp_path / "b", format="png", frame_numbers=(1008, 1030), workers=1)
    want = np.flatnonzero((src.frame_numbers >= 1008) & (src.frame_numbers < 1030))
    assert_same_frames(src, imgstore.new_for_filename(str(tmp_path / "b")), want)
    # naive ISO datetimes are in the recording's time zone (user metadata: Europe/Vienna)
    tz = ZoneInfo("Europe/Vienna")
    half = 1 / 60  # between two frames: microsecond rounding of a datetime cannot move a bound past one
    a = datetime.datetime.fromtimestamp(src.frame_times[20] - half, tz).replace(tzinfo=None).isoformat()
    b = datetime.datetime.fromtimestamp(src.frame_times[30] - half, tz).replace(tzinfo=None).isoformat()
    run("convert", src.filename, tmp_path / "c", "--format", "npy", "--time", f"{a}:{b}", "-q")
    assert_same_frames(src, imgstore.new_for_filename(str(tmp_path / "c")), np.arange(20, 30))


@pytest.mark.skipif(not have_reference_stores(), reason="reference stores not found")
@pytest.mark.parametrize("name", ["mjpeg_avi_gray", "h264_mkv_color"])
def test_stores_the_original_wrote(tmp_path, name):
    src = imgstore.new_for_filename(str(REFERENCE_DIR / name))
    run("convert", src.filename, tmp_path / "d", "--format", "png", "-q")
    dest = imgstore.new_for_filename(str(tmp_path / "d"))
    assert_same_frames(src, dest)  # png is lossless: the frames as read from the original's store
    pd.testing.assert_frame_equal(dest.get_extra_data(), src.get_extra_data())
    assert dest.user_metadata == src.user_metadata and dest.chunksize == src.chunksize


def _wait_for(path, timeout=60):
    t0 = time.monotonic()
    while not os.path.exists(path):
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{path} did not appear")
        time.sleep(0.02)


def _sigint_default() -> None:
    """A test run started in the background by a shell ignores SIGINT, and so would the command."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_convert_is_valid_and_resumes(tmp_path, sig):
    src = make_store(tmp_path / "src", n=400, fmt="npy", chunksize=100, extra_every=0)
    dest = tmp_path / "d"
    p = subprocess.Popen([exe(), "convert", src.filename, str(dest), "--format", "ffv1/mkv", "--chunksize", "10",
                          "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=_sigint_default)
    _wait_for(dest / "000002.npz")
    p.send_signal(sig)
    out, err = p.communicate(timeout=60)
    assert p.returncode == (1 if sig == signal.SIGINT else -9)
    if sig == signal.SIGINT:
        # CPython's resource tracker may warn that a queue's semaphore it unlinks at exit was unlinked
        # already (a race of its own, when workers are terminated): not our output
        ours = [ln for ln in err.strip().splitlines()
                if "resource_tracker" not in ln and ln.strip() != "warnings.warn('resource_tracker: %r: %s' % (name, e))"]
        assert len(ours) == 1 and "--resume" in ours[0], err
    part = imgstore.new_for_filename(str(dest))  # a valid store of the chunks it finished
    done = part.frame_count
    assert 30 <= done < 400 and done % 10 == 0
    assert_same_frames(src, part, np.arange(done))
    status = convert_status(dest)
    assert status is not None and status[1] == 40 and status[0] * 10 == done
    with pytest.raises(ConvertError, match="--resume"):
        imgstore.convert(src, dest, format="ffv1/mkv")
    run("convert", src.filename, dest, "--resume", "-q")
    assert_same_frames(src, imgstore.new_for_filename(str(dest)))
    assert convert_status(dest) is None and not os.path.exists(dest / ".imgstore-convert")


def test_function_api_resume_and_refusals(tmp_path):
    src = make_store(tmp_path / "src", n=30, fmt="npy", chunksize=10)
    res = imgstore.convert(src, tmp_path / "d", format="npy", every=2, workers=1, chunksize=4)
    assert (res.frames, res.chunks, res.chunks_already_done) == (15, 4, 0)
    seen = []
    with pytest.raises(ConvertError, match="already exists"):
        imgstore.convert(src, tmp_path / "d", format="npy")
    imgstore.convert(src, tmp_path / "d", format="png", overwrite=True, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (30, 30) and imgstore.new_for_filename(str(tmp_path / "d")).format == "png"
    with pytest.raises(ConvertError, match="no interrupted convert"):
        imgstore.convert(src, tmp_path / "d", resume=True)
    with pytest.raises(ConvertError, match="no frames"):
        imgstore.convert(src, tmp_path / "e", format="npy", frame_numbers=(0, 10))
    with pytest.raises(ConvertError, match="cannot write"):
        imgstore.convert(src, tmp_path / "f", format="no-such-format")
    assert not os.path.exists(tmp_path / "f")
    with pytest.raises(ConvertError, match="cannot write"):  # checked before the old store is replaced
        imgstore.convert(src, tmp_path / "d", format="no-such-format", overwrite=True)
    assert imgstore.new_for_filename(str(tmp_path / "d")).frame_count == 30
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "notes.txt").write_text("mine")
    with pytest.raises(ConvertError, match="not an imgstore"):
        imgstore.convert(src, tmp_path / "g", format="npy", overwrite=True)
    assert (tmp_path / "g" / "notes.txt").exists()


ORIGINAL_PYTHON = REPO_ROOT / "bench" / ".envs" / "original" / "bin" / "python"


@pytest.mark.skipif(not ORIGINAL_PYTHON.exists(), reason="the original imgstore is not installed (bench/setup_original.sh)")
def test_the_original_reads_a_converted_store(tmp_path):
    src = make_store(tmp_path / "src", n=40, fmt="npy", chunksize=15)
    run("convert", src.filename, tmp_path / "d", "--format", "mjpeg/avi", "--chunksize", "16", "-q")
    code = ("import sys, imgstore, numpy as np; s = imgstore.new_for_filename(sys.argv[1]); "
            "md = s.get_frame_metadata(); img, (fn, t) = s.get_image(int(md['frame_number'][20])); "
            "print(s.frame_count, [str(n) for n in md['frame_number']] == sys.argv[2].split(','), fn, "
            "len(s.get_extra_data()))")
    out = subprocess.run([str(ORIGINAL_PYTHON), "-c", code, str(tmp_path / "d"),
                          ",".join(map(str, src.frame_numbers.tolist()))], capture_output=True, text=True,
                         timeout=120).stdout.split()
    assert out == ["40", "True", str(src.frame_numbers[20]), str(len(src.get_extra_data()))]
