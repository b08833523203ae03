"""``imgstore serve``'s HTTP API: frames by index, number and time, batches, extra data, gaps, alignment,
and what it answers to bad and hostile requests; the command's exit statuses and the token."""

import datetime
import http.client
import json
import os
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest

import imgstore
from imgstore.apps.web.gaps import find_gaps, frame_interval
from imgstore.apps.web.params import BadRequest, parse_time
from imgstore.apps.web.series import minmax_downsample

from web_helpers import (A_NUMBERS, A_TIMES, FPS, SHAPE, T0, Server, barcode, decode_image,
                         make_stores, parse_multipart)

pytestmark = pytest.mark.beyond_original


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    return make_stores(tmp_path_factory.mktemp("web"))


@pytest.fixture(scope="module")
def server(stores):
    s = Server(stores["a"], stores["b"], stores["c"])
    yield s
    assert s.stop() == 0


def raw_get(server, path, host=None):
    """GET with *path* sent exactly as given (no client-side normalisation)."""
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    c.putrequest("GET", path, skip_host=host is not None)
    if host is not None:
        c.putheader("Host", host)
    c.endheaders()
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, dict(r.getheaders()), body


# ---------------------------------------------------------------------------- stores and frames
def test_stores_list(server):
    lst = server.json("api/stores")
    assert [s["id"] for s in lst] == [0, 1, 2]
    a = lst[0]
    for key in ("frame_count", "frame_min", "frame_max", "frame_time_min", "frame_time_max", "image_shape",
                "dtype", "format", "chunks", "user_metadata"):
        assert key in a
    assert a["frame_count"] == len(A_NUMBERS) and a["frame_min"] == 0 and a["frame_max"] == 299
    assert a["image_shape"] == list(SHAPE) and a["dtype"] == "uint8" and a["format"] == "h264/mkv"
    assert a["chunks"] == 3 and a["user_metadata"] == {"genotype": "wt", "arena": 3}
    assert a["frame_time_min"] == pytest.approx(T0) and a["fps"] == pytest.approx(FPS, rel=1e-3)
    assert lst[1]["image_shape"] == list(SHAPE) + [3] and lst[2]["dtype"] == "uint16"
    assert lst[2]["default_format"] == "png" and a["default_format"] == "jpeg"
    assert server.json("api/stores/1")["format"] == "mjpeg/avi"
    assert server.json("api/config")["align"] == "frame_time"


@pytest.mark.parametrize("query, index", [("index=150", 150), ("number=150", 145), ("time=%r" % float(A_TIMES[7]), 7),
                                          ("number=102&exact=0", 99)])
def test_frame_by_index_number_time(server, query, index):
    status, h, body = server.get(f"api/stores/0/frame?{query}")
    assert status == 200 and h["Content-Type"] == "image/jpeg"
    assert int(h["X-Frame-Index"]) == index and int(h["X-Frame-Number"]) == A_NUMBERS[index]
    assert float(h["X-Frame-Time"]) == pytest.approx(A_TIMES[index], abs=1e-6)
    assert h["X-Frame-Datetime"].startswith("2026-12-02T08:26:")
    img = decode_image(body)
    assert img.shape == SHAPE and barcode(img) == A_NUMBERS[index]


def test_frame_time_as_iso_datetime_in_the_recording_zone(server):
    tz = imgstore.new_for_filename(server_store(server, 0)).created[1]
    when = datetime.datetime.fromtimestamp(A_TIMES[250], tz)
    for text in (when.replace(tzinfo=None).isoformat(), when.isoformat(),
                 when.astimezone(datetime.timezone(datetime.timedelta(hours=5))).isoformat()):
        status, h, _ = server.get("api/stores/0/frame?time=" + text.replace("+", "%2B"))
        assert status == 200 and int(h["X-Frame-Index"]) == 250, text


def server_store(server, i):
    return server.json("api/stores")[i]["location"]


def test_png_is_lossless_8_and_16_bit(server):
    s8 = imgstore.new_for_filename(server_store(server, 1))
    status, h, body = server.get("api/stores/1/frame?index=33&format=png")
    assert status == 200 and h["Content-Type"] == "image/png"
    want = s8.get_image(None, frame_index=33)[0]
    assert np.array_equal(decode_image(body), want[..., ::-1])  # RGB on the wire
    s16 = imgstore.new_for_filename(server_store(server, 2))
    status, h, body = server.get("api/stores/2/frame?index=21")  # default for 16-bit gray: PNG
    img = decode_image(body)
    assert h["Content-Type"] == "image/png" and img.dtype == np.uint16
    assert np.array_equal(img, s16.get_image(None, frame_index=21)[0]) and barcode(img) == 21
    status, h, body = server.get("api/stores/2/frame?index=21&format=jpeg&levels=0,65535")
    img = decode_image(body)
    assert status == 200 and img.dtype == np.uint8 and barcode(img) == 21
    assert int(h["X-Frame-Max"]) == 65535


def test_levels_stretch(server):
    _, h, body = server.get("api/stores/0/frame?index=5&format=png&levels=0,100")
    img = decode_image(body)
    raw = imgstore.new_for_filename(server_store(server, 0)).get_image(None, frame_index=5)[0]
    expect = np.clip(raw.astype(float) * 2.55 + 0.5, 0, 255).astype(np.uint8)
    assert np.array_equal(img, expect)


def test_frames_batch_is_multipart_and_sequential(server):
    status, h, body = server.get("api/stores/0/frames?index=95&count=10")
    assert status == 200 and h["Content-Type"].startswith("multipart/mixed; boundary=")
    parts = parse_multipart(h["Content-Type"], body)
    assert [int(p["X-Frame-Index"]) for p, _ in parts] == list(range(95, 105))
    for p, data in parts:
        i = int(p["X-Frame-Index"])
        assert int(p["X-Frame-Number"]) == A_NUMBERS[i] and int(p["Content-Length"]) == len(data)
        assert barcode(decode_image(data)) == A_NUMBERS[i]
    _, h, body = server.get("api/stores/0/frames?index=280&count=50&step=3")
    assert [int(p["X-Frame-Index"]) for p, _ in parse_multipart(h["Content-Type"], body)] == [280, 283, 286, 289, 292]
    _, h, body = server.get("api/stores/1/frames?indices=7,3,200")
    parts = parse_multipart(h["Content-Type"], body)
    assert [barcode(decode_image(d)) for _, d in parts] == [7, 3, 200]


def test_extra_data_window_and_minmax(server):
    full = server.json("api/stores/0/extra")
    cols = {c["name"]: c for c in full["columns"]}
    assert set(cols) == {"temperature", "spike"} and cols["spike"]["samples"] == len(A_NUMBERS)
    small = server.json("api/stores/0/extra?max_points=20")
    for c in small["columns"]:
        assert len(c["time"]) == len(c["value"]) <= 20
        ref = cols[c["name"]]
        assert max(c["value"]) == max(ref["value"]) and min(c["value"]) == min(ref["value"])
    spike = [c for c in small["columns"] if c["name"] == "spike"][0]
    assert spike["time"][spike["value"].index(100.0)] == pytest.approx(A_TIMES[123], abs=1e-3)
    t0, t1 = A_TIMES[50], A_TIMES[60]
    win = server.json(f"api/stores/0/extra?start={float(t0)!r}&stop={float(t1)!r}&columns=temperature")
    (c,) = win["columns"]
    assert c["name"] == "temperature" and c["samples"] == 11
    assert server.json("api/stores/1/extra")["columns"] == []


def test_extra_data_downsampling_keeps_every_bin_extreme():
    rng = np.random.default_rng(1)
    y = rng.normal(size=1_000_003)
    y[777_777] = 50.0
    y[123] = -50.0
    x = np.arange(len(y), dtype=float)
    xs, ys = minmax_downsample(x, y, 10_000)
    assert len(ys) <= 10_000 and np.all(np.diff(xs) > 0)
    assert ys.max() == 50.0 and ys.min() == -50.0
    xs, ys = minmax_downsample(x[:7], y[:7], 10)
    assert len(xs) == 7


def test_gaps(server):
    status, h, body = server.get("api/stores/0/gaps")
    gaps = json.loads(body)
    assert h["X-Gaps-Total"] == "2"
    assert [(g["index"], g["kind"]) for g in gaps] == [(100, ["number", "time"]), (200, ["time"])]
    assert gaps[0]["frame_number_before"] == 99 and gaps[0]["frame_number"] == 105 and gaps[0]["missing_numbers"] == 5
    assert gaps[1]["seconds"] == pytest.approx(1.0 + 1 / FPS, abs=1e-3)
    assert server.json("api/stores/1/gaps") == []


def test_gap_rules():
    n = np.array([0, 1, 2, 5, 6, 6, 7])
    t = np.array([0, 1, 2, 3, 4, 5, 9.0])
    total, gaps = find_gaps(n, t, frame_interval(t), 10)
    assert total == 3 and [g["index"] for g in gaps] == [3, 5, 6]
    assert gaps[1]["kind"] == ["number"] and gaps[2]["kind"] == ["time"]
    assert find_gaps(n[:1], t[:1], 1.0, 10) == (0, [])


def test_align_by_number_and_time(server):
    r = server.json("api/align?index=98&count=4&by=frame_number")
    assert r["stores"][0] == [98, 99, 100, 101] and r["stores"][1] == [98, 99, 105, 106]
    assert r["stores"][2] == [-1, -1, -1, -1]
    r = server.json("api/align?index=199&count=2&by=frame_time")
    assert r["stores"][1] == [204, 235]  # A paused for a second, B did not
    assert r["stores"][2] == [-1, -1]  # C ended long before
    r = server.json("api/align?store=1&number=150&by=frame_number")
    assert r["stores"] == [[145], [150], [-1]]


# ---------------------------------------------------------------------------- bad and hostile requests
@pytest.mark.parametrize("path", [
    "api/stores/0/frame", "api/stores/0/frame?index=1&number=2", "api/stores/0/frame?index=abc",
    "api/stores/0/frame?index=1.5", "api/stores/0/frame?index=1e3", "api/stores/0/frame?index=%201",
    "api/stores/0/frame?time=yesterday", "api/stores/0/frame?time=nan", "api/stores/0/frame?time=inf",
    "api/stores/0/frame?index=1&format=gif", "api/stores/0/frame?index=1&levels=5",
    "api/stores/0/frame?index=1&levels=9,3", "api/stores/0/frame?index=1&index=2",
    "api/stores/0/frame?index=1&path=/etc/passwd", "api/stores/0/frame?index=99999999999999999999",
    "api/stores/0/frames?index=0&count=0", "api/stores/0/frames?index=0&count=100000",
    "api/stores/0/frames?indices=1,x", "api/stores/0/frames?indices=1&index=2", "api/stores/0/frames",
    "api/stores/0/extra?max_points=10001", "api/stores/0/extra?max_points=1", "api/stores/0/extra?start=5&stop=1",
    "api/stores/0/extra?columns=nope", "api/stores/0/gaps?limit=-1", "api/align?by=color&index=0",
    "api/align?store=9&index=0", "api/stores/0/frame?time=" + "9" * 200,
])
def test_bad_parameters_are_400_with_one_line_json(server, path):
    status, h, body = server.get(path)
    assert status == 400, (path, body)
    assert h["Content-Type"].startswith("application/json")
    err = json.loads(body)["error"]
    assert err and "\n" not in err and "Traceback" not in err


@pytest.mark.parametrize("path", [
    "api/stores/0/frame?index=295", "api/stores/0/frame?index=-1", "api/stores/0/frame?number=102",
    "api/stores/0/frames?index=295", "api/stores/0/frames?indices=3,400", "api/stores/3/frame?index=0",
    "api/stores/2/frame?time=1", "api/nothing", "nothing", "api/align?index=1000",
])
def test_out_of_range_is_404(server, path):
    status, h, body = server.get(path)
    assert status == 404, (path, body)
    assert "error" in json.loads(body)


@pytest.mark.parametrize("path", [
    "/static/../../../../etc/passwd", "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/static/..%2f..%2f..%2fetc/passwd",
    "/static//etc/passwd", "/static/%2Fetc%2Fpasswd", "/api/stores/../../../etc/passwd",
    "/api/stores/%2e%2e%2f%2e%2e/frame?index=0", "/api/stores/0/../../../etc/passwd", "/etc/passwd",
    "/api/stores/0/metadata.yaml", "/api/stores/0/000000.mkv", "/api/stores/0/escape/passwd",
    "/static/js/../../../../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/static/\\..\\..\\etc\\passwd",
    "/api/stores/0/frame?index=0/../../etc/passwd", "/api/stores//tmp/frame?index=0",
])
def test_no_request_reaches_a_file(server, stores, path):
    os.symlink("/etc", os.path.join(stores["a"], "escape"))
    try:
        status, h, body = raw_get(server, path)
    finally:
        os.unlink(os.path.join(stores["a"], "escape"))
    assert status in (400, 404), (path, status)
    assert b"root:" not in body and b"Traceback" not in body and b"chunksize" not in body


def test_static_files_and_page(server):
    status, h, body = server.get("")
    assert status == 200 and b"static/js/main.js" in body and h["Content-Type"].startswith("text/html")
    for name in ("static/js/main.js", "static/vendor/uPlot.iife.min.js", "static/viewer.css"):
        status, h, body = server.get(name)
        assert status == 200 and len(body) > 100, name
    assert b"cdn" not in server.get("")[2].lower()


def test_foreign_host_header_is_refused_on_loopback(server):
    status, _, body = raw_get(server, "/api/stores", host=f"evil.example:{server.port}")
    assert status == 403 and b"error" in body
    assert raw_get(server, "/api/stores", host=f"localhost:{server.port}")[0] == 200
    assert raw_get(server, "/api/stores", host=f"[::1]:{server.port}")[0] == 200


# ---------------------------------------------------------------------------- the command
def run_cli(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "imgstore.apps.web", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_cli_help_and_errors(tmp_path):
    r = run_cli("--help")
    assert r.returncode == 0 and "--align" in r.stdout and "--port" in r.stdout
    missing = str(tmp_path / "nope")
    r = run_cli(missing)
    assert r.returncode == 2 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and missing in r.stderr
    r = run_cli()
    assert r.returncode == 2


def test_cli_port_in_use(stores):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        r = run_cli(stores["b"], "--port", str(sock.getsockname()[1]))
    assert r.returncode == 1 and "in use" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_stops_cleanly(stores, sig):
    s = Server(stores["b"])
    assert s.get("api/stores")[0] == 200
    assert s.stop(sig) == 0


def test_token_required_off_loopback(stores):
    s = Server(stores["b"], "--host", "0.0.0.0")
    try:
        assert "?token=" in s.url
        token = s.url.split("token=")[1]
        local = f"http://127.0.0.1:{s.port}/"
        s.base = local
        assert s.get("api/stores")[0] == 401
        assert s.get("api/stores?token=wrong")[0] == 401
        assert s.get("static/js/main.js")[0] == 401
        assert s.get(f"api/stores?token={token}")[0] == 200
        assert s.get("api/stores", headers={"Authorization": f"Bearer {token}"})[0] == 200
        status, h, _ = s.get(f"?token={token}")
        assert status == 200 and token in h["Set-Cookie"]
        cookie = h["Set-Cookie"].split(";")[0]
        assert s.get("static/js/main.js", headers={"Cookie": cookie})[0] == 200
        assert json.loads(s.get("api/stores")[2])["error"]
    finally:
        assert s.stop() == 0


def test_view_web_forwards_port_and_host(stores):
    """``imgstore-view --web PATH --host H --port 0`` is ``imgstore serve`` with the same options."""
    s = Server(stores["b"], "--host", "0.0.0.0", command=("-m", "imgstore.apps.cli", "view", "--web"))
    try:
        assert "?token=" in s.url and s.port != 0
        s.base = f"http://127.0.0.1:{s.port}/"
        assert s.get("api/stores")[0] == 401
        token = s.url.split("token=")[1]
        assert json.loads(s.get(f"api/stores?token={token}")[2])[0]["frame_count"] == 300
    finally:
        assert s.stop() == 0


def test_parse_time_forms():
    utc = datetime.timezone.utc
    assert parse_time("1796200000.5", "time", utc) == 1796200000.5
    assert parse_time("2026-12-02T08:26:40", "time", utc) == T0
    assert parse_time("2026-12-02 09:26:40+01:00", "time", utc) == T0
    with pytest.raises(BadRequest):
        parse_time("12/02/2026", "time", utc)


def test_serves_a_store_behind_a_url(stores):
    from rangeserver import RangeServer

    root = os.path.dirname(stores["a"])
    with RangeServer(root) as http_store:
        s = Server(f"{http_store.url}/a/")
        try:
            assert s.json("api/stores")[0]["frame_count"] == len(A_NUMBERS)
            status, h, body = s.get("api/stores/0/frame?number=250")
            assert status == 200 and barcode(decode_image(body)) == 250
            assert s.json("api/stores/0/gaps")[0]["index"] == 100
        finally:
            assert s.stop() == 0
