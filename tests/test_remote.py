"""Stores read over HTTP (a Range-capable server on 127.0.0.1), S3 (moto's server) and memory://."""

from __future__ import annotations

import os
import shutil
import sys
import time

import numpy as np
import pytest

import imgstore
from imgstore.apps.synthetic import make_frame, read_frame_number

sys.path.insert(0, os.path.dirname(__file__))
from rangeserver import RangeServer  # noqa: E402

SHAPE = (96, 128)
FORMATS = ["npy", "png", "raw", "mjpeg/avi", "h264/mkv", "avc1/mp4"]


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("remote")
    numbers = {}
    for fmt in FORMATS:
        d = root / fmt.replace("/", "_")
        nums = [1000 + 2 * i for i in range(35)]
        with imgstore.new_for_format(fmt, basedir=str(d), imgshape=SHAPE, imgdtype=np.uint8, chunksize=12) as s:
            for i, n in enumerate(nums):
                s.add_image(make_frame(n, SHAPE), n, 1.7e9 + i / 30)
                if i % 10 == 3:
                    s.add_extra_data(i=i)
        numbers[fmt] = nums
    return str(root), numbers


@pytest.fixture(scope="module")
def server(stores):
    with RangeServer(stores[0]) as srv:
        yield srv


def check_store(s, nums):
    assert s.frame_count == len(nums) and s.chunks == [0, 1, 2]
    rng = np.random.default_rng(0)
    for i in rng.permutation(len(nums))[:12]:
        img, (fn, _) = s.get_image(nums[i])
        assert fn == nums[i] and read_frame_number(img) == nums[i]
    assert [read_frame_number(f) for f in s[10:15]] == nums[10:15]
    assert len(s.get_extra_data()) == 4


@pytest.mark.parametrize("fmt", FORMATS)
def test_http_store_reads_pixel_exact(stores, server, fmt):
    root, numbers = stores
    name = fmt.replace("/", "_")
    for url in (f"{server.url}/{name}", f"{server.url}/{name}/metadata.yaml"):
        s = imgstore.new_for_filename(url)
        assert s.filename.startswith("http://127.0.0.1")
        check_store(s, numbers[fmt])
    # nothing was written back to the store folder by reading it
    assert not any(n.startswith(".imgstore") for n in os.listdir(os.path.join(root, name)))


def test_http_directory_store_costs_one_request_per_frame(stores, server):
    root, numbers = stores
    s = imgstore.new_for_filename(f"{server.url}/png")
    s.get_image(numbers["png"][0])  # loads chunk 0
    server.stats.reset()
    for n in numbers["png"][1:12]:
        s.get_image(n)
    assert server.stats.requests == 11
    sizes = sum(os.path.getsize(os.path.join(root, "png", "000000", "%06d.png" % i)) for i in range(1, 12))
    assert server.stats.bytes == sizes


def test_server_errors_are_clear_and_never_a_wrong_frame(stores, server):
    _, numbers = stores
    s = imgstore.new_for_filename(f"{server.url}/npy", storage_options={"timeout": 2})
    server.faults["000001/000003.npy"] = "error"
    try:
        with pytest.raises(imgstore.ImgStoreError) as e:
            s.get_image(numbers["npy"][15])
        assert "000003.npy" in str(e.value)
        img, (fn, _) = s.get_image(numbers["npy"][16])  # the rest stays readable
        assert read_frame_number(img) == fn
    finally:
        server.faults.clear()


def test_stalled_server_times_out(stores, server):
    _, numbers = stores
    s = imgstore.new_for_filename(f"{server.url}/png", storage_options={"timeout": 1.5})
    server.faults["000002/000001.png"] = "stall"
    try:
        t0 = time.monotonic()
        with pytest.raises(imgstore.ImgStoreError) as e:
            s.get_image(numbers["png"][25])
        assert time.monotonic() - t0 < 20
        assert "000001.png" in str(e.value)
    finally:
        server.faults.clear()


def test_missing_remote_store_is_a_clear_error(server):
    with pytest.raises(imgstore.StoreNotFoundError) as e:
        imgstore.new_for_filename(f"{server.url}/nothing-here")
    assert "metadata.yaml" in str(e.value)


def test_memory_filesystem(stores):
    import fsspec

    root, numbers = stores
    fs = fsspec.filesystem("memory")
    src = os.path.join(root, "h264_mkv")
    for name in os.listdir(src):
        with open(os.path.join(src, name), "rb") as f:
            fs.pipe_file(f"/mstore/{name}", f.read())
    check_store(imgstore.new_for_filename("memory://mstore"), numbers["h264/mkv"])


def test_s3_store_on_a_local_server(stores):
    moto_server = pytest.importorskip("moto.server")
    s3fs = pytest.importorskip("s3fs")
    root, numbers = stores
    srv = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    srv.start()
    try:
        host, port = srv.get_host_and_port()
        so = {"endpoint_url": f"http://{host}:{port}", "key": "test", "secret": "test"}
        fs = s3fs.S3FileSystem(**so)
        fs.mkdir("bucket")
        for fmt in ("png", "h264/mkv"):
            name = fmt.replace("/", "_")
            fs.put(os.path.join(root, name), f"bucket/{name}", recursive=True)
            check_store(imgstore.new_for_filename(f"s3://bucket/{name}", storage_options=so), numbers[fmt])
    finally:
        srv.stop()
