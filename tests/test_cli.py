"""The ``imgstore`` command: its subcommands, help, exit statuses, errors and the older command names."""

from __future__ import annotations

import importlib.util
import json

import pytest

from cli_helpers import make_store, run

import imgstore

SUBCOMMANDS = ("info", "view", "save", "convert", "export", "timecodes", "recover", "test", "demo")


def test_help_lists_every_subcommand_and_each_has_help(capsys):
    from imgstore.apps import cli

    top = run("--help").stdout
    for name in SUBCOMMANDS + ("serve",):
        assert f"\n    {name}" in top, name
    assert run("convert", "--help").stdout.startswith("usage: imgstore convert")
    for name in SUBCOMMANDS:  # the rest in this process (each subprocess costs an import of imgstore)
        with pytest.raises(SystemExit) as e:
            cli.main([name, "--help"])
        out = capsys.readouterr().out
        assert e.value.code == 0 and out.startswith(f"usage: imgstore {name}") and "examples:" in out, name


def test_old_command_names_still_work(tmp_path):
    s = make_store(tmp_path / "s", n=10)
    for tool in ("imgstore-view", "imgstore-save", "imgstore-test", "imgstore-info", "imgstore-recover",
                 "imgstore-demo"):
        assert run("--help", tool=tool).stdout.startswith(f"usage: {tool}")
    info = json.loads(run(s.filename, "--json", tool="imgstore-info").stdout)
    assert info["frame_count"] == 10
    assert "nothing to do" in run(s.filename, tool="imgstore-recover").stdout


def test_exit_statuses_and_one_line_errors(tmp_path):
    missing = tmp_path / "nope"
    p = run("info", missing, check=False)
    assert p.returncode == 1
    assert p.stderr.count("\n") == 1 and str(missing) in p.stderr and "Traceback" not in p.stderr
    p = run("--debug", "info", missing, check=False)
    assert p.returncode == 1 and "Traceback" in p.stderr and str(missing) in p.stderr.splitlines()[-1]
    assert run("info", missing, "--debug", check=False).stderr.startswith("Traceback")
    for bad in (["nosuchcommand"], ["convert", "a"], ["export", "--every", "0", "a", "b.mp4"], []):
        assert run(*bad, check=False).returncode == 2, bad
    p = run("convert", tmp_path / "a", tmp_path / "b", check=False)  # no --format
    assert p.returncode == 1 and "--format" in p.stderr


def test_info_json_of_several_stores(tmp_path):
    a = make_store(tmp_path / "a", n=10)
    b = make_store(tmp_path / "b", n=30, fmt="mjpeg/avi")
    out = json.loads(run("info", a.filename, b.filename, "--json").stdout)
    assert [d["frame_count"] for d in out] == [10, 30] and out[1]["format"] == "mjpeg/avi"
    text = run("info", a.filename).stdout
    assert "frame_count     10" in text and "genotype='CS'" in text


def test_timecodes_are_the_original_format(tmp_path):
    s = make_store(tmp_path / "s", n=12)
    out = run("timecodes", s.filename).stdout.splitlines()
    assert out[0] == "# timecode format v2" and len(out) == 13
    assert [float(x) for x in out[1:]] == pytest.approx([i * 1000 / 30 for i in range(12)], abs=1e-3)
    run("timecodes", s.filename, "-o", tmp_path / "tc.txt")
    assert (tmp_path / "tc.txt").read_text().splitlines() == out


def test_serve_and_view_web_go_to_the_web_viewer(tmp_path):
    if importlib.util.find_spec("imgstore.apps.web.cli") is None:
        p = run("serve", tmp_path, check=False)
        assert p.returncode == 1 and p.stderr.count("\n") == 1 and "web viewer" in p.stderr
        p = run("view", "--web", tmp_path, check=False)
        assert p.returncode == 1 and "web viewer" in p.stderr
    else:
        assert run("serve", "--help").stdout.startswith("usage:")


def test_serve_without_the_web_viewer_is_one_line(monkeypatch, capsys):
    from imgstore.apps import cli
    from imgstore.apps.commands import serve

    monkeypatch.setattr(serve, "WEB_CLI", "imgstore.apps.no_such_web.cli")
    assert cli.main(["serve", "somewhere"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not available" in err


def test_demo_and_selftest_through_the_one_command(tmp_path):
    p = run("demo", "--dir", tmp_path / "d", "--frames", "30", "--shape", "48x64")
    assert "wrong: 0" in p.stdout
    assert "2 passed, 0 failed" in run("test", "--format", "npy").stdout
    assert imgstore.new_for_filename(str(tmp_path / "d")).frame_count == 30
