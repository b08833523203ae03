"""Extra data files: our ``.extra.json`` and Motif's ``.extra_data.json`` / ``.extra_data.h5``."""

from __future__ import annotations

import datetime
import io
import json
import os
from typing import Any

import numpy as np

from ..errors import CorruptChunkError
from ..storage import Storage


class JsonCustomEncoder(json.JSONEncoder):
    """JSON encoder that also takes numpy values, sets, bytes and datetimes."""

    def default(self, obj):
        if isinstance(obj, (np.ndarray, np.number, np.bool_)):
            return obj.tolist()
        if isinstance(obj, complex):
            return [obj.real, obj.imag]
        if isinstance(obj, (set, frozenset)):
            return list(obj)
        if isinstance(obj, bytes):
            return obj.decode()
        if isinstance(obj, (datetime.datetime, datetime.date)):
            return obj.isoformat()
        return super().default(obj)


def encode_record(record: dict[str, Any]) -> str:
    return json.dumps(record, cls=JsonCustomEncoder)


def parse_json_records(data: bytes, where: str) -> list[dict[str, Any]]:
    """Records of a JSON array file.

    A writer that died leaves the array unterminated (``[{...}, {...}``, maybe
    with a torn last record): every complete record is returned.
    """
    text = data.decode("utf-8", errors="replace").strip()
    if not text:
        return []
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        doc = _salvage_records(text, where)
    if isinstance(doc, dict):
        doc = [doc]
    if not isinstance(doc, list) or not all(isinstance(r, dict) for r in doc):
        raise CorruptChunkError(f"{where}: expected a JSON array of objects")
    return doc


def _salvage_records(text: str, where: str) -> list[dict[str, Any]]:
    if not text.startswith("["):
        raise CorruptChunkError(f"{where}: not a JSON array")
    dec = json.JSONDecoder()
    out = []
    i = 1
    n = len(text)
    while i < n:
        while i < n and text[i] in " \t\r\n,":
            i += 1
        if i >= n or text[i] == "]":
            break
        try:
            obj, i = dec.raw_decode(text, i)
        except json.JSONDecodeError:
            break  # torn last record
        if not isinstance(obj, dict):
            raise CorruptChunkError(f"{where}: expected a JSON array of objects")
        out.append(obj)
    return out


def read_json_records(storage: Storage, key: str):
    """DataFrame of one of our ``.extra.json`` files (None when empty)."""
    import pandas as pd

    recs = parse_json_records(storage.read_bytes(key), storage.describe(key))
    return pd.DataFrame(recs) if recs else None


def read_motif_json(storage: Storage, key: str):
    """DataFrame of a Motif ``.extra_data.json`` (rows with frame_number < 0 dropped, sorted by frame_index)."""
    import pandas as pd

    recs = parse_json_records(storage.read_bytes(key), storage.describe(key))
    df = pd.DataFrame(recs)
    if df.empty:
        return None
    if "frame_number" in df.columns:
        df = df[df["frame_number"] >= 0]
    if df.empty:
        return None
    by = [c for c in ("frame_index", "sensor_time") if c in df.columns]
    if by:
        df = df.sort_values(by=by, kind="stable")
    return df.reset_index(drop=True)


def _attr_str(v: Any) -> str:
    if isinstance(v, bytes):
        return v.decode("ascii", errors="replace")
    if isinstance(v, np.ndarray) and v.shape == ():
        return _attr_str(v.item())
    return str(v)


def _open_h5(storage: Storage, key: str):
    import h5py

    path = storage.local_path(key)
    src = path if path is not None else io.BytesIO(storage.read_bytes(key))
    return h5py.File(src, "r")


def motif_h5_attrs(storage: Storage, key: str) -> dict[str, Any]:
    """Root ``datasets`` list and each group's attributes of a Motif ``.extra_data.h5``."""
    where = storage.describe(key)
    try:
        with _open_h5(storage, key) as f:
            attrs: dict[str, Any] = {"_datasets": [s.strip() for s in _attr_str(f.attrs["datasets"]).split(",") if s.strip()]}
            for g in f.keys():
                attrs[g] = dict(f[g].attrs)
            return attrs
    except (OSError, KeyError, ValueError) as e:
        raise CorruptChunkError(f"{where}: unreadable Motif extra data ({e.__class__.__name__}: {e})") from None


def read_motif_h5(storage: Storage, key: str):
    """DataFrame of a Motif ``.extra_data.h5``: one column per dataset column, camera sync and sample delay."""
    import pandas as pd

    where = storage.describe(key)
    try:
        with _open_h5(storage, key) as f:
            camera = np.asarray(f["camera"])
            mask = camera["frame_number"] >= 0
            datasets = [s.strip() for s in _attr_str(f.attrs["datasets"]).split(",") if s.strip()]
            dat: dict[str, Any] = {}
            for dsname in datasets:
                ds = f[dsname]
                cols = [s.strip() for s in _attr_str(ds.attrs["column_names"]).split(",")]
                arr = np.asarray(ds)
                if arr.ndim != 2 or arr.shape[0] != len(cols) or arr.shape[-1] != len(mask):
                    raise ValueError(f"dataset {dsname!r} has shape {arr.shape}, expected ({len(cols)}, {len(mask)})")
                arr = arr[..., mask]
                for i, c in enumerate(cols):
                    dat[c] = arr[i]
            for name in camera.dtype.names or ():
                dat[name] = camera[name][mask]
            dat["sample_delay"] = np.asarray(f["sample_delay"])[mask]
    except (OSError, KeyError, ValueError, TypeError, IndexError) as e:
        raise CorruptChunkError(f"{where}: unreadable Motif extra data ({e.__class__.__name__}: {e})") from None
    return pd.DataFrame(dat)


def read_extra_data_file(storage: Storage, key: str, is_motif: bool):
    """DataFrame (or None when empty) of any extra-data file kind."""
    if key.endswith(".h5"):
        df = read_motif_h5(storage, key)
        return None if df is None or df.empty else df
    if is_motif:
        return read_motif_json(storage, key)
    return read_json_records(storage, key)


class ExtraDataWriter:
    """Appends records to a chunk's ``.extra.json`` as a JSON array, durable per record.

    The file always parses with :func:`parse_json_records`; after :meth:`close`
    it is a complete JSON array, as the original writes it.
    """

    def __init__(self, storage: Storage, key: str) -> None:
        self.storage = storage
        self.key = key
        self._fp = None

    def append(self, record: dict[str, Any]) -> None:
        txt = encode_record(record)
        if self._fp is None:
            self._fp = self.storage.open_write(self.key)
            self._fp.write(b"[" + txt.encode("utf-8"))
        else:
            self._fp.write(b", " + txt.encode("utf-8"))
        self._fp.flush()

    def sync(self) -> None:
        if self._fp is not None:
            try:
                os.fsync(self._fp.fileno())
            except (OSError, AttributeError, ValueError):
                pass

    def close(self) -> None:
        if self._fp is not None:
            self._fp.write(b"]")
            self._fp.close()
            self._fp = None

    def discard(self) -> None:
        if self._fp is not None:
            self._fp.close()
            self._fp = None
            try:
                self.storage.remove(self.key)
            except OSError:
                pass
