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


def _decode_text(data: bytes, where: str) -> str:
    if data.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte order mark
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.reason == "unexpected end of data" and e.end == len(data):
            return data[: e.start].decode("utf-8")  # a writer died inside a multi-byte character
        raise CorruptChunkError(f"{where}: not UTF-8 text (bad byte at offset {e.start})") from None


def parse_json_records(data: bytes, where: str) -> list[dict[str, Any]]:
    """Records of a JSON array file.

    A writer that died leaves the array unterminated (``[{...}, {...}``, maybe
    with a torn last record): every complete record is returned. Damage
    anywhere else (a broken record followed by more text, text after the
    closing bracket) raises CorruptChunkError rather than silently dropping
    the records after it.
    """
    text = _decode_text(data, where).strip()
    if not text:
        return []
    try:
        doc = json.loads(text)
    except RecursionError:
        raise CorruptChunkError(f"{where}: JSON nested too deeply") from None
    except json.JSONDecodeError:
        doc = _salvage_records(text, where)
    if isinstance(doc, dict):
        raise CorruptChunkError(f"{where}: holds a JSON object; extra data is a JSON array of records "
                                f"([{{...}}, {{...}}])")
    if not isinstance(doc, list) or not all(isinstance(r, dict) for r in doc):
        raise CorruptChunkError(f"{where}: expected a JSON array of objects")
    return doc


_JSON_WS = " \t\r\n"


def _salvage_records(text: str, where: str) -> list[dict[str, Any]]:
    """The complete records of an array cut short by a writer that died (see parse_json_records)."""
    if not text.startswith("["):
        raise CorruptChunkError(f"{where}: not a JSON array")
    dec = json.JSONDecoder()
    out: list[dict[str, Any]] = []
    i, n = 1, len(text)
    while True:
        while i < n and text[i] in _JSON_WS:
            i += 1
        if i >= n:
            return out  # cut between records
        if text[i] == "]":
            if text[i + 1:].strip(_JSON_WS):
                raise CorruptChunkError(f"{where}: data after the end of the JSON array (offset {i + 1})")
            return out
        if out:
            if text[i] != ",":
                raise CorruptChunkError(f"{where}: corrupt JSON array: expected ',' at offset {i}")
            i += 1
            while i < n and text[i] in _JSON_WS:
                i += 1
            if i >= n:
                return out  # cut after a comma
        try:
            obj, i2 = dec.raw_decode(text, i)
        except RecursionError:
            raise CorruptChunkError(f"{where}: JSON nested too deeply") from None
        except json.JSONDecodeError:
            if _is_json_prefix(text, i):
                return out  # the torn last record of a writer that died
            raise CorruptChunkError(f"{where}: corrupt JSON record at offset {i}") from None
        if not isinstance(obj, dict):
            raise CorruptChunkError(f"{where}: expected a JSON array of objects")
        out.append(obj)
        i = i2


def _scan_string(t: str, i: int) -> int | None:
    """End of the JSON string starting at t[i] ('"'): index after it, None if t ends inside it, -1 if invalid."""
    n = len(t)
    k = i + 1
    while k < n:
        ch = t[k]
        if ch == '"':
            return k + 1
        if ch == "\\":
            if k + 1 >= n:
                return None
            e = t[k + 1]
            if e in '"\\/bfnrt':
                k += 2
                continue
            if e == "u":
                hexpart = t[k + 2: k + 6]
                if not all(h in "0123456789abcdefABCDEF" for h in hexpart):
                    return -1
                if len(hexpart) < 4:
                    return None
                k += 6
                continue
            return -1
        if ord(ch) < 0x20:
            return -1
        k += 1
    return None


#: JSON number automaton: state -> (characters, next state)
_NUM = {
    0: (("-", 1), ("0", 2), ("123456789", 3)),
    1: (("0", 2), ("123456789", 3)),
    2: ((".", 4), ("eE", 6)),
    3: (("0123456789", 3), (".", 4), ("eE", 6)),
    4: (("0123456789", 5),),
    5: (("0123456789", 5), ("eE", 6)),
    6: (("+-", 7), ("0123456789", 8)),
    7: (("0123456789", 8),),
    8: (("0123456789", 8),),
}
_NUM_ACCEPT = (2, 3, 5, 8)
_LITERALS = ("true", "false", "null", "NaN", "Infinity", "-Infinity")


def _scan_scalar(t: str, i: int) -> int | None:
    """End of the literal or number at t[i]: index after it, None if t ends inside it, -1 if invalid."""
    n = len(t)
    if t[i] in "tfnNI" or t.startswith("-I", i):
        for lit in _LITERALS:
            seg = t[i: i + len(lit)]
            if seg == lit:
                return i + len(lit)
            if i + len(seg) == n and lit.startswith(seg):
                return None
        return -1
    state, k = 0, i
    while k < n:
        ch = t[k]
        for chars, nxt in _NUM[state]:
            if ch in chars:
                state = nxt
                break
        else:
            break
        k += 1
    if k == i:
        return -1
    if k == n:
        return None
    return k if state in _NUM_ACCEPT else -1


def _is_json_prefix(t: str, i: int) -> bool:
    """True if t[i:] is the beginning of a JSON value cut short (what a writer that died leaves)."""
    n = len(t)
    stack: list[str] = []
    state = "value"  # value | first_value | key | first_key | colon | after
    while i < n:
        c = t[i]
        if c in _JSON_WS:
            i += 1
            continue
        if state == "after":
            if not stack:
                return False  # a complete value followed by more text
            if c == ",":
                state = "key" if stack[-1] == "{" else "value"
            elif c == ("}" if stack[-1] == "{" else "]"):
                stack.pop()
            else:
                return False
            i += 1
            continue
        if state == "colon":
            if c != ":":
                return False
            state = "value"
            i += 1
            continue
        if state in ("key", "first_key"):
            if c == "}" and state == "first_key":
                stack.pop()
                state = "after"
                i += 1
                continue
            if c != '"':
                return False
            j = _scan_string(t, i)
            if j is None:
                return True
            if j < 0:
                return False
            i, state = j, "colon"
            continue
        if c == "]" and state == "first_value":
            stack.pop()
            state = "after"
            i += 1
            continue
        if c in "{[":
            stack.append(c)
            state = "first_key" if c == "{" else "first_value"
            i += 1
            continue
        j = _scan_string(t, i) if c == '"' else _scan_scalar(t, i)
        if j is None:
            return True
        if j < 0:
            return False
        i, state = j, "after"
    return True


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
