"""``metadata.yaml``: the store metadata (``__store``) and the user metadata."""

from __future__ import annotations

import datetime
import re
import time
import uuid as _uuid
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from ..constants import STORE_MD_FILENAME, STORE_MD_KEY
from ..errors import StoreFormatError
from ..storage import Storage

STORE_VERSION = 2

#: ``class`` values that read as a video store
VIDEO_CLASSES = ("VideoImgStore", "VideoImgStoreFFMPEG")
DIRECTORY_CLASSES = ("DirectoryImgStore",)


@dataclass
class StoreMetadata:
    """The parsed contents of ``metadata.yaml``."""

    store: dict[str, Any]
    user: dict[str, Any] = field(default_factory=dict)
    #: the file it was read from (for error messages)
    where: str = field(default="", compare=False, repr=False)

    @property
    def class_name(self) -> str:
        return str(self.store.get("class", ""))

    @property
    def is_video(self) -> bool:
        return self.class_name in VIDEO_CLASSES

    @property
    def format(self) -> str:
        return str(self.store.get("format") or "")

    @property
    def imgshape(self) -> tuple[int, ...]:
        return tuple(int(x) for x in self.store["imgshape"])

    @property
    def imgdtype(self) -> str:
        return str(self.store["imgdtype"])

    @property
    def chunksize(self) -> int:
        return int(self.store["chunksize"])

    @property
    def encoding(self) -> str | None:
        return self.store.get("encoding") or None

    @property
    def uuid(self) -> str | None:
        return self.store.get("uuid")

    @property
    def extension(self) -> str:
        """Chunk file extension of a video store (with the original's fallbacks)."""
        ext = self.store.get("extension")
        if ext:
            return str(ext)
        return ".avi" if self.format == "mjpeg" else ".mp4"

    def to_yaml_dict(self) -> dict[str, Any]:
        out = dict(self.user)
        out[STORE_MD_KEY] = dict(self.store)
        return out


#: frame dimensions beyond this are not a camera's: the metadata is damaged
MAX_IMG_DIM = 1 << 20

_FORMAT_RE = re.compile(r"^[A-Za-z0-9_.+-]+(/[A-Za-z0-9_.+-]+)?$")
_EXTENSION_RE = re.compile(r"^\.?[A-Za-z0-9_+-]+(\.[A-Za-z0-9_+-]+)*$")


def parse_metadata(text: str | bytes, where: str) -> StoreMetadata:
    """Parse and validate ``metadata.yaml`` text; *where* names the file in errors."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise StoreFormatError(f"{where}: not valid YAML ({e.__class__.__name__}: {e})") from None
    except RecursionError:
        raise StoreFormatError(f"{where}: not valid YAML (nested too deeply)") from None
    except (ValueError, TypeError, AttributeError, OverflowError, UnicodeError) as e:
        # safe_load's constructors: e.g. a timestamp with month 13, '!!int abc', an int of 5000 digits
        raise StoreFormatError(f"{where}: not valid YAML ({e.__class__.__name__}: {e})") from None
    if not isinstance(doc, dict):
        raise StoreFormatError(f"{where}: expected a YAML mapping, found {type(doc).__name__}")
    smd = doc.pop(STORE_MD_KEY, None)
    if not isinstance(smd, dict):
        raise StoreFormatError(f"{where}: missing the '{STORE_MD_KEY}' mapping of store metadata")
    for key in ("class", "imgshape", "imgdtype", "chunksize"):
        if key not in smd:
            raise StoreFormatError(f"{where}: store metadata lacks '{key}'")
    if not isinstance(smd["class"], str):
        raise StoreFormatError(f"{where}: store class {smd['class']!r} is not a name")
    shape = smd["imgshape"]
    if (not isinstance(shape, (list, tuple)) or len(shape) not in (2, 3)
            or not all(isinstance(x, int) and not isinstance(x, bool) and 0 < x <= MAX_IMG_DIM for x in shape)
            or (len(shape) == 3 and shape[2] not in (1, 3, 4))):
        raise StoreFormatError(f"{where}: imgshape {shape!r:.100} is not [h, w] or [h, w, 3]")
    try:
        import numpy as np

        if not isinstance(smd["imgdtype"], str):
            raise TypeError
        dt = np.dtype(smd["imgdtype"])
        if dt.kind not in "biuf" or dt.hasobject or dt.shape or dt.names:
            raise TypeError
    except (TypeError, ValueError):
        raise StoreFormatError(f"{where}: imgdtype {smd['imgdtype']!r:.100} is not a numeric dtype") from None
    cs = smd["chunksize"]
    if not isinstance(cs, int) or isinstance(cs, bool) or cs <= 0:
        raise StoreFormatError(f"{where}: chunksize {cs!r:.100} is not a positive integer")
    version = smd.get("version", STORE_VERSION)
    if version != STORE_VERSION or isinstance(version, bool):
        raise StoreFormatError(f"{where}: incompatible store version {version!r:.100} (can read {STORE_VERSION})")
    fmt = smd.get("format")
    if fmt is not None and (not isinstance(fmt, str) or not _FORMAT_RE.match(fmt) or ".." in fmt):
        raise StoreFormatError(f"{where}: format {fmt!r:.100} is not a format name")
    enc = smd.get("encoding")
    if enc is not None and not isinstance(enc, str):
        raise StoreFormatError(f"{where}: encoding {enc!r:.100} is not an encoding name")
    ext = smd.get("extension")
    if ext is not None and ext != "" and (not isinstance(ext, str) or not _EXTENSION_RE.match(ext)):
        # it names the chunk files: no path separators, no '..'
        raise StoreFormatError(f"{where}: extension {ext!r:.100} is not a file extension")
    return StoreMetadata(store=smd, user=doc, where=where)


def read_metadata(storage: Storage) -> StoreMetadata:
    """Read ``metadata.yaml`` of the store at *storage*."""
    where = storage.describe(STORE_MD_FILENAME)
    try:
        data = storage.read_bytes(STORE_MD_FILENAME)
    except FileNotFoundError:
        from ..errors import StoreNotFoundError

        raise StoreNotFoundError(f"{where}: no such file (not an imgstore)") from None
    except (IsADirectoryError, NotADirectoryError) as e:
        raise StoreFormatError(f"{where}: not a file ({e.strerror})") from None
    return parse_metadata(data, where)


def write_metadata(storage: Storage, md: StoreMetadata) -> None:
    """Write ``metadata.yaml`` atomically, in the layout the original writes."""
    text = yaml.safe_dump(md.to_yaml_dict())
    storage.write_bytes(STORE_MD_FILENAME, text.encode("utf-8"))


def new_store_metadata(*, class_name: str, fmt: str, imgshape, imgdtype: str, chunksize: int,
                       encoding: str | None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``__store`` mapping for a new store (same keys and types as the original)."""
    created = datetime.datetime.now(datetime.timezone.utc)
    smd = {
        "imgshape": [int(x) for x in imgshape],
        "imgdtype": str(imgdtype),
        "chunksize": int(chunksize),
        "format": fmt,
        "class": class_name,
        "version": STORE_VERSION,
        "encoding": encoding,
        "created_utc": created.replace(tzinfo=None).isoformat(),
        "timezone_local": local_timezone_name(),
        "uuid": _uuid.uuid4().hex,
    }
    if extra:
        smd.update(extra)
    return smd


def local_timezone_name() -> str:
    """IANA name of this machine's time zone ('UTC' if it cannot be told)."""
    try:
        import tzlocal

        name = tzlocal.get_localzone_name()
        if name:
            ZoneInfo(name)
            return name
    except Exception:
        pass
    return "UTC"


def _zone(name: Any) -> ZoneInfo | None:
    try:
        return ZoneInfo(str(name))
    except Exception:
        return None


def created_datetime(md: StoreMetadata, store_folder_name: str,
                     metadata_mtime: float | None) -> tuple[datetime.datetime, ZoneInfo]:
    """``(created_utc, timezone)`` as the original computes it, including its fallbacks for old stores."""
    smd = md.store
    if "created_utc" in smd and smd["created_utc"]:
        from dateutil import parser as _dtparser

        where = (md.where or STORE_MD_FILENAME) + ": "
        try:
            dt = _dtparser.parse(str(smd["created_utc"]))
            dt = dt.replace(tzinfo=datetime.timezone.utc) if dt.tzinfo is None else dt.astimezone(
                datetime.timezone.utc)
        except (ValueError, OverflowError, TypeError):
            raise StoreFormatError(f"{where}created_utc {smd['created_utc']!r:.100} is not an ISO-8601 time") from None
        tz = _zone(smd.get("timezone_local")) or ZoneInfo("UTC")
        return dt, tz

    tz = _zone(md.user.get("timezone")) if "timezone" in md.user else None
    if tz is None:
        tz = _zone(local_timezone_name()) or ZoneInfo("UTC")
    m = re.match(r"(.*)(20\d{6}_\d{6}).*", store_folder_name)
    if m:
        tt = time.strptime(m.group(2), "%Y%m%d_%H%M%S")
        dt = datetime.datetime(*tt[:6]).replace(tzinfo=tz).astimezone(datetime.timezone.utc)
        return dt, tz
    ts = metadata_mtime if metadata_mtime is not None else time.time()
    dt = datetime.datetime.fromtimestamp(ts, tz=datetime.timezone.utc)
    return dt, tz
