"""imgstore.apps.generate_timecodes / main_generate_timecodes: "timecode format v2" files."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import make_frame

from imgstore import new_for_filename, new_for_format
from imgstore.apps import generate_timecodes, main_generate_timecodes
from test_original_reads_ours import _clean_env, _original_python

TIMES = [1700000000.123456, 1700000000.156789, 1700000000.2, 1700000000.15, 1700000001.0, 1700000100.0005]


@pytest.fixture
def store_path(tmp_path):
    s = new_for_format("npy", mode="w", basedir=str(tmp_path / "s"), imgshape=(48, 64), imgdtype=np.uint8,
                       chunksize=4)
    for i, t in enumerate(TIMES):
        s.add_image(make_frame(i), i, t)
    s.close()
    return str(tmp_path / "s")


def test_format(store_path):
    out = io.StringIO()
    rel = generate_timecodes(new_for_filename(store_path), out)
    lines = out.getvalue().splitlines()
    assert lines[0] == "# timecode format v2"
    assert len(lines) == 1 + len(TIMES)
    want = [(t - TIMES[0]) * 1000.0 for t in TIMES]
    assert lines[1:] == [f"{v:.3f}" for v in want]
    assert lines[1] == "0.000" and lines[4] == "26.544"  # store order (not sorted by time)
    np.testing.assert_allclose(rel, np.array(TIMES) - TIMES[0])


def test_empty_store(tmp_path):
    s = new_for_format("npy", mode="w", basedir=str(tmp_path / "e"), imgshape=(48, 64), imgdtype=np.uint8)
    s.close()
    out = io.StringIO()
    assert len(generate_timecodes(new_for_filename(str(tmp_path / "e")), out)) == 0
    assert out.getvalue() == "# timecode format v2\n"


def test_main_prints_to_stdout(store_path, capsys):
    main_generate_timecodes([store_path])
    out = capsys.readouterr().out
    assert out.startswith("# timecode format v2\n") and out.count("\n") == 1 + len(TIMES)


def test_same_output_as_the_original(store_path, tmp_path):
    python, _ = _original_python()
    if python is None:
        pytest.skip("the original imgstore is not installed (bench/setup_original.sh)")
    code = textwrap.dedent("""
        import sys
        from imgstore import new_for_filename
        from imgstore.apps import generate_timecodes
        generate_timecodes(new_for_filename(sys.argv[1]), sys.stdout)
    """)
    p = subprocess.run([python, "-c", code, store_path], cwd=str(tmp_path), env=_clean_env(), capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    ours = subprocess.run([sys.executable, "-c", "from imgstore.apps import main_generate_timecodes as m; m()",
                           store_path], capture_output=True, text=True, check=True).stdout
    assert ours == p.stdout
