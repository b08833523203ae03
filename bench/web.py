#!/usr/bin/env python
"""Browser viewer (``imgstore serve``): seek latency and playback rate at the HTTP API and in Chromium,
and extra-data plot requests over 10^7 samples.

    flock /tmp/imgstore-bench.lock .venv/bin/python bench/web.py [--frames 900] [--seeks 200] [--dir DIR]

Stores (written once into --dir, default a folder in /tmp; the benchmark content of
``workload.py``: textured background, moving blobs, noise; 30 fps, chunks of 300):

* 1280x1024 gray ``h264/mkv``, with a Motif ``000000.extra_data.h5`` of 10^7 samples;
* 640x480 BGR ``h264/mkv``.

Each phase runs against a freshly started server (``python -m imgstore.apps.web STORE --port 0``):

* **API seek**: GET ``/frame?index=i`` (JPEG) of distinct random frames, one at a time on one
  connection, timed from request to last byte; every frame's barcode is checked.
* **API sequential**: ``/frames?index=N&count=32`` batches through the whole store: the frames per
  second the server can deliver (the ceiling for playback).
* **browser seek**: ``player.seek(i)`` in the page, timed in the page from the call until the frame
  is drawn (fetch, decode, draw); every 5th frame's barcode is read back from a screenshot.
* **browser playback**: play at x1 (and x2) for a few seconds; frames drawn per second over the
  last seconds, and the barcode of the frame on screen after pausing.
* **extra data**: the first request (loading 10^7 samples), then windows of random width at
  ``max_points=10000``, at the API and as a zoom in the page (request, ``setData``, draw).
"""
import argparse
import datetime
import http.client
import io
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, os.pardir, "tests"))

import workload  # noqa: E402
from test_web_browser import CHROMIUM_ARGS, chromium_path  # noqa: E402
from web_helpers import Server  # noqa: E402

import imgstore  # noqa: E402

T0 = 1796200000.0
FPS = 30.0
CHUNK = 300
EXTRA_SAMPLES = 10_000_000


def write_video_store(path, shape, frames):
    """A h264/mkv store of *frames* frames of the benchmark content, frame i carrying barcode i."""
    if os.path.exists(os.path.join(path, "metadata.yaml")):
        return path
    with imgstore.new_for_format("h264/mkv", mode="w", basedir=path, imgshape=shape, imgdtype=np.uint8,
                                 chunksize=CHUNK) as s:
        for block in range(0, frames, CHUNK):
            for k, f in enumerate(workload.make_frames(min(CHUNK, frames - block), shape, seed=workload.SEED + block)):
                workload.set_barcode(f, block + k)
                s.add_image(f, block + k, T0 + (block + k) / FPS)
    return path


def write_extra_h5(store_path, frames):
    """A Motif extra-data file of EXTRA_SAMPLES samples spread over the store's frames."""
    import h5py

    path = os.path.join(store_path, "000000.extra_data.h5")
    if os.path.exists(path):
        return
    n = EXTRA_SAMPLES
    rng = np.random.default_rng(7)
    camera = np.zeros(n, dtype=[("frame_number", "<i8"), ("frame_time", "<f8")])
    camera["frame_number"] = np.arange(n, dtype=np.int64) * frames // n
    camera["frame_time"] = T0 + np.arange(n) * (frames / FPS / n)
    voltage = np.cumsum(rng.normal(size=n)).astype(np.float64)
    voltage[rng.integers(0, n, 20)] += 500.0  # spikes the plot must not lose
    with h5py.File(path, "w") as f:
        f.attrs["datasets"] = b"daq"
        d = f.create_dataset("daq", data=voltage.reshape(1, n))
        d.attrs["column_names"] = b"voltage"
        d.attrs["samplerate"] = n / (frames / FPS)
        f.create_dataset("camera", data=camera)
        f.create_dataset("sample_delay", data=np.zeros(n))


def pct(values):
    v = np.asarray(values, dtype=float)
    return {"n": len(v), "p50": float(np.percentile(v, 50)), "p95": float(np.percentile(v, 95)),
            "max": float(v.max())}


class Conn:
    """One keep-alive HTTP connection to a server."""

    def __init__(self, server):
        self.c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)

    def get(self, path):
        self.c.request("GET", "/" + path)
        r = self.c.getresponse()
        body = r.read()
        return r.status, dict(r.getheaders()), body


# ---------------------------------------------------------------------------- API
def api_seeks(server, n_frames, n_seeks, rng):
    import imagecodecs

    conn = Conn(server)
    conn.get("api/stores")
    times, wrong = [], 0
    for i in rng.choice(n_frames, size=min(n_seeks, n_frames), replace=False):
        t = time.perf_counter()
        status, h, body = conn.get(f"api/stores/0/frame?index={int(i)}")
        times.append((time.perf_counter() - t) * 1000)
        assert status == 200, body
        wrong += workload.read_barcode(imagecodecs.jpeg8_decode(body)) != i or int(h["X-Frame-Index"]) != i
    return {**pct(times), "wrong": int(wrong)}


def api_sequential(server, n_frames, batch=32):
    conn = Conn(server)
    t = time.perf_counter()
    got = 0
    for start in range(0, n_frames, batch):
        status, h, body = conn.get(f"api/stores/0/frames?index={start}&count={batch}")
        assert status == 200
        got += body.count(b"X-Frame-Index:")
    dt = time.perf_counter() - t
    return {"frames": got, "fps": got / dt}


def api_extra(server, rng, windows=30):
    conn = Conn(server)
    t = time.perf_counter()
    status, _, body = conn.get("api/stores/0/extra?max_points=10000")
    first = (time.perf_counter() - t) * 1000
    assert status == 200, body
    full = json.loads(body)
    col = next(c for c in full["columns"] if c["name"] == "voltage")
    t0, t1 = col["time"][0], col["time"][-1]
    times, most, sizes = [], 0, []
    for _ in range(windows):
        width = (t1 - t0) * 10 ** rng.uniform(-3, 0)
        a = rng.uniform(t0, t1 - width)
        t = time.perf_counter()
        status, _, body = conn.get(f"api/stores/0/extra?start={a!r}&stop={a + width!r}&max_points=10000")
        times.append((time.perf_counter() - t) * 1000)
        d = json.loads(body)
        most = max(most, max(len(c["time"]) for c in d["columns"]))
        sizes.append(len(body))
    return {"samples": col["samples"], "first_ms": first, **pct(times), "max_points_returned": most,
            "kB_per_answer": float(np.median(sizes)) / 1e3}


# ---------------------------------------------------------------------------- browser
def screen_barcode(page):
    """The barcode of the frame on screen in the first view (at 1:1, its top-left corner)."""
    from PIL import Image

    box = page.locator(".view[data-store='0'] canvas").bounding_box()
    clip = {"x": box["x"], "y": box["y"], "width": 64, "height": 32}
    img = np.asarray(Image.open(io.BytesIO(page.screenshot(clip=clip))).convert("L"))
    return workload.read_barcode(img)


def open_page(browser, server, fragment="#index=0"):
    page = browser.new_page(viewport={"width": 1400, "height": 1250}, bypass_csp=True)
    page.goto(server.url + fragment)
    page.wait_for_selector("body[data-ready='1']", timeout=60000)
    page.click(".view[data-store='0'] .one-to-one")
    return page


def browser_seeks(browser, server, n_frames, n_seeks, rng):
    page = open_page(browser, server)
    times, wrong, checked = [], 0, 0
    for k, i in enumerate(rng.choice(n_frames, size=min(n_seeks, n_frames), replace=False)):
        ms = page.evaluate("async (i) => { const t = performance.now(); await window.imgstoreViewer.player.seek(i);"
                           " return performance.now() - t; }", int(i))
        times.append(ms)
        shown = int(page.locator(".view[data-store='0']").get_attribute("data-index"))
        wrong += shown != i
        if k % 5 == 0:
            checked += 1
            wrong += screen_barcode(page) != i
    page.close()
    return {**pct(times), "wrong": int(wrong), "barcodes_read": checked}


def browser_playback(browser, server, speed, seconds):
    page = open_page(browser, server)
    page.evaluate(f"window.imgstoreViewer.player.setSpeed({speed})")
    page.evaluate("window.imgstoreViewer.player.play()")
    t_start = time.monotonic()
    page.wait_for_timeout(seconds * 1000)
    stats = page.evaluate("(() => { const p = window.imgstoreViewer.player; p.pause();"
                          " return {draws: p.stats.draws, now: performance.now(), pos: p.pos}; })()")
    wall = time.monotonic() - t_start
    page.wait_for_function("window.imgstoreViewer.player.shown === window.imgstoreViewer.player.pos")
    draws = np.asarray(stats["draws"])
    window = max(1.0, seconds - 1.5)  # the last seconds: past the start of playback
    recent = draws[draws >= stats["now"] - window * 1000]
    ok = screen_barcode(page) == stats["pos"]
    page.close()
    return {"speed": speed, "fps_drawn": len(recent) / window, "frames_played": int(stats["pos"]),
            "recorded_s_per_s": stats["pos"] / FPS / wall, "last_frame_ok": bool(ok)}


def browser_zooms(browser, server, rng, n=10):
    page = open_page(browser, server)
    page.wait_for_selector(".plot[data-column='voltage']", timeout=120000)
    t0, t1 = page.evaluate("(() => { const u = window.imgstoreViewer.page.plots.charts[0].u;"
                           " return [u.data[0][0], u.data[0][u.data[0].length - 1]]; })()")
    times = []
    for _ in range(n):
        width = (t1 - t0) * 10 ** rng.uniform(-3, -0.3)
        a = rng.uniform(t0, t1 - width)
        times.append(page.evaluate("async ([a, b]) => { const t = performance.now();"
                                   " await window.imgstoreViewer.page.plots.zoom(a, b);"
                                   " await new Promise(requestAnimationFrame); return performance.now() - t; }",
                                   [a, a + width]))
    page.close()
    return pct(times)


# ---------------------------------------------------------------------------- report
def fmt_ms(d):
    return f"{d['p50']:.1f} / {d['p95']:.1f} / {d['max']:.1f}"


def report(res):
    lines = [f"# imgstore serve, measured {res['when']}", "",
             "| | 1280x1024 gray h264/mkv | 640x480 BGR h264/mkv |", "|---|---|---|"]
    g, c = res["gray"], res["color"]
    lines.append(f"| API seek ms (p50 / p95 / max) | {fmt_ms(g['api_seek'])} | {fmt_ms(c['api_seek'])} |")
    lines.append(f"| API seek wrong frames | {g['api_seek']['wrong']} of {g['api_seek']['n']} | "
                 f"{c['api_seek']['wrong']} of {c['api_seek']['n']} |")
    lines.append(f"| API sequential fps (batches of 32) | {g['api_seq']['fps']:.0f} | {c['api_seq']['fps']:.0f} |")
    lines.append(f"| browser seek ms (p50 / p95 / max) | {fmt_ms(g['browser_seek'])} | {fmt_ms(c['browser_seek'])} |")
    lines.append(f"| browser seek wrong frames | {g['browser_seek']['wrong']} | {c['browser_seek']['wrong']} |")
    for pg, pc in zip(g["playback"], c["playback"]):
        lines.append(f"| browser playback x{pg['speed']:g}: fps drawn (recorded s per s) | {pg['fps_drawn']:.1f} "
                     f"({pg['recorded_s_per_s']:.2f}) | {pc['fps_drawn']:.1f} ({pc['recorded_s_per_s']:.2f}) |")
    e = res["extra"]
    lines += ["", f"Extra data, {e['samples']:,} samples: first request {e['first_ms']:.0f} ms (loads them); "
              f"windows at max_points=10000: {fmt_ms(e)} ms (p50 / p95 / max), at most "
              f"{e['max_points_returned']} points per column, {e['kB_per_answer']:.0f} kB; "
              f"zoom in the page (request, setData, draw): {fmt_ms(res['zoom'])} ms."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=900)
    ap.add_argument("--seeks", type=int, default=200)
    ap.add_argument("--browser-seeks", type=int, default=100)
    ap.add_argument("--dir", default="/tmp/imgstore-bench-web")
    ap.add_argument("--out", default=None, help="write the report here too (.md, and .json beside it)")
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    os.makedirs(args.dir, exist_ok=True)
    paths = {"gray": write_video_store(os.path.join(args.dir, f"gray{args.frames}"), (1024, 1280), args.frames),
             "color": write_video_store(os.path.join(args.dir, f"color{args.frames}"), (480, 640, 3), args.frames)}
    write_extra_h5(paths["gray"], args.frames)
    rng = np.random.default_rng(1)
    res = {"when": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "frames": args.frames}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        for name, path in paths.items():
            r = res[name] = {}
            for phase in ("api_seek", "api_seq", "browser_seek", "playback"):
                s = Server(path)
                try:
                    if phase == "api_seek":
                        r[phase] = api_seeks(s, args.frames, args.seeks, rng)
                    elif phase == "api_seq":
                        r[phase] = api_sequential(s, args.frames)
                    elif phase == "browser_seek":
                        r[phase] = browser_seeks(browser, s, args.frames, args.browser_seeks, rng)
                    else:
                        r[phase] = [browser_playback(browser, s, 1, 6), browser_playback(browser, s, 2, 4)]
                finally:
                    s.stop()
                print(name, phase, r[phase], flush=True)
        s = Server(paths["gray"])
        try:
            res["extra"] = api_extra(s, rng)
            res["zoom"] = browser_zooms(browser, s, rng)
        finally:
            s.stop()
        browser.close()
    text = report(res)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
        with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
