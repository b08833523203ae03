"""A writer killed with SIGKILL at any moment must leave a store that opens and reads back exactly.

The campaign (``bench/crash.py``, run here with fewer kills) records paced synthetic frames in a
subprocess, SIGKILLs it at seeded random moments across every chunk phase of 8 formats, reopens
the store and compares every frame (barcode pixels, frame_number, frame_time) and every extra-data
record with what was written; then ``imgstore-recover`` turns each store back into the original's
layout, and the ORIGINAL imgstore (``bench/.envs/original``, skipped where missing) must read every
recovered frame. The goals asserted are behaviour, not timing: no store fails to open, no frame
comes back wrong, at most 30 frames (1 s at 30 fps) lost of those the writer reported added.
"""
from __future__ import annotations

import importlib.util
import json
import os
import sys

import numpy as np
import pytest

import imgstore
from imgstore.apps.recover import WriterAlive, recover_store
from imgstore.apps.synthetic import make_frame, read_frame_number

from conftest import REPO_ROOT

pytestmark = pytest.mark.beyond_original

MAX_LOST = 30  # frames: 1 s at 30 fps


def _load_harness():
    spec = importlib.util.spec_from_file_location("imgstore_crash_bench", REPO_ROOT / "bench" / "crash.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


crash = _load_harness()


# ------------------------------------------------------------------ the campaign
@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    work = str(tmp_path_factory.mktemp("crash"))
    # 7 kills x 8 formats: 50 fps, 40-frame chunks (0.8 s: a complete 0.5 s fragment/cluster, then
    # the chunk switch), kills within 2.5 chunks, half of them just around a chunk end
    results, orig = crash.run_campaign(work, kills_per_format=7, chunksize=40, fps=50.0, max_chunks=2.5, seed=7,
                                       recover=True, check_original=True, jobs=2)
    for row in crash.summarize(results):
        print(row)
    return work, results, orig


def test_every_killed_store_opens_and_reads_back_exactly(campaign):
    _, results, _ = campaign
    assert len(results) >= 50
    assert {r.fmt for r in results} == set(crash.FORMATS)
    bad = [(r.fmt, r.target, r.error) for r in results if not r.opened or r.wrong or r.error]
    assert not bad
    # (-1: the frame being added reached the disk, the writer died before it reported it)
    lost = {(r.fmt, r.target): r.lost for r in results if r.lost > MAX_LOST or r.lost < -1}
    assert not lost, f"frames lost beyond {MAX_LOST} (or more read than reported): {lost}"


def test_extra_data_of_killed_writers_is_readable(campaign):
    _, results, _ = campaign
    assert all(r.extra_ok for r in results)
    assert sum(r.extra_bad for r in results) == 0
    assert sum(r.extra_missing for r in results) == 0  # every surviving frame keeps its records


def test_recovery_makes_normal_stores(campaign):
    work, results, _ = campaign
    for r in results:
        rec = r.recovered
        assert rec.get("rc") == 0, rec.get("error")
        assert rec["idempotent"], rec["actions"]
        assert rec["same"] and rec["wrong"] == 0 and rec["extra_ok"], (r.fmt, r.target, rec)
        assert not rec["leftovers"], rec["leftovers"]
    # the original's layout: every chunk has its .npz, extra-data arrays are complete JSON
    for name in os.listdir(work):
        store = os.path.join(work, name)
        for dirpath, _, files in os.walk(store):
            for f in files:
                assert not f.endswith(".frames") and not f.startswith(".tmp"), os.path.join(dirpath, f)
                if f.endswith(".json"):
                    with open(os.path.join(dirpath, f)) as fh:
                        assert isinstance(json.load(fh), list)


def test_the_original_reads_every_recovered_frame(campaign):
    _, results, orig = campaign
    if orig is None:
        pytest.skip("the original imgstore is not installed in bench/.envs/original")
    checked = 0
    for r in results:
        o = r.recovered.get("original")
        if o is None:
            continue
        if r.recovered["read"] == 0 and r.fmt.endswith("/mkv"):
            # nothing was recovered, and a Matroska file without frames does not open in FFmpeg: the
            # original cannot open a video store whose chunk 0 does not open (nor can it its own)
            continue
        assert not o["error"], (r.fmt, r.target, o)
        assert o["frames"] == r.recovered["read"]
        assert o["wrong"] == 0 and o["seek_wrong"] == 0, (r.fmt, r.target, o)
        checked += 1
    assert checked >= 30


# ------------------------------------------------------------------ a crashed store, step by step
def _crashed_store(tmp_path, fmt, n_frames, chunksize=40, fps=50.0, name="s"):
    """A store whose writer was SIGKILLed after reporting *n_frames* frames; returns (path, reported)."""
    path = str(tmp_path / name)
    reported = crash.kill_writer(path, fmt, chunksize=chunksize, fps=fps, target=n_frames, delay=0.0)
    return path, reported


def _read_all(path, fps=50.0):
    with imgstore.new_for_filename(path) as s:
        out = []
        for k in range(s.frame_count):
            img, (fn, ft) = s.get_next_image()
            assert read_frame_number(img[:32, :64]) == k
            assert fn == crash.frame_number_of(k) and ft == crash.frame_time_of(k, fps)
            out.append(k)
        return s.frame_count


def _truncate_last_chunk_data(path, fmt):
    """What a power cut can leave: the chunk's log (fsynced) lists frames its data lost."""
    files = sorted(os.listdir(path))
    if fmt in ("npy", "png"):
        chunk = max(f for f in files if f.isdigit())
        frames = sorted(f for f in os.listdir(os.path.join(path, chunk)) if f[0].isdigit())
        for f in frames[-5:]:
            os.unlink(os.path.join(path, chunk, f))
        return 5
    if fmt == "raw":
        chunk = max(f for f in files if f.isdigit())
        fp = os.path.join(path, chunk, "frames.npy")
        os.truncate(fp, os.path.getsize(fp) - 5 * 96 * 128 - 100)  # 5 frames and a torn one
        return 6
    ext = "." + fmt.split("/")[1]
    video = os.path.join(path, max(f for f in files if f.endswith(ext)))
    size = os.path.getsize(video)
    os.truncate(video, size - size // 3)
    return 1


@pytest.mark.parametrize("fmt", ["h264/mkv", "avc1/mp4", "mjpeg/avi", "npy", "raw"])
def test_log_longer_than_the_chunk_data_is_capped_never_wrong(tmp_path, fmt):
    path, reported = _crashed_store(tmp_path, fmt, 70)  # chunk 1 is being written
    n_before = _read_all(path)
    assert reported - n_before <= MAX_LOST
    min_cut = _truncate_last_chunk_data(path, fmt)
    for f in os.listdir(path):
        if f.endswith(".pktidx.npz"):
            os.unlink(os.path.join(path, f))
    n_after = _read_all(path)  # opens, every frame exact
    assert n_after <= n_before - min_cut
    assert n_after >= 40  # chunk 0 is complete
    with imgstore.new_for_filename(path) as s:
        assert s.frame_count == n_after
        with pytest.raises(Exception):
            s.get_image(None, frame_index=n_after)
        img, (fn, _) = s.get_image(crash.frame_number_of(n_after - 1))
        assert read_frame_number(img[:32, :64]) == n_after - 1
    rec = recover_store(path)
    assert any("npz: written from the frame log" in a for a in rec.actions)
    assert _read_all(path) == n_after
    assert not recover_store(path).actions


def test_stale_lock_does_not_block_readers_and_live_writer_blocks_recovery(tmp_path):
    path, reported = _crashed_store(tmp_path, "h264/mkv", 30)
    lock = os.path.join(path, ".lock")
    assert os.path.exists(lock)  # left by the killed writer
    with imgstore.new_for_filename(path) as s:
        assert not s.is_recording
        assert s.frame_count >= reported - MAX_LOST
    # a lock of a live process: readers still read, recovery refuses
    with open(lock, "w") as f:
        json.dump({"pid": os.getpid(), "host": __import__("socket").gethostname(), "started": 0}, f)
    with imgstore.new_for_filename(path) as s:
        assert s.is_recording
        assert s.frame_count >= reported - MAX_LOST
    with pytest.raises(WriterAlive):
        recover_store(path)
    p = crash.run_recover(path)
    assert p.returncode == 2 and "refused" in p.stderr
    assert os.path.exists(os.path.join(path, "000000.frames"))


def test_unterminated_extra_data_with_a_torn_record(tmp_path):
    path, reported = _crashed_store(tmp_path, "npy", 30)
    xfile = os.path.join(path, "000000", "index.extra.json")
    with open(xfile, "rb") as f:
        data = f.read()
    assert not data.rstrip().endswith(b"]")  # the writer never closed it
    with open(xfile, "ab") as f:
        f.write(b', {"i": 99, "note": "tor')  # a record cut short
    want = [i for i in range(reported) if i % 7 == 0]
    with imgstore.new_for_filename(path) as s:
        got = list(s.get_extra_data()["i"])
        # (the record of a frame added but not yet reported when the writer died may be there too)
        assert got[: len(want)] == want and len(got) <= len(want) + 1
    rec = recover_store(path)
    assert any("JSON array terminated" in a for a in rec.actions)
    with open(xfile) as f:
        assert [r["i"] for r in json.load(f)] == got


def test_recover_command_dry_run_then_run(tmp_path):
    path, reported = _crashed_store(tmp_path, "avc1/mp4", 75)

    def snapshot():
        return {f: (os.path.getsize(os.path.join(path, f)), os.path.getmtime(os.path.join(path, f)))
                for f in os.listdir(path)}

    before = snapshot()
    p = crash.run_recover(path, "--dry-run")
    assert p.returncode == 0, p.stderr
    assert "would: " in p.stdout and "remuxed" in p.stdout
    assert snapshot() == before
    n = _read_all(path)
    p = crash.run_recover(path)
    assert p.returncode == 0, p.stderr
    assert "written from the frame log" in p.stdout and "stale lock removed" in p.stdout
    assert not any(f.endswith(".frames") for f in os.listdir(path))
    assert _read_all(path) == n
    p = crash.run_recover(path)
    assert p.returncode == 0 and "nothing to do" in p.stdout
    # a plain MP4 again: moov, no fragments
    from imgstore.codecs.video_index import mp4_is_fragmented
    from imgstore.storage import LocalStorage

    st = LocalStorage(path)
    assert not any(mp4_is_fragmented(st, f) for f in os.listdir(path) if f.endswith(".mp4"))


def test_chunks_left_fragmented_are_read_and_remuxed(tmp_path, monkeypatch):
    """Complete chunks whose MP4 is still fragmented (the remux at close failed or was skipped), and the
    temporary file of an interrupted remux: read exactly as they are, made plain MP4 by recovery."""
    from imgstore.codecs.video import writer

    monkeypatch.setattr(writer, "remux_video_chunk", lambda *a, **k: None)  # close() leaves the fMP4
    path = str(tmp_path / "s")
    s = imgstore.new_for_format("avc1/mp4", path=path, imgshape=(96, 128), imgdtype=np.uint8, chunksize=40)
    for i in range(100):
        s.add_image(make_frame(i), crash.frame_number_of(i), crash.frame_time_of(i, 50.0))
    s.close()
    monkeypatch.undo()
    from imgstore.codecs.video_index import mp4_is_fragmented
    from imgstore.storage import LocalStorage

    st = LocalStorage(path)
    assert all(mp4_is_fragmented(st, f"{c:06d}.mp4") for c in range(3))
    # a leftover temporary file of an interrupted remux
    with open(os.path.join(path, ".tmp-remux-abc.part"), "wb") as f:
        f.write(b"\0" * 100)
    assert _read_all(path) == 100  # fragmented MP4 reads exactly
    rec = recover_store(path)
    assert sum("fragmented MP4 remuxed" in a for a in rec.actions) == 3
    assert any(".tmp-remux-abc.part: removed" in a for a in rec.actions)
    assert not any(mp4_is_fragmented(st, f"{c:06d}.mp4") for c in range(3))
    assert _read_all(path) == 100
    orig = crash.original_reads([(path, 50.0)])
    if orig is not None:
        assert orig[path] == {"frames": 100, "wrong": 0, "seek_wrong": 0, "error": ""}


def test_remux_keeps_every_frame(tmp_path):
    from imgstore.codecs.video import VideoChunkReader, VideoChunkWriter, remux_video_chunk
    from imgstore.storage import LocalStorage

    st = LocalStorage(str(tmp_path))
    w = VideoChunkWriter(st, "a.mp4", "avc1/mp4", (96, 128), fps=30, gop=10)
    for i in range(120):
        w.write(make_frame(i))
    w.flush()
    assert 90 <= w.durable_count() < 120  # ~0.5 s (15 frames) may still be in the muxer
    w.close()
    with VideoChunkReader(st, "a.mp4", color=False) as r:
        assert len(r) == 120
        assert [read_frame_number(r.read(int(p))) for p in np.random.default_rng(1).permutation(120)[:30]] == \
            [int(p) for p in np.random.default_rng(1).permutation(120)[:30]]
    # remux is idempotent, keeps the time stamps, and can cut
    pts = VideoChunkReader(st, "a.mp4", color=False).pts.copy()
    assert remux_video_chunk(st, "a.mp4") == 120
    with VideoChunkReader(st, "a.mp4", color=False) as r:
        assert np.array_equal(r.pts, pts)
    assert remux_video_chunk(st, "a.mp4", max_frames=50) == 50
    with VideoChunkReader(st, "a.mp4", color=False) as r:
        assert len(r) == 50 and read_frame_number(r.read(49)) == 49
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp")]
    assert oct(os.stat(tmp_path / "a.mp4").st_mode & 0o777) != oct(0o600)


def test_recovery_indexes_only_frames_that_decode(tmp_path):
    """Frame files present but damaged (what a power cut can leave): readers raise rather than return
    them; recovery indexes the chunk up to the first frame that does not decode."""
    path, reported = _crashed_store(tmp_path, "png", 60)
    chunk = os.path.join(path, "000001")
    frames = sorted(f for f in os.listdir(chunk) if f.endswith(".png"))
    with open(os.path.join(path, "000001", "index.frames"), "rb") as f:
        logged = len(f.read()) // 16
    assert logged >= 15
    bad = frames[logged - 4]
    with open(os.path.join(chunk, bad), "r+b") as f:
        f.write(b"\0" * 64)
    with imgstore.new_for_filename(path) as s:
        with pytest.raises(imgstore.CorruptChunkError):
            s.get_image(None, frame_index=40 + logged - 4)
    rec = recover_store(path)
    assert any(f"({logged - 4} frames of {logged} logged)" in a for a in rec.actions), rec.actions
    assert _read_all(path) == 40 + logged - 4
