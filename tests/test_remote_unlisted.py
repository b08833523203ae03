"""Stores on a static HTTP server that lists no directories (S3 website hosting, nginx without
autoindex, a CDN): chunks are found from the served frame index cache, else by probing chunk index
names; a store whose chunks cannot be found is an error, never an empty store.

Against ``rangeserver.RangeServer(listings=False)`` on 127.0.0.1, which answers 404 to every
directory path and counts the requests it serves.
"""

from __future__ import annotations

import collections
import os
import shutil
import sys

import numpy as np
import pytest

import imgstore
from imgstore.apps.synthetic import make_frame, read_frame_number
from imgstore.errors import RemoteStorageError
from imgstore.format.layout import Layout
from imgstore.index_cache import PROBE_BATCH, build_index
from imgstore.storage import LocalStorage

sys.path.insert(0, os.path.dirname(__file__))
from rangeserver import RangeServer  # noqa: E402

SHAPE = (48, 64)
N = 100  # one frame per chunk: 100 chunks
LAYOUTS = {"npy": Layout("directory", frame_ext="npy"), "mjpeg/avi": Layout("video", extension=".avi")}
STORE_CLASS = {"npy": imgstore.DirectoryImgStore, "mjpeg/avi": imgstore.VideoImgStore}


def _number(i: int) -> int:
    return 3000 + 7 * i


def _write(path, fmt: str, n: int) -> None:
    with imgstore.new_for_format(fmt, basedir=str(path), imgshape=SHAPE, imgdtype=np.uint8, chunksize=1) as s:
        for i in range(n):
            s.add_image(make_frame(_number(i), SHAPE), _number(i), 1.7e9 + i / 30)
            if i % 20 == 0:
                s.add_extra_data(i=i)


def _name(fmt: str, variant: str = "") -> str:
    return fmt.replace("/", "_") + variant


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """``npy``, ``mjpeg_avi``: 100-chunk stores; ``*_cached``: the same with the frame index cache beside them;
    ``*_nochunk0``: without chunk 0's index; ``*_empty``: no frames."""
    root = tmp_path_factory.mktemp("unlisted")
    for fmt, layout in LAYOUTS.items():
        src = root / _name(fmt)
        _write(src, fmt, N)
        cached = root / _name(fmt, "_cached")
        shutil.copytree(src, cached)
        build_index(LocalStorage(str(cached)), layout, min_frames_to_cache=0)  # writes .imgstore-frameindex
        assert (cached / ".imgstore-frameindex").exists()
        broken = root / _name(fmt, "_nochunk0")
        shutil.copytree(src, broken)
        os.remove(broken / (layout.index_base(0) + ".npz"))
        _write(root / _name(fmt, "_empty"), fmt, 0)
    return root


@pytest.fixture(scope="module")
def server(root):
    with RangeServer(str(root), listings=False) as srv:
        yield srv


@pytest.fixture(scope="module")
def listing_server(root):
    with RangeServer(str(root)) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _no_user_cache(tmp_path, monkeypatch):
    """A per-user cache left by another test must not stand in for what the server holds."""
    monkeypatch.setenv("IMGSTORE_CACHE_DIR", str(tmp_path / "user-cache"))


def _requested(srv) -> collections.Counter:
    return collections.Counter(path for _, path, _ in srv.stats.log)


def _check_frames(s, local_path) -> None:
    """Every frame number and time as written; a sample of frames pixel-exact (as read locally)."""
    assert s.frame_count == N and s.chunks == list(range(N))
    np.testing.assert_array_equal(s.frame_numbers, [_number(i) for i in range(N)])
    np.testing.assert_array_equal(s.frame_times, [1.7e9 + i / 30 for i in range(N)])
    local = imgstore.new_for_filename(str(local_path))
    for i in [0, 1, 2, 37, 63, 98, N - 1]:
        img, (fn, _) = s.get_image(_number(i))
        assert fn == _number(i) and read_frame_number(img) == fn
        np.testing.assert_array_equal(img, local.get_image(fn)[0])
    local.close()


@pytest.mark.parametrize("fmt", list(LAYOUTS))
def test_chunks_are_probed_without_a_listing(root, server, fmt):
    name = _name(fmt)
    server.stats.reset()
    s = imgstore.new_for_filename(f"{server.url}/{name}")
    opened = server.stats.requests
    requested = _requested(server)
    assert s.frame_count == N
    assert opened <= N + 10
    # each chunk index fetched once (not a stat and then a read), nothing past the batch of the first gap
    index_keys = [f"/{name}/{LAYOUTS[fmt].index_base(c)}.npz" for c in range(N + PROBE_BATCH)]
    assert all(requested[k] == 1 for k in index_keys[:N])
    assert sum(requested[k] for k in index_keys[N:]) <= PROBE_BATCH
    assert not any(k.endswith(".yaml") and "metadata" not in k for k in requested)
    _check_frames(s, root / name)
    s.close()


@pytest.mark.parametrize("fmt", list(LAYOUTS))
def test_served_frame_index_cache_opens_in_three_requests(root, server, fmt):
    name = _name(fmt, "_cached")
    server.stats.reset()
    s = STORE_CLASS[fmt](basedir=f"{server.url}/{name}", mode="r")
    assert server.stats.requests <= 3, server.stats.log  # metadata.yaml, the listing refused, the cache file
    assert set(_requested(server)) == {f"/{name}/metadata.yaml", f"/{name}", f"/{name}/.imgstore-frameindex"}
    _check_frames(s, root / name)
    s.close()
    # new_for_filename reads metadata.yaml once, to choose the store class and to open it
    server.stats.reset()
    imgstore.new_for_filename(f"{server.url}/{name}").close()
    assert server.stats.requests <= 3, server.stats.log


@pytest.mark.parametrize("fmt", list(LAYOUTS))
def test_store_whose_chunks_cannot_be_found_is_an_error(server, fmt):
    url = f"{server.url}/{_name(fmt, '_nochunk0')}"
    with pytest.raises(RemoteStorageError) as e:  # an ImgStoreError and an OSError
        imgstore.new_for_filename(url)
    msg = str(e.value)
    assert url in msg and "lists no folders" in msg and LAYOUTS[fmt].index_base(0) + ".npz" in msg


def test_server_error_while_probing_is_an_error_not_the_end_of_the_store(server):
    """A chunk index the server fails to send (HTTP 500) is not taken for the first missing chunk."""
    server.faults["/npy/000042/index.npz"] = "error"
    try:
        with pytest.raises(RemoteStorageError) as e:
            imgstore.new_for_filename(f"{server.url}/npy")
        assert f"{server.url}/npy/000042/index.npz" in str(e.value)
    finally:
        server.faults.clear()


def test_same_store_on_a_listing_server_opens_without_its_first_chunk(listing_server):
    """The listing shows the chunks: chunk 0 is skipped (no index), as for a local store."""
    s = imgstore.new_for_filename(f"{listing_server.url}/npy_nochunk0")
    assert s.frame_count == N - 1 and s.chunks == list(range(1, N))


@pytest.mark.parametrize("fmt", list(LAYOUTS))
def test_empty_store_opens_empty_with_and_without_listings(server, listing_server, fmt):
    for srv in (server, listing_server):
        s = imgstore.new_for_filename(f"{srv.url}/{_name(fmt, '_empty')}")
        assert s.frame_count == 0 and s.chunks == []


def test_server_answering_every_path_with_a_page_is_probed_to_the_end(root):
    """Some hosts send a page with status 200 for a missing path: that is not a chunk index."""
    with RangeServer(str(root), listings=False, not_found_status=200) as srv:
        s = imgstore.new_for_filename(f"{srv.url}/npy")
        assert s.frame_count == N
        assert srv.stats.requests <= N + 10
        img, (fn, _) = s.get_image(_number(N - 1))
        assert read_frame_number(img) == fn == _number(N - 1)


def test_extra_data_without_a_listing(server):
    s = imgstore.new_for_filename(f"{server.url}/npy")
    assert s.has_extra_data
    df = s.get_extra_data()
    assert list(df["i"]) == [0, 20, 40, 60, 80]
    assert list(df["frame_number"]) == [_number(i) for i in (0, 20, 40, 60, 80)]


def _hide_chunks(path, layout, chunks) -> None:
    for c in chunks:
        for key in (layout.chunk_key(c), layout.index_base(c) + ".npz"):
            p = os.path.join(path, key)
            if os.path.exists(p):
                os.rename(p, p + ".hidden")


def _show_chunks(path, layout, chunks) -> None:
    for c in chunks:
        for key in (layout.chunk_key(c), layout.index_base(c) + ".npz"):
            p = os.path.join(path, key)
            if os.path.exists(p + ".hidden"):
                os.rename(p + ".hidden", p)


@pytest.mark.parametrize("fmt", list(LAYOUTS))
@pytest.mark.parametrize("with_cache", [False, True], ids=["probed", "served-cache"])
def test_refresh_finds_chunks_added_since_opening(tmp_path, fmt, with_cache):
    """Chunks 10..19 appear on the server after the store was opened (from a cache written before them,
    or by probing); refresh() finds them."""
    layout = LAYOUTS[fmt]
    path = tmp_path / "growing"
    _write(path, fmt, 20)
    _hide_chunks(path, layout, range(10, 20))
    if with_cache:
        build_index(LocalStorage(str(path)), layout, min_frames_to_cache=0)
    with RangeServer(str(tmp_path), listings=False) as srv:
        s = imgstore.new_for_filename(f"{srv.url}/growing")
        assert s.frame_count == 10
        assert s.refresh() == 0
        _show_chunks(path, layout, range(10, 20))
        srv.stats.reset()
        assert s.refresh() == 10
        # the listing refused, then probes from the last chunk known (9) on: not from chunk 0
        assert srv.stats.requests <= 1 + 2 * PROBE_BATCH, srv.stats.log
        assert f"/growing/{layout.index_base(0)}.npz" not in _requested(srv)
        assert s.frame_count == 20 and s.chunks == list(range(20))
        np.testing.assert_array_equal(s.frame_numbers, [_number(i) for i in range(20)])
        for i in (9, 10, 19):
            img, (fn, _) = s.get_image(_number(i))
            assert fn == _number(i) and read_frame_number(img) == fn
