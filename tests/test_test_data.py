"""imgstore.tests.TEST_DATA_DIR: the test data the original's test suite expects, generated here."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

from imgstore import new_for_filename
from imgstore.tests import data as test_data


def _decode(img) -> int:
    """The barcode of ``test_data.barcode_frame``: bit k = mean of the middle of columns 32k..32k+31."""
    bits = [float(np.mean(img[:, 32 * k + 8:32 * k + 24])) > 127 for k in range(16)]
    return int("".join("1" if b else "0" for b in bits), 2)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return test_data.ensure_test_data(str(tmp_path_factory.mktemp("testdata")))


def test_barcode_frames():
    for n in (0, 1, 178, 34385, 2 ** 16 - 1):
        img = test_data.barcode_frame(n)
        assert img.shape == (512, 512) and img.dtype == np.uint8
        assert _decode(img) == n


def test_store_mp4(folder):
    store = new_for_filename(os.path.join(folder, "store_mp4", "metadata.yaml"))
    assert (store.frame_min, store.frame_max, store.frame_count) == (0, 178, 179)
    assert store.chunks == [0, 1]
    assert store.frame_times.tolist() == [float(n + 1) for n in range(179)]
    for n in (0, 1, 42, 99, 100, 178):
        img, (fn, _) = store.get_image(n)
        assert img.shape == (512, 512) and fn == n and _decode(img) == n
    with open(os.path.join(folder, "store_mp4", "metadata.yaml")) as f:
        smd = yaml.safe_load(f)["__store"]
    assert "created_utc" not in smd and smd["class"] == "VideoImgStore" and smd["chunksize"] == 100


def test_graffiti_is_a_colour_picture(folder):
    from PIL import Image

    with Image.open(os.path.join(folder, "graffiti.png")) as im:
        assert im.mode == "RGB" and im.size == (640, 512)
        rgb = np.asarray(im)
    assert rgb.std() > 20 and len(np.unique(rgb.reshape(-1, 3), axis=0)) > 10000


def test_env_var_chooses_the_folder_and_generation_is_reused(tmp_path):
    target = tmp_path / "chosen"
    code = "from imgstore.tests import TEST_DATA_DIR; print(TEST_DATA_DIR)"
    env = dict(os.environ, IMGSTORE_TEST_DATA_DIR=str(target))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(target)
    assert sorted(os.listdir(target)) == ["graffiti.png", "store_mp4"]  # no leftovers of the atomic placing
    before = os.stat(target / "store_mp4" / "metadata.yaml").st_mtime_ns
    subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert os.stat(target / "store_mp4" / "metadata.yaml").st_mtime_ns == before


def test_unwritable_cache_falls_back(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.delenv(test_data.ENV_VAR, raising=False)
    monkeypatch.setattr(test_data, "_default_dir", lambda: str(blocker / "imgstore"))  # cannot be created
    monkeypatch.setattr(test_data, "_fallback_dir", lambda: str(tmp_path / "fallback"))
    assert test_data.test_data_dir() == str(tmp_path / "fallback")
    assert os.path.isfile(tmp_path / "fallback" / "store_mp4" / "metadata.yaml")
