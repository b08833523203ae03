"""Progress: a bar on a terminal (a pseudo-terminal here), plain lines without one, nothing with --quiet."""

from __future__ import annotations

import io
import os
import subprocess

import pytest

from cli_helpers import exe, make_store, run

from imgstore.apps.progress import Progress


def run_on_pty(*args, timeout=60) -> tuple[int, str]:
    """Run ``imgstore ARGS`` with stdout and stderr on a new pseudo-terminal; (exit status, what it showed)."""
    master, slave = os.openpty()
    p = subprocess.Popen([exe(), *map(str, args)], stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                         close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the other side is closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return p.wait(timeout=timeout), b"".join(chunks).decode("utf-8", "replace")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("p") / "s", n=120, chunksize=30, extra_every=0)


def test_bar_on_a_terminal(store, tmp_path):
    rc, shown = run_on_pty("convert", store.filename, tmp_path / "d", "--format", "npy", "--workers", "1")
    assert rc == 0, shown
    assert "\r" in shown and "100%|" in shown and "120/120" in shown and "frame/s" in shown
    rc, shown = run_on_pty("export", store.filename, tmp_path / "e.mkv", "--quiet")
    assert rc == 0 and shown.strip() == ""


def test_plain_lines_without_a_terminal(store, tmp_path):
    p = run("convert", store.filename, tmp_path / "d", "--format", "npy", "--workers", "1",
            env={"IMGSTORE_PROGRESS_INTERVAL": "0"})
    lines = p.stderr.splitlines()
    assert "\r" not in p.stderr and "|" not in p.stderr
    assert any("/120 frames (" in line and "frames/s" in line for line in lines), p.stderr
    assert lines[-1].startswith("convert: 120 frames in ")
    p = run("export", store.filename, tmp_path / "e.mp4", "-q")
    assert p.stderr == "" and p.stdout == ""


def test_progress_object_modes(monkeypatch):
    buf = io.StringIO()
    with Progress(10, "job", stream=buf) as p:  # not a terminal: lines
        assert p.mode == "lines"
        p.update(10)
    assert buf.getvalue() == ""  # done within a second: nothing to say
    monkeypatch.setenv("IMGSTORE_PROGRESS_INTERVAL", "0")
    with Progress(10, "job", stream=buf) as p:
        p.update(4)
        p.update(6)
    assert buf.getvalue().splitlines()[0].startswith("job: 4/10 frames (40%)")
    assert buf.getvalue().splitlines()[-1].startswith("job: 10 frames in ")
    quiet = io.StringIO()
    with Progress(10, "job", stream=quiet, quiet=True) as p:
        p.update(5)
        p.write("hello", file=quiet)
    assert quiet.getvalue() == "hello\n"


def test_busy_shows_work_of_unknown_length_only_when_it_lasts(monkeypatch):
    import time

    from imgstore.apps.progress import busy

    monkeypatch.setenv("IMGSTORE_PROGRESS_INTERVAL", "0")
    quick, slow = io.StringIO(), io.StringIO()
    with busy("opening fly1", stream=quick, delay=0.5):
        pass
    with busy("opening fly1", stream=slow, delay=0.05):
        time.sleep(0.6)
    assert quick.getvalue() == "" and slow.getvalue().startswith("opening fly1: ")
