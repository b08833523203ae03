"""Stores handed to worker processes (issue #11, item 6): plain pickle, spawn and fork, executors, datasets."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import pickle
import time

import numpy as np
import pytest

import imgstore
from imgstore.apps.synthetic import make_frame, read_frame_number

SHAPE = (48, 64)


def write(path, fmt, n=25, chunksize=10):
    with imgstore.new_for_format(fmt, basedir=str(path), imgshape=SHAPE, imgdtype=np.uint8, chunksize=chunksize) as s:
        for i in range(n):
            s.add_image(make_frame(100 + i, SHAPE), 100 + i, 1000.0 + i / 30)
    return str(path)


def used_store(path):
    """A store as a script would hand it over: read from, readers and caches warm."""
    s = imgstore.new_for_filename(path)
    s.get_image(105)
    s[0:12]
    s.get_next_image()
    return s


def frame_number_at(store, i):
    img, (fn, _) = store.get_image(None, frame_index=i)
    assert read_frame_number(img) == fn
    return fn


class FramesDataset:
    """What a PyTorch ``Dataset`` over a store looks like: DataLoader workers get it pickled."""

    def __init__(self, store):
        self.store = store

    def __len__(self):
        return len(self.store)

    def __getitem__(self, i):
        return read_frame_number(self.store[i])


def dataset_worker(dataset, indices, out):
    out.put([dataset[i] for i in indices])


@pytest.fixture(params=["h264/mkv", "mjpeg/avi", "npy", "raw"])
def store_path(request, tmp_path):
    return write(tmp_path / "s", request.param)


def test_plain_pickle_is_small_and_reopens_lazily(store_path):
    s = used_store(store_path)
    data = pickle.dumps(s)
    assert len(data) < 100_000
    t = pickle.loads(data)
    assert type(t) is type(s)
    assert "_index" not in t.__dict__  # nothing opened yet
    assert t.frame_count == 25 and t.filename == s.filename
    assert [frame_number_at(t, i) for i in (0, 24, 13)] == [100, 124, 113]
    u = pickle.loads(pickle.dumps(pickle.loads(data)))  # pickled again before any use
    assert read_frame_number(u[7]) == 107


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_multiprocessing_pools(store_path, method):
    s = used_store(store_path)
    with multiprocessing.get_context(method).Pool(2) as pool:
        got = pool.starmap(frame_number_at, [(s, i) for i in range(25)])
    assert got == list(range(100, 125))


def test_process_pool_executor(store_path):
    s = used_store(store_path)
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=ctx) as ex:
        got = list(ex.map(frame_number_at, [s] * 25, range(25)))
    assert got == list(range(100, 125))


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_dataloader_style_workers(store_path, method):
    ds = FramesDataset(used_store(store_path))
    ctx = multiprocessing.get_context(method)
    out = ctx.Queue()
    workers = [ctx.Process(target=dataset_worker, args=(ds, list(range(k, 25, 2)), out)) for k in (0, 1)]
    for w in workers:
        w.start()
    got = sorted(out.get(timeout=120) + out.get(timeout=120))
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    assert got == list(range(100, 125))


def test_disabled_decoding_travels(tmp_path):
    path = write(tmp_path / "s", "npy", n=3)
    s = imgstore.new_for_filename(path)
    s.disable_decoding()
    assert pickle.loads(pickle.dumps(s))._raw_frames


def test_a_store_open_for_writing_refuses_to_pickle(tmp_path):
    s = imgstore.new_for_format("npy", basedir=str(tmp_path / "w"), imgshape=SHAPE, imgdtype=np.uint8)
    s.add_image(make_frame(0, SHAPE), 0, 0.0)
    with pytest.raises(TypeError, match="open for writing cannot be pickled"):
        pickle.dumps(s)
    s.close()
    assert imgstore.new_for_filename(str(tmp_path / "w")).frame_count == 1


def test_an_unpickled_store_whose_folder_is_gone_says_so(tmp_path):
    import shutil

    path = write(tmp_path / "s", "npy", n=2)
    data = pickle.dumps(imgstore.new_for_filename(path))
    shutil.rmtree(path)
    t = pickle.loads(data)
    with pytest.raises(imgstore.ImgStoreError, match="metadata.yaml"):
        t.frame_count


def test_a_forked_child_never_frees_the_parents_threaded_decoders(tmp_path):
    """Garbage that holds a reader whose decoder has threads (a store dropped without close(), kept
    in a cycle) must not be freed in a forked child: FFmpeg would join threads that stayed in the
    parent and the child would hang (it did, in Pool workers)."""
    import gc
    import os

    path = write(tmp_path / "s", "h264/mkv", n=25)
    s = imgstore.new_for_filename(path)
    [read_frame_number(s.get_image(None, frame_index=i)[0]) for i in (3, 17, 9)]  # walkers with decoders
    s.cycle = s  # garbage only the collector frees
    gc.disable()
    try:
        del s
        pid = os.fork()
        if pid == 0:  # the child: collect the garbage, then exit
            gc.collect()
            os._exit(0)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.05)
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung freeing the parent's decoders")
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        gc.enable()
        gc.collect()


def test_a_raw_video_file_pickles_as_its_arguments(tmp_path):
    frames = np.stack([make_frame(i, SHAPE) for i in range(6)])
    frames.tofile(str(tmp_path / "rec.bin"))
    v = imgstore.open_raw_video(str(tmp_path / "rec.bin"), frame_shape=SHAPE, dtype="uint8", sampling_frequency=50.0)
    w = pickle.loads(pickle.dumps(v))
    assert [read_frame_number(w[i]) for i in range(6)] == list(range(6)) and w.get_sampling_frequency() == 50.0
