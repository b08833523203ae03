"""Crash harness: SIGKILL a recording writer at random moments, then check what a reader gets back.

A writer subprocess (``python bench/crash.py writer ...``) records synthetic
frames at a fixed pace: frame *i* carries *i* in a barcode
(:func:`imgstore.apps.synthetic.make_frame`), frame number ``FN0 + 2*i``,
frame time ``T0 + i/fps``, and every ``extra_every``-th frame gets an
``add_extra_data`` record. After each frame (and its extra data) it prints
``i`` on stdout (flushed): the frames it *reported added*. The parent kills
it with SIGKILL once it has reported a chosen number of frames (plus a random
fraction of a frame interval), then opens the store with
``imgstore.new_for_filename`` and reads every frame.

Per kill it reports: store opened; frames read; frames lost (reported added
minus read back); wrong frames (a frame whose barcode, frame_number or
frame_time is not the one written at that position, or one that raised on
read); extra-data records readable, none missing for a reported frame, none
inconsistent. With ``--recover`` it also runs ``imgstore-recover`` on every
crashed store, checks the store reads the same afterwards, that a second run
has nothing to do, and (where ``bench/.envs/original`` exists) that the
ORIGINAL imgstore reads every recovered frame correctly.

Run standalone for a table (``python bench/crash.py --kills 20``); the test
suite imports :func:`run_campaign` with fewer kills (tests/test_crash.py).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
ORIGINAL_PYTHON = os.environ.get("IMGSTORE_ORIGINAL_PYTHON") or os.path.join(HERE, ".envs", "original", "bin",
                                                                                "python")

FORMATS = ("npy", "png", "jpg", "raw", "mjpeg/avi", "avc1/mp4", "h264/mkv", "ffv1/mkv")
#: formats the original imgstore 0.4.0 (OpenCV) can read
ORIGINAL_READS = ("npy", "png", "jpg", "mjpeg/avi", "avc1/mp4", "h264/mkv", "ffv1/mkv")
FN0 = 1000
T0 = 1.7e9
SHAPE = (96, 128)


def frame_number_of(i: int) -> int:
    return FN0 + 2 * i


def frame_time_of(i: int, fps: float) -> float:
    return T0 + i / fps


# ------------------------------------------------------------------ the writer (subprocess)
def writer_main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("fmt")
    ap.add_argument("--chunksize", type=int, required=True)
    ap.add_argument("--fps", type=float, required=True)
    ap.add_argument("--frames", type=int, required=True)
    ap.add_argument("--extra-every", type=int, default=7)
    ap.add_argument("--container-options", default="")
    a = ap.parse_args(argv)
    import numpy as np

    import imgstore
    from imgstore.apps.synthetic import make_frame

    if a.container_options:  # experiments: other muxer options for this video format
        import dataclasses

        from imgstore.codecs import video

        f = video.VIDEO_FORMATS[a.fmt]
        opts = dict(f.container_options)
        for k, v in json.loads(a.container_options).items():
            if v is None:
                opts.pop(k, None)
            else:
                opts[k] = str(v)
        video.VIDEO_FORMATS[a.fmt] = dataclasses.replace(f, container_options=tuple(opts.items()))
    frames = [make_frame(i, SHAPE) for i in range(min(a.frames, 64))]  # the barcode is redrawn below
    s = imgstore.new_for_format(a.fmt, path=a.path, imgshape=SHAPE, imgdtype=np.uint8, chunksize=a.chunksize)
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    t0 = time.monotonic()
    for i in range(a.frames):
        delay = t0 + i / a.fps - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        img = frames[i % len(frames)].copy()
        img[:32, :64] = make_frame(i, (32, 64))[:32, :64]  # barcode of i (rows 0..31, columns 0..63)
        s.add_image(img, frame_number_of(i), frame_time_of(i, a.fps))
        if i % a.extra_every == 0:
            s.add_extra_data(i=i, note="x" * (i % 13), values=[i, i + 0.5])
        out.write(f"{i}\n")
        out.flush()
    s.close()
    out.write("closed\n")
    out.flush()


# ------------------------------------------------------------------ one kill
@dataclass
class KillResult:
    fmt: str
    target: int
    reported: int = 0  # frames the writer reported added
    opened: bool = False
    read: int = 0
    lost: int = 0
    wrong: int = 0
    extra_ok: bool = True
    extra_missing: int = 0
    extra_bad: int = 0
    error: str = ""
    seconds: float = 0.0
    recovered: dict = field(default_factory=dict)


def _writer_cmd(path: str, fmt: str, chunksize: int, fps: float, frames: int, copts: dict | None) -> list[str]:
    cmd = [sys.executable, os.path.abspath(__file__), "writer", path, fmt, "--chunksize", str(chunksize),
           "--fps", str(fps), "--frames", str(frames)]
    if copts:
        cmd += ["--container-options", json.dumps(copts)]
    return cmd


def kill_writer(path: str, fmt: str, *, chunksize: int, fps: float, target: int, delay: float,
                copts: dict | None = None, timeout: float = 60.0) -> int:
    """Run a writer until it has reported *target* frames (0: until the store exists), wait *delay*
    seconds, SIGKILL it; returns how many frames it reported added."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.join(REPO, "src") + os.pathsep + env.get("PYTHONPATH", "")
    p = subprocess.Popen(_writer_cmd(path, fmt, chunksize, fps, target + 10 * chunksize + 100, copts),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines: list[str] = []
    reached = threading.Event()

    def reader():
        for line in p.stdout:
            lines.append(line.strip())
            if (target == 0 and line.startswith("ready")) or (line.strip().isdigit() and int(line) + 1 >= target):
                reached.set()
        reached.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    if not reached.wait(timeout):
        p.kill()
        raise RuntimeError(f"{fmt}: writer did not reach frame {target}")
    if p.poll() is not None:
        err = p.stderr.read()
        raise RuntimeError(f"{fmt}: writer exited early ({p.returncode}): {err[-2000:]}")
    time.sleep(delay)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    t.join()
    p.stderr.close()
    nums = [int(x) for x in lines if x.isdigit()]
    if "closed" in lines:
        raise RuntimeError(f"{fmt}: writer finished before it was killed")
    return max(nums) + 1 if nums else 0


def check_store(path: str, reported: int, fps: float, extra_every: int = 7) -> dict:
    """Open a crashed store and compare every frame with what the writer wrote."""
    import numpy as np

    import imgstore
    from imgstore.apps.synthetic import read_frame_number

    r = {"opened": False, "read": 0, "wrong": 0, "extra_ok": True, "extra_missing": 0, "extra_bad": 0,
         "error": "", "codes": []}
    try:
        s = imgstore.new_for_filename(path)
    except Exception as e:  # noqa: BLE001 - what we measure
        r["error"] = f"open: {type(e).__name__}: {e}"
        return r
    r["opened"] = True
    try:
        n = s.frame_count
        r["read"] = n
        codes = []
        for k in range(n):
            try:
                img, (fn, ft) = s.get_next_image()
                code = read_frame_number(img[:32, :64])
            except Exception as e:  # noqa: BLE001
                r["wrong"] += 1
                r["error"] = r["error"] or f"read {k}: {type(e).__name__}: {e}"
                codes.append(-1)
                continue
            codes.append(code)
            if code != k % 65536 or fn != frame_number_of(k) or ft != frame_time_of(k, fps):
                r["wrong"] += 1
        r["codes"] = codes
        # random access too (seeks, chunk switches)
        rng = np.random.default_rng(n)
        for k in rng.integers(0, n, min(n, 12)) if n else []:
            k = int(k)
            try:
                img, (fn, ft) = s.get_image(frame_number_of(k))
                if read_frame_number(img[:32, :64]) != k % 65536 or ft != frame_time_of(k, fps):
                    r["wrong"] += 1
            except Exception as e:  # noqa: BLE001
                r["wrong"] += 1
                r["error"] = r["error"] or f"get_image {k}: {type(e).__name__}: {e}"
        try:
            df = s.get_extra_data()
            recs = [] if df is None else df.to_dict("records")
            found = set()
            for rec in recs:
                i = int(rec["i"])
                found.add(i)
                if (int(rec["frame_index"]) != i or int(rec["frame_number"]) != frame_number_of(i)
                        or float(rec["frame_time"]) != frame_time_of(i, fps) or rec["values"] != [i, i + 0.5]):
                    r["extra_bad"] += 1
            # every record of a reported frame that survived must be there (a record of a lost frame may
            # be gone with it: e.g. the first frames of a video chunk, whose file is opened at the second
            # frame; a frame can be on disk before the writer added its record and reported it)
            want = {i for i in range(min(n, reported)) if i % extra_every == 0}
            r["extra_missing"] = len(want - found)
        except Exception as e:  # noqa: BLE001
            r["extra_ok"] = False
            r["error"] = r["error"] or f"extra data: {type(e).__name__}: {e}"
    finally:
        s.close()
    return r


def run_recover(path: str, *args: str) -> subprocess.CompletedProcess:
    """The ``imgstore-recover`` command on *path*."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.join(REPO, "src") + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "imgstore.apps.recover", path, *args], capture_output=True,
                          text=True, env=env, timeout=300)


def one_kill(workdir: str, fmt: str, target: int, delay: float, *, chunksize: int, fps: float,
             copts: dict | None = None, recover: bool = False, name: str | None = None) -> KillResult:
    t = time.monotonic()
    path = os.path.join(workdir, name or f"{fmt.replace('/', '_')}-{target}")
    res = KillResult(fmt, target)
    res.reported = kill_writer(path, fmt, chunksize=chunksize, fps=fps, target=target, delay=delay, copts=copts)
    c = check_store(path, res.reported, fps)
    codes = c.pop("codes")
    for k, v in c.items():
        setattr(res, k, v)
    res.lost = res.reported - res.read
    if recover and res.opened:
        res.recovered = recover_and_check(path, res, fps, codes)
    res.seconds = time.monotonic() - t
    return res


def recover_and_check(path: str, res: KillResult, fps: float, codes_before: list[int]) -> dict:
    """Recover the store (in this process: :func:`imgstore.apps.recover.recover_store`, what the
    ``imgstore-recover`` command runs), run it again, and read the store again."""
    from imgstore.apps.recover import recover_store

    out: dict = {}
    try:
        rec = recover_store(path)
    except Exception as e:  # noqa: BLE001 - what we measure
        out["rc"] = 1
        out["error"] = f"{type(e).__name__}: {e}"
        return out
    out["rc"] = 0
    out["actions"] = rec.actions
    out["warnings"] = rec.warnings
    out["idempotent"] = not recover_store(path).actions
    c = check_store(path, res.reported, fps)
    out["read"] = c["read"]
    out["wrong"] = c["wrong"]
    # the same frames as before recovery (recovery may only drop frames that do not decode)
    out["same"] = c["opened"] and c["codes"] == codes_before[: len(c["codes"])] and c["read"] <= res.read
    out["extra_ok"] = c["extra_ok"] and not c["extra_bad"] and not c["extra_missing"]
    out["leftovers"] = sorted(f for f in os.listdir(path) if f.endswith(".frames") or f.startswith(".tmp")
                              or f == ".lock")
    return out


# ------------------------------------------------------------------ the original reads recovered stores
ORIGINAL_SCRIPT = r'''
import json, sys
import numpy as np
import imgstore
def decode(img):
    img = np.asarray(img)
    v = 0
    for k in range(16):
        v |= int(float(np.mean(img[0:32, 4 * k + 1:4 * k + 3])) > 127) << (15 - k)
    return v
out = {}
for path, fps in json.loads(sys.stdin.read()):
    r = {"frames": 0, "wrong": 0, "seek_wrong": 0, "error": ""}
    try:
        s = imgstore.new_for_filename(path)
        n = s.frame_count
        r["frames"] = n
        for k in range(n):
            img, (fn, ft) = s.get_next_image()
            if decode(img) != k or fn != 1000 + 2 * k or ft != 1.7e9 + k / fps:
                r["wrong"] += 1
        rng = np.random.default_rng(n)
        for k in (rng.integers(0, n, min(n, 10)) if n else []):
            k = int(k)
            img, (fn, ft) = s.get_image(1000 + 2 * k)
            if decode(img) != k or fn != 1000 + 2 * k:
                r["seek_wrong"] += 1
        s.close()
    except Exception as e:
        import traceback
        r["error"] = "%s: %s" % (type(e).__name__, e)
    out[path] = r
print(json.dumps(out))
'''


def original_reads(stores: list[tuple[str, float]]) -> dict | None:
    """What the ORIGINAL imgstore reads from each store (None if it is not installed here)."""
    if not os.path.exists(ORIGINAL_PYTHON):
        return None
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    p = subprocess.run([ORIGINAL_PYTHON, "-c", ORIGINAL_SCRIPT], input=json.dumps(stores), capture_output=True,
                       text=True, env=env, timeout=600, cwd=tempfile.gettempdir())
    if p.returncode != 0:
        raise RuntimeError(f"original imgstore failed: {p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ a campaign
def plan(kills_per_format: int, chunksize: int, fps: float, max_chunks: float, seed: int,
         formats=FORMATS) -> list[tuple[str, int, float]]:
    """(format, target frames, delay) per kill: half uniform over the run, half just around a chunk end."""
    import numpy as np

    rng = np.random.default_rng(seed)
    top = int(max_chunks * chunksize)
    out = []
    for fmt in formats:
        for k in range(kills_per_format):
            if k == 0:
                target = 0  # right after the store was created
            elif k % 2:
                target = int(rng.integers(1, top + 1))
            else:
                target = int(rng.integers(1, max(2, int(max_chunks)) + 1)) * chunksize + int(rng.integers(-2, 2))
            out.append((fmt, max(0, target), float(rng.uniform(0, 1.5 / fps))))
    return out


def run_campaign(workdir: str, *, kills_per_format: int, chunksize: int, fps: float, max_chunks: float,
                 seed: int = 0, formats=FORMATS, copts: dict | None = None, recover: bool = False,
                 jobs: int = 2, check_original: bool = False) -> tuple[list[KillResult], dict | None]:
    kills = plan(kills_per_format, chunksize, fps, max_chunks, seed, formats)
    with ThreadPoolExecutor(jobs) as ex:
        futs = [ex.submit(one_kill, workdir, fmt, target, delay, chunksize=chunksize, fps=fps,
                          copts=copts.get(fmt) if copts else None, recover=recover, name=f"k{n:03d}-"
                          + fmt.replace("/", "_")) for n, (fmt, target, delay) in enumerate(kills)]
        results = [f.result() for f in futs]
    orig = None
    if recover and check_original:
        stores = [(os.path.join(workdir, f"k{n:03d}-" + r.fmt.replace("/", "_")), fps)
                  for n, r in enumerate(results) if r.fmt in ORIGINAL_READS and r.recovered.get("rc") == 0]
        orig = original_reads(stores)
        if orig is not None:
            for n, r in enumerate(results):
                o = orig.get(os.path.join(workdir, f"k{n:03d}-" + r.fmt.replace("/", "_")))
                if o is not None:
                    r.recovered["original"] = o
    return results, orig


def summarize(results: list[KillResult]) -> list[dict]:
    rows = []
    for fmt in dict.fromkeys(r.fmt for r in results):
        rs = [r for r in results if r.fmt == fmt]
        lost = [r.lost for r in rs if r.opened]
        row = {
            "format": fmt, "kills": len(rs), "unopenable": sum(not r.opened for r in rs),
            "lost_max": max(lost) if lost else None,
            "lost_mean": round(sum(lost) / len(lost), 1) if lost else None,
            "wrong": sum(r.wrong for r in rs),
            "extra_bad": sum((not r.extra_ok) + r.extra_bad + r.extra_missing for r in rs),
        }
        rec = [r.recovered for r in rs if r.recovered]
        if rec:
            row["recover_fail"] = sum(x.get("rc") != 0 or not x.get("same") or x.get("wrong") or
                                      not x.get("idempotent") or bool(x.get("leftovers")) for x in rec)
            orig = [x["original"] for x in rec if "original" in x]
            if orig:
                row["orig_frames"] = sum(o["frames"] for o in orig)
                row["orig_wrong"] = sum(o["wrong"] + o["seek_wrong"] for o in orig)
                row["orig_unopenable"] = sum(bool(o["error"]) for o in orig)
        rows.append(row)
    return rows


def print_table(rows: list[dict]) -> None:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join("" if r.get(c) is None else str(r.get(c)) for c in cols) + " |")


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "writer":
        writer_main(argv[1:])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=16, help="kills per format")
    ap.add_argument("--chunksize", type=int, default=100)
    ap.add_argument("--fps", type=float, default=30)
    ap.add_argument("--max-chunks", type=float, default=3.5, help="kill within this many chunks")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--formats", default=",".join(FORMATS))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--recover", action="store_true", help="also run imgstore-recover and the original reader")
    ap.add_argument("--container-options", default="", help="JSON {format: {option: value}} (experiments)")
    ap.add_argument("--json", help="write every kill's result here")
    ap.add_argument("--keep", help="keep the stores in this folder")
    a = ap.parse_args(argv)
    formats = tuple(a.formats.split(","))
    copts = json.loads(a.container_options) if a.container_options else None
    work = a.keep or tempfile.mkdtemp(prefix="imgstore-crash-")
    os.makedirs(work, exist_ok=True)
    t = time.monotonic()
    results, _ = run_campaign(work, kills_per_format=a.kills, chunksize=a.chunksize, fps=a.fps,
                              max_chunks=a.max_chunks, seed=a.seed, formats=formats, copts=copts,
                              recover=a.recover, jobs=a.jobs, check_original=a.recover)
    print(f"{len(results)} kills, chunksize {a.chunksize}, {a.fps:g} fps, {time.monotonic() - t:.0f} s\n")
    print_table(summarize(results))
    bad = [r for r in results if not r.opened or r.wrong or r.error]
    for r in bad[:20]:
        print(f"  {r.fmt} target {r.target}: {r.error}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump([asdict(r) for r in results], f, indent=1)
    if not a.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
