"""``store.to_dask()``: a lazy dask array, one block per chunk, read where the graph runs."""

import numpy as np
import pytest

import imgstore

da = pytest.importorskip("dask.array")


@pytest.fixture
def store_path(tmp_path):
    path = str(tmp_path / "s")
    s = imgstore.new_for_format("npy", basedir=path, imgshape=(8, 6), imgdtype=np.uint8, chunksize=4)
    for i in range(10):
        s.add_image(np.full((8, 6), i, np.uint8), 100 + i, 1000.0 + i)
    s.close()
    return path


def test_a_store_as_a_dask_array(store_path):
    store = imgstore.new_for_filename(store_path)
    arr = store.to_dask()
    assert isinstance(arr, da.Array)
    assert arr.shape == (10, 8, 6) and arr.dtype == np.uint8
    assert arr.numblocks == (3, 1, 1)  # one block per chunk
    assert np.array_equal(arr.compute(), store[:])
    assert arr[:, 0, 0].compute().tolist() == list(range(10))


def test_by_path_and_under_its_old_name(store_path):
    from imgstore.apps.dask_array import to_dask_array as old
    from imgstore.integrations.dask import to_dask_array

    assert old is to_dask_array
    assert int(to_dask_array(store_path).sum().compute()) == 8 * 6 * sum(range(10))


def test_a_store_open_for_writing_has_no_dask_array(tmp_path):
    s = imgstore.new_for_format("npy", basedir=str(tmp_path / "w"), imgshape=(8, 6), imgdtype=np.uint8)
    with pytest.raises(imgstore.ImgStoreError, match="writing"):
        s.to_dask()
    s.close()
