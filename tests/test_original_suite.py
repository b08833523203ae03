"""The original imgstore 0.4.0's own test suite, run against this package.

The original's ``tests/test_imgstore.py`` and ``tests/test_util.py`` are taken from the
original installed by ``bench/setup_original.sh`` if present, else from its sdist
(``pip download imgstore==0.4.0``, cached in the user cache folder); copied into a temporary
folder and run by pytest in a subprocess, where ``import imgstore`` is this package and
``from imgstore.tests import TEST_DATA_DIR`` our generated test data. Skipped when neither
source is available (offline, no original installed).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET

import pytest

from conftest import AGAINST_ORIGINAL, REPO_ROOT

ORIGINAL_VERSION = "0.4.0"
SUITE_FILES = ("test_imgstore.py", "test_util.py")
#: the original's suite takes ~20 s here; a hung codec must not hold the whole run
SUITE_TIMEOUT_S = 240

pytestmark = pytest.mark.skipif(AGAINST_ORIGINAL, reason="runs the original's suite against this package")


def _installed_original_tests() -> str | None:
    pattern = os.path.join(REPO_ROOT, "bench", ".envs", "original", "lib", "python3*", "site-packages",
                           "imgstore", "tests")
    for folder in sorted(glob.glob(pattern)):
        if all(os.path.isfile(os.path.join(folder, f)) for f in SUITE_FILES):
            return folder
    return None


def _sdist_tests() -> str | None:
    cache = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
                         "imgstore", f"original-{ORIGINAL_VERSION}")
    folder = os.path.join(cache, "tests")
    if all(os.path.isfile(os.path.join(folder, f)) for f in SUITE_FILES):
        return folder
    os.makedirs(cache, exist_ok=True)
    try:
        subprocess.run([sys.executable, "-m", "pip", "download", f"imgstore=={ORIGINAL_VERSION}", "--no-deps",
                        "--no-binary", ":all:", "-d", cache, "-q"], check=True, timeout=180,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except (subprocess.SubprocessError, OSError):
        return None
    sdists = glob.glob(os.path.join(cache, f"imgstore-{ORIGINAL_VERSION}.tar.gz"))
    if not sdists:
        return None
    os.makedirs(folder, exist_ok=True)
    with tarfile.open(sdists[0]) as tar:
        for f in SUITE_FILES:
            member = tar.extractfile(f"imgstore-{ORIGINAL_VERSION}/imgstore/tests/{f}")
            with open(os.path.join(folder, f), "wb") as out:
                out.write(member.read())
    return folder


def _failures(junit_xml: str) -> list[str]:
    out = []
    for case in ET.parse(junit_xml).getroot().iter("testcase"):
        for bad in ("failure", "error"):
            node = case.find(bad)
            if node is not None:
                msg = (node.get("message") or "").splitlines()[0][:160] if node.get("message") else ""
                out.append(f"{case.get('classname')}::{case.get('name')} ({bad}: {msg})")
    return out


def test_original_suite_passes(tmp_path):
    source = _installed_original_tests() or _sdist_tests()
    if source is None:
        pytest.skip(f"the original imgstore {ORIGINAL_VERSION}'s tests are not available "
                    "(no bench/.envs/original and `pip download` failed)")
    suite = tmp_path / "original_tests"
    suite.mkdir()
    for f in SUITE_FILES:
        shutil.copy(os.path.join(source, f), suite / f)
    junit = tmp_path / "junit.xml"
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-rfE", "--disable-warnings", "-p", "no:cacheprovider",
             "--rootdir", str(suite),
             f"--junitxml={junit}", "-o", "junit_family=xunit1", str(suite)],
            cwd=str(suite), env=env, timeout=SUITE_TIMEOUT_S, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the original's suite did not finish in {SUITE_TIMEOUT_S} s")
    assert junit.exists(), proc.stdout[-4000:]
    failed = _failures(str(junit))
    summary = proc.stdout[proc.stdout.rfind("short test summary info"):] if failed else proc.stdout[-3000:]
    assert not failed and proc.returncode == 0, (
        f"{len(failed)} of the original's tests fail against this package:\n  " + "\n  ".join(failed)
        + "\n\n" + summary[-3000:])
