"""Hostile-input fuzz cases for imgstore: the case list, the damage done, the expected outcome, the probe.

Used by ``test_fuzz.py``, which runs the cases in worker subprocesses (``python fuzz_cases.py --worker
CASES.json``) so that an interpreter crash or a hang in C code is seen as the failure of one case
instead of killing the test run.

Every case copies a small pristine store, damages it (or writes an unusual but valid one) and probes
it through the public API. Each operation must either return correct data (checked against a
brute-force expectation; frames pixel-checked by the barcode they carry) or raise an
``imgstore.ImgStoreError`` whose message names the offending file. Outcome of a case:

* ``correct``       every operation returned correct data
* ``clean_error``   some operations raised a clean ImgStoreError naming the file, the rest were correct
* ``undetectable``  a lossy frame (jpg / video) was damaged in a way no decoder can detect; the frame
                    came back with the store's shape and dtype but other pixels
* ``fail``          wrong data, a bare exception, an error not naming the file, a hang or a crash
* ``known_bug``     a failure matching a bug reported outside ``src/imgstore/format/`` (see KNOWN_BUGS)
* ``skip``          the store format is not supported by this installation (yet)

Everything is deterministic: the random choices come from ``random.Random`` seeded by the case id.
"""

from __future__ import annotations

import functools
from fractions import Fraction
import io
import json
import math
import os
import pickle
import random
import re
import shutil
import signal
import stat
import sys
import tempfile
import traceback
import zipfile
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

T0 = 1_700_000_000.0
GRAY = (48, 64)
COLOR = (48, 64, 3)
CHUNKSIZE = 4
NFRAMES = 10  # chunks of 4, 4, 2
TARGET_CHUNK = 1  # the chunk damaged by most cases; chunks 0 and 2 must stay readable
CASE_TIMEOUT = 20  # seconds per case, enforced in the worker with signal.alarm
DIR_FORMATS = ("npy", "png", "jpg", "raw")
VIDEO_FORMATS = ("mjpeg/avi", "h264/mkv", "avc1/mp4", "ffv1/mkv")
EXACT_FORMATS = ("npy", "png", "raw")  # pixels must come back bit-exact
LOSSY_FORMATS = ("jpg",) + VIDEO_FORMATS  # damage to entropy-coded data may be undetectable

#: failures that match a bug outside src/imgstore/format/ (reported, not fixable from the parsers):
#: (bug id, regex on a failure detail, regex on the case id). A case whose every failure matches one
#: is counted ``known_bug`` (an xfail; IMGSTORE_FUZZ_STRICT=1 makes them failures). Remove an entry
#: when its bug is fixed: the cases then have to pass.
KNOWN_BUGS: list[tuple[str, str, str]] = []  # all reported bugs are fixed; add new ones here

# ---------------------------------------------------------------------------------------------------
# cases
# ---------------------------------------------------------------------------------------------------
@dataclass
class Case:
    id: str
    cat: str
    fmt: str
    color: bool
    kind: str
    params: dict = field(default_factory=dict)

    @property
    def timeout(self) -> int:
        if self.cat == "selfcheck" or (self.kind == "fr_replace" and self.params.get("v") == "fifo"):
            return 3
        return CASE_TIMEOUT

    @functools.cached_property
    def rng(self) -> random.Random:
        return random.Random("imgstore-fuzz:" + self.id)


def _templates(formats=DIR_FORMATS):
    return [(f, c) for f in formats for c in (False, True)]


MD_VALUES = {
    "imgshape": [None, "abc", 48, [], [48], [48, 64, 3, 1], [48.0, 64.0], ["48", "64"], [-48, 64], [0, 64],
                 [10 ** 30, 64], [96, 128], [24, 32], [48, 64, 3], [48, 64, 2], {"h": 48}, [True, 64],
                 [float("nan"), 64], [48, 64, [3]], "[48, 64]"],
    "imgdtype": [None, "", 8, "uint9", "object", "O", "U8", "S4", "V8", "datetime64[s]", "complex64",
                 "uint8; rm -rf /", "uint8\x00", "[('a', 'u1')]", "(2,)u1", "uint16", "float32", "int8",
                 ["uint8"], "bool", "ünï✓"],
    "chunksize": [None, "4", 0, -1, 4.5, True, 10 ** 30, [], "abc", float("inf"), 1, 3, 1000],
    "class": [None, "", 5, ["DirectoryImgStore"], "VideoImgStore", "VideoImgStoreFFMPEG", "ImgStore",
              "../../DirectoryImgStore", "DirectoryImgStore ", "directoryimgstore", "ünï✓"],
    "version": [None, 1, 3, "2", 2.5, -2, 10 ** 30, [], "two"],
    "format": [None, "", 5, ["npy"], "bpk", "png", "jpg", "tif", "mjpeg/avi", "../../etc/passwd", "/npy",
               "npy/../npy", "NPY", "ünï✓", "raw"],
    "encoding": [None, "", 5, [], {"a": 1}, "nonsense", "cv_bayerbg", "../x", "ünï✓"],
    "created_utc": [None, "", "yesterday", "2020-13-45T99:99:99", "9999999999-01-01", 12345, [], "ünï✓",
                    "2020-01-01T00:00:00+05:00"],
    "extension": [None, "", ".mp4", "../../x", "/x", "\\..\\x", 5, [".mp4"]],
    "uuid": [None, 5, [], "ünï✓" * 100],
    "timezone_local": [None, "Mars/Olympus", 5, [], "../../../etc/localtime", "Europe/Vienna"],
}

MD_STRUCT = [
    "empty", "whitespace", "null", "scalar", "list", "string", "no_store", "store_null", "store_list",
    "store_string", "store_empty", "python_apply", "python_object", "python_name", "python_in_user",
    "python_module", "binary_tag", "laughs", "deep_nest", "huge_int", "huge_float", "unicode_user",
    "bom", "utf16", "crlf", "tabs", "dup_keys", "long_line", "invalid_utf8", "nul_bytes", "bad_timestamp",
    "bad_int_tag", "anchor_store", "is_directory", "dangling_symlink", "symlink_loop", "set_tag",
    "merge_keys", "huge_seq",
]

IDX_CONTENT = [
    "pickle_fn", "pickle_ft", "len_mismatch", "fn_2d_col", "fn_2d_square", "fn_str", "ft_str_num",
    "ft_str_text", "ft_nan_inf", "fn_float_int", "fn_float_frac", "fn_float_nan", "fn_float_huge",
    "fn_bool", "fn_uint64_ok", "fn_uint64_huge", "fn_int8", "fn_bigendian", "ft_int", "ft_float32",
    "ft_complex", "ft_datetime", "fn_0d", "both_0d", "empty", "no_fn", "no_ft", "extra_keys",
    "fn_struct", "longer", "shorter", "not_zip", "empty_file", "plain_npy", "pickle_file",
    "header_huge_shape", "header_lies_shape", "zip_dir_entry", "npz_dir", "fortran",
]

YAML_IDX = ["valid", "valid_nan", "python_tag", "list_top", "null", "strings", "len_mismatch", "nested",
            "deep_nest", "huge_int", "missing_key", "truncate", "with_npz", "bad_timestamp"]

FRAMELOG_IDX = ["valid", "torn", "garbage", "empty", "with_npz_corrupt"]

XD_REPLACE = ["num", "str", "null", "true", "dict", "list_of_num", "nested_list", "mixed", "empty_list",
              "empty_file", "whitespace", "deep_nest", "invalid_utf8", "bom", "nan_tokens", "garbage_mid",
              "trailing_junk", "closed_early", "torn_writer", "torn_writer_mid", "huge_number", "dup_keys"]

H5_KINDS = ["valid", "valid_unused_rows", "no_camera", "no_sample_delay", "no_dataset", "no_column_names",
            "no_datasets_attr", "datasets_attr_empty", "datasets_attr_int", "camera_plain", "camera_no_fn",
            "dataset_1d", "dataset_wrong_cols", "sample_delay_short", "json_text", "empty_file", "group_dataset",
            "zero_rows", "datasets_attr_bytes", "column_names_array"]

FRAME_REPLACE = ["empty", "garbage", "other_format", "pickle", "bigger", "smaller", "uint16", "float64", "color",
                 "gray", "one_d", "four_d", "zero_d", "fortran", "rgba", "bool", "is_directory", "symlink_outside",
                 "dangling_symlink", "symlink_loop", "missing", "fifo"]

STRAY = ["rm_chunk", "rm_first_chunk", "rm_last_chunk", "rm_all_chunks", "rm_index", "rm_frames",
         "dir_abc", "tmp_file", "ds_store", "ds_store_in_chunk", "dir_numeric_suffix", "dir_negative",
         "file_numeric", "empty_numeric_dir", "index_no_frames", "unicode_digits", "short_numeric_dir",
         "symlink_dir_outside", "symlink_chunk_outside", "symlink_loop_dir", "dangling_chunk_symlink",
         "index_symlink_loop", "index_is_dir", "stale_lock", "garbage_sqlite", "garbage_cache",
         "extra_frame_file", "stray_yaml_index", "tmp_index", "motif_garbage_json", "huge_chunk_number"]

NUMBER_KINDS = ["dup", "perm", "wrap", "negative", "nan_times", "perm_times", "dup_times", "inf_times",
                "all_nan_times", "huge_times", "chunksize", "huge_numbers", "single", "mixed"]

CACHE_KINDS = ["truncate", "flip_header", "flip_arrays", "garbage", "empty", "other_store"]

VIDEO_KINDS = ["v_truncate", "v_flip", "v_zero_range", "v_empty", "v_garbage", "v_missing", "v_rm_index",
               "v_longer_index", "v_other_container", "v_stray", "v_swap_chunks", "v_sidecar_garbage"]


def all_cases() -> list[Case]:
    out: list[Case] = []

    def add(cat, fmt, color, kind, **params):
        cid = f"{cat}-{fmt.replace('/', '_')}-{'color' if color else 'gray'}-{kind}"
        if params:
            cid += "-" + "-".join(f"{v}" for v in params.values())
        out.append(Case(cid, cat, fmt, color, kind, params))

    tpls = _templates()
    # --- metadata.yaml
    for fmt, color in tpls:
        for k in range(4):
            add("metadata", fmt, color, "md_truncate", n=k)
            add("metadata", fmt, color, "md_flip", n=k)
    i = 0
    for key, values in MD_VALUES.items():
        for j in range(len(values)):
            fmt, color = tpls[i % len(tpls)]
            i += 1
            add("metadata", fmt, color, "md_value", key=key, n=j)
    for j, kind in enumerate(MD_STRUCT):
        fmt, color = tpls[j % len(tpls)]
        add("metadata", fmt, color, "md_struct", v=kind)
    # --- chunk index
    for fmt, color in tpls:
        for k in range(3):
            add("index", fmt, color, "idx_truncate", n=k)
            add("index", fmt, color, "idx_flip", n=k)
    for j, kind in enumerate(IDX_CONTENT):
        for fmt, color in (tpls[j % len(tpls)], tpls[(j + 3) % len(tpls)]):
            add("index", fmt, color, "idx_content", v=kind)
    for j, kind in enumerate(YAML_IDX):
        fmt, color = tpls[j % len(tpls)]
        add("index", fmt, color, "idx_yaml", v=kind)
    for j, kind in enumerate(FRAMELOG_IDX):
        fmt, color = tpls[j % len(tpls)]
        add("index", fmt, color, "idx_framelog", v=kind)
    # --- extra data
    for fmt, color in tpls:
        for k in range(3):
            add("extra", fmt, color, "xd_truncate", n=k)
        add("extra", fmt, color, "xd_flip", n=0)
    for j, kind in enumerate(XD_REPLACE):
        fmt, color = tpls[j % len(tpls)]
        add("extra", fmt, color, "xd_replace", v=kind)
    for j, kind in enumerate(["valid", "truncate0", "truncate1", "not_list", "unsorted"]):
        fmt, color = tpls[j % len(tpls)]
        add("extra", fmt, color, "xd_motif_json", v=kind)
    for j, kind in enumerate(H5_KINDS):
        fmt, color = tpls[j % len(tpls)]
        add("extra", fmt, color, "xd_h5", v=kind)
    for k in range(6):
        fmt, color = tpls[k % len(tpls)]
        add("extra", fmt, color, "xd_h5_truncate", n=k)
        add("extra", fmt, color, "xd_h5_flip", n=k)
    # --- frame files
    for fmt, color in tpls:
        for k in range(4):
            add("frames", fmt, color, "fr_truncate", n=k)
            add("frames", fmt, color, "fr_flip", n=k)
        for kind in FRAME_REPLACE:
            if kind == "fifo" and (fmt, color) not in (("npy", False), ("png", True)):
                continue  # a FIFO blocks until the case timeout: two cases are enough
            add("frames", fmt, color, "fr_replace", v=kind)
    # --- missing / stray files and folders
    for j, kind in enumerate(STRAY):
        for fmt, color in (tpls[j % len(tpls)], tpls[(j + 5) % len(tpls)]):
            add("layout", fmt, color, "stray", v=kind)
    # --- unusual frame numbers / times (must read back correctly)
    for j, kind in enumerate(NUMBER_KINDS):
        for r in range(3):
            fmt, color = tpls[(j + r) % len(tpls)]
            add("numbers", fmt, color, "numbers", v=kind, n=r)
    # --- frame index cache
    for j, kind in enumerate(CACHE_KINDS):
        fmt, color = tpls[j % len(tpls)]
        add("cache", fmt, color, "cache", v=kind)
    # --- video stores (skipped while the format is not supported)
    for fmt in VIDEO_FORMATS:
        for color in (False, True):
            for kind in VIDEO_KINDS:
                reps = 3 if kind in ("v_truncate", "v_flip") else 1
                for k in range(reps):
                    add("video", fmt, color, kind, n=k)
            for kind in ("md_flip", "fr_none"):
                add("video", fmt, color, kind, n=0)
            for r in range(2):
                add("video", fmt, color, "numbers", v=NUMBER_KINDS[(r * 5) % len(NUMBER_KINDS)], n=r)
            for j in range(len(MD_VALUES["extension"])):  # metadata-derived chunk file names
                add("video", fmt, color, "md_value", key="extension", n=j)
            add("video", fmt, color, "idx_content", v="ft_nan_inf")
            add("video", fmt, color, "idx_content", v="pickle_fn")
            add("video", fmt, color, "xd_truncate", n=0)
    for key in ("class", "format", "imgshape"):
        for j in range(len(MD_VALUES[key])):
            add("video", VIDEO_FORMATS[j % len(VIDEO_FORMATS)], bool(j % 2), "md_value", key=key, n=j)
    ids = [c.id for c in out]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    return out


# ---------------------------------------------------------------------------------------------------
# pristine stores
# ---------------------------------------------------------------------------------------------------
_FRAME_CACHE: dict = {}


def source_frame(bar: int, color: bool) -> np.ndarray:
    from imgstore.apps.synthetic import make_frame

    key = (bar, color)
    if key not in _FRAME_CACHE:
        _FRAME_CACHE[key] = make_frame(bar, COLOR if color else GRAY)
        _FRAME_CACHE[key].setflags(write=False)
    return _FRAME_CACHE[key]


def barcode(img: np.ndarray) -> int:
    from imgstore.apps.synthetic import read_frame_number

    return read_frame_number(img)


def extra_record(i: int) -> dict:
    """What add_extra_data stores after frame i: awkward strings to stress the JSON salvage."""
    r = random.Random(i)
    rec = {"temp": round(20 + r.random() * 5, 6), "n": i, "label": "pos %d \"q\" ]}, {{ \\ ü✓" % i}
    if i % 3 == 0:
        rec["nested"] = {"a": [1, 2, {"b": "]"}], "c": None}
    if i % 4 == 1:
        rec["flag"] = bool(i % 2)
    return rec


@dataclass
class Template:
    fmt: str
    color: bool
    path: str
    fns: list
    fts: list
    bars: list
    chunksize: int
    extra: list  # (chunk whose file holds it, record incl. frame_number/time/index), in store order
    kind: str  # directory | video
    ext: str  # video chunk extension

    @property
    def shape(self):
        return COLOR if self.color else GRAY

    def chunk_of(self, i):
        return i // self.chunksize, i % self.chunksize

    @property
    def chunks(self):
        return sorted({self.chunk_of(i)[0] for i in range(len(self.fns))})

    def chunk_rel(self, c):
        return "%06d" % c if self.kind == "directory" else "%06d%s" % (c, self.ext)

    def index_rel(self, c, ext=".npz"):
        return ("%06d/index" % c if self.kind == "directory" else "%06d" % c) + ext

    def extra_rel(self, c):
        return self.index_rel(c, ".extra.json")

    def frame_rel(self, c, p):
        if self.kind == "video":
            return self.chunk_rel(c)
        if self.fmt == "raw":
            return "%06d/frames.npy" % c
        return "%06d/%06d.%s" % (c, p, self.fmt)

    def frame_exps(self, *, names_for=None) -> list:
        out = []
        for i, (fn, ft, bar) in enumerate(zip(self.fns, self.fts, self.bars)):
            c, p = self.chunk_of(i)
            out.append(FrameExp(c, p, fn, ft, bar, exact=self.fmt in EXACT_FORMATS))
        return out

    def extra_records(self, chunks=None) -> list:
        return [r for c, r in self.extra if chunks is None or c in chunks]


_TEMPLATES: dict = {}
_WORK: dict = {}


def work_root() -> str:
    if "root" not in _WORK:
        _WORK["root"] = tempfile.mkdtemp(prefix="imgstore-fuzz-")
        _WORK["n"] = 0
    return _WORK["root"]


def supported(fmt: str) -> bool:
    import imgstore

    return fmt in imgstore.get_supported_formats()


def write_store(path, fmt, color, fns, fts, bars, chunksize=CHUNKSIZE, extra_every=1, metadata=None):
    import imgstore

    s = imgstore.new_for_format(fmt, basedir=path, imgshape=COLOR if color else GRAY, imgdtype=np.uint8,
                                chunksize=chunksize, metadata=metadata)
    extra = []
    # times that are not finite (as stores of other writers hold them) are refused by add_image: they are
    # written as unique placeholders and put into the files afterwards (see _normalize)
    placeholders = {-1e9 - i: ft for i, ft in enumerate(fts) if not math.isfinite(ft)}
    for i, (fn, ft, bar) in enumerate(zip(fns, fts, bars)):
        s.add_image(source_frame(bar, color), fn, ft if math.isfinite(ft) else -1e9 - i)
        if extra_every and i % extra_every == 0:
            rec = extra_record(i)
            s.add_extra_data(**rec)
            full = dict(rec)
            full.update(frame_time=ft, frame_number=fn, frame_index=i)
            extra.append((i, full))
    s.close()
    kind = "video" if fmt in VIDEO_FORMATS else "directory"
    _normalize(path, placeholders)
    ext = ""
    if kind == "video":
        import yaml

        with open(os.path.join(path, "metadata.yaml")) as f:
            smd = yaml.safe_load(f)["__store"]
        ext = smd.get("extension") or (".avi" if smd.get("format") == "mjpeg" else ".mp4")
    t = Template(fmt, color, path, list(fns), list(fts), list(bars), chunksize, extra, kind, ext)
    # records land in the file of the chunk being written when add_extra_data is called (after a
    # chunk's last frame, that is the next chunk): group them by file as the store reads them
    t.extra = []
    for c in sorted(set(t.chunks) | {t.chunks[-1] + 1} if t.chunks else []):
        p = os.path.join(path, t.extra_rel(c))
        if os.path.exists(p):
            with open(p, encoding="utf-8") as f:
                for rec in json.load(f):
                    t.extra.append((c, rec))
    assert _records_eq([r for _, r in t.extra], [r for _, r in extra]) is None, "extra data written differs"
    for c in t.chunks:  # the layout this suite assumes (FORMAT.md)
        for rel in (t.chunk_rel(c), t.index_rel(c)):
            assert os.path.exists(os.path.join(path, rel)), f"store layout changed: {rel} missing"
    return t


FIXED_STORE_MD = {"uuid": "0123456789abcdef0123456789abcdef", "created_utc": "2023-11-14T22:13:20.123456",
                  "timezone_local": "Europe/Vienna"}


def _normalize(path, placeholders=None):
    """Make a new store's files byte-identical from run to run and machine to machine (uuid, creation
    time, local time zone, zip timestamps), so that damage at a seeded offset always hits the same thing;
    frame times written as *placeholders* (placeholder -> real time) get their real values."""
    import yaml

    placeholders = placeholders or {}

    def real_times(ft):
        return np.array([placeholders.get(float(t), t) for t in ft], dtype=np.float64)

    p = os.path.join(path, "metadata.yaml")
    with open(p) as f:
        doc = yaml.safe_load(f)
    doc["__store"].update(FIXED_STORE_MD)
    with open(p, "w") as f:
        f.write(yaml.safe_dump(doc))
    for dirpath, _, files in os.walk(path):
        for name in files:
            if placeholders and name.endswith(".extra.json"):
                xp = os.path.join(dirpath, name)
                with open(xp, encoding="utf-8") as f:
                    recs = json.load(f)
                for r in recs:
                    r["frame_time"] = placeholders.get(r.get("frame_time"), r.get("frame_time"))
                with open(xp, "w", encoding="utf-8") as f:
                    json.dump(recs, f)
            if not re.match(r"^([0-9]{6}|index)\.npz$", name):
                continue  # chunk indexes only (not e.g. a video chunk's packet index sidecar)
            ip = os.path.join(dirpath, name)
            with np.load(ip, allow_pickle=False) as z:
                arrays = {"frame_number": z["frame_number"], "frame_time": real_times(z["frame_time"])}
            smd = dict(doc["__store"])
            for k in sorted(smd):
                if k not in arrays:
                    arrays[k] = np.asarray(smd[k])
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w") as zf:
                for k, a in arrays.items():
                    b = io.BytesIO()
                    np.lib.format.write_array(b, a, allow_pickle=True)
                    zf.writestr(zipfile.ZipInfo(k + ".npy", date_time=(2020, 1, 1, 0, 0, 0)), b.getvalue())
            wr(ip, buf.getvalue())


USER_MD = {"genotype": "wt", "note": "ünïcode ✓ 日本", "camera": {"gain": 1.5, "exposure": 1000}}


def template(fmt, color) -> Template:
    key = (fmt, color)
    if key not in _TEMPLATES:
        path = os.path.join(work_root(), "tpl-%s-%s" % (fmt.replace("/", "_"), "color" if color else "gray"))
        fns = [100 + i for i in range(NFRAMES)]
        fts = [T0 + i * 0.04 for i in range(NFRAMES)]
        bars = list(fns)
        _TEMPLATES[key] = write_store(path, fmt, color, fns, fts, bars, metadata=dict(USER_MD))
    return _TEMPLATES[key]


def new_case_dir() -> str:
    root = work_root()
    _WORK["n"] += 1
    return os.path.join(root, "case-%05d" % _WORK["n"], "store")


def fresh_copy(tpl: Template) -> Template:
    dst = new_case_dir()
    shutil.copytree(tpl.path, dst, symlinks=True)
    t = Template(**{**tpl.__dict__, "path": dst})
    return t


# ---------------------------------------------------------------------------------------------------
# expectations
# ---------------------------------------------------------------------------------------------------
@dataclass
class FrameExp:
    chunk: int
    pos: int
    fn: int
    ft: float
    bar: int | None
    status: str = "good"  # good | damaged | lossy | array
    names: tuple = ()  # names acceptable in an error about this frame
    exact: bool = False  # compare every pixel with the source frame
    array: Any = None  # status 'array': the exact pixels the damaged file holds
    color: bool = False


@dataclass
class Expect:
    frames: list | None  # None: the store must not open
    open_names: tuple = ()  # open may fail with an error naming one of these
    alt_frames: list = field(default_factory=list)
    extra: Any = "skip"  # list of records (None = no extra data) or 'skip'
    extra_alt: list = field(default_factory=list)
    extra_names: tuple = ()  # get_extra_data may fail naming one of these
    extra_ignore: Any = "skip"  # what get_extra_data(ignore_corrupt_chunks=True) returns then
    user_md: Any = None
    created_names: tuple = ()
    marker: str | None = None  # a file that must never be created (unpickling / yaml tags)


# ---------------------------------------------------------------------------------------------------
# byte-level damage
# ---------------------------------------------------------------------------------------------------
def rd(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def wr(path, data: bytes):
    if os.path.islink(path) or os.path.isdir(path):
        rm(path)
    with open(path, "wb") as f:
        f.write(data)


def symlink(src, dst):
    try:
        os.symlink(src, dst)
    except (OSError, NotImplementedError, AttributeError) as e:
        raise SkipCase(f"cannot create a symlink here: {e}") from None


def rm(path):
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)


def cut_point(rng, n, lo=0):
    """A truncation length: a spread of random points, biased to the ends where parsers break."""
    r = rng.random()
    if r < 0.15:
        return rng.randint(lo, min(n, lo + 16))
    if r < 0.3:
        return max(lo, n - rng.randint(1, 16))
    return rng.randint(lo, max(lo, n - 1))


def flip_bytes(rng, data: bytes, lo=0, hi=None, count=None) -> tuple[bytes, list]:
    hi = len(data) if hi is None else hi
    b = bytearray(data)
    pos = []
    for _ in range(count or rng.randint(1, 3)):
        p = rng.randrange(lo, hi)
        b[p] ^= rng.choice([1, 2, 4, 8, 16, 32, 64, 128, 0xFF, rng.randint(1, 255)])
        pos.append(p)
    return bytes(b), pos


class _Marker:
    """Unpickling this creates a marker file: proves a parser unpickled untrusted data."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def marker_path(tpl) -> str:
    return os.path.join(os.path.dirname(tpl.path), "PWNED-marker")


def npy_bytes(arr, allow_pickle=False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def pickled_object_array(marker) -> np.ndarray:
    a = np.empty(4, dtype=object)
    for i in range(4):
        a[i] = _Marker(marker)
    return a


# ---------------------------------------------------------------------------------------------------
# independent oracles
# ---------------------------------------------------------------------------------------------------
def oracle_npz(data: bytes):
    """('valid', fn, ft) or ('invalid',) for npz index bytes: an independent reading of FORMAT.md."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            arrs = {}
            for name in ("frame_number", "frame_time"):
                with z.open(name + ".npy") as f:
                    raw = f.read()
                arrs[name] = np.lib.format.read_array(io.BytesIO(raw), allow_pickle=False)
    except Exception:
        return ("invalid",)
    return oracle_arrays(arrs["frame_number"], arrs["frame_time"])


def oracle_arrays(fn, ft):
    fn = np.asarray(fn)
    ft = np.asarray(ft)
    if fn.ndim != 1 or ft.ndim != 1 or len(fn) != len(ft):
        return ("invalid",)
    if fn.dtype.kind in "iu":
        if len(fn) and (int(fn.max()) > 2 ** 63 - 1):
            return ("invalid",)
        fnl = [int(x) for x in fn]
    else:
        return ("invalid",)
    if ft.dtype.kind not in "iuf":
        return ("invalid",)
    return ("valid", fnl, [float(x) for x in ft])


def frames_from_index(tpl: Template, chunk: int, fn, ft) -> list:
    """FrameExps of a chunk whose index says (fn, ft): position p shows the frame written at (chunk, p)."""
    out = []
    n_files = sum(1 for i in range(len(tpl.fns)) if tpl.chunk_of(i)[0] == chunk)
    for p, (a, b) in enumerate(zip(fn, ft)):
        i = chunk * tpl.chunksize + p
        if p < n_files:
            out.append(FrameExp(chunk, p, a, b, tpl.bars[i], exact=tpl.fmt in EXACT_FORMATS))
        else:  # the index lists more frames than the chunk holds
            out.append(FrameExp(chunk, p, a, b, None, status="damaged",
                                names=(os.path.basename(tpl.frame_rel(chunk, p)),)))
    return out


def replace_chunk(frames: list, chunk: int, new: list | None) -> list:
    """The store's frame list with *chunk*'s frames replaced (None or []: the chunk is skipped)."""
    out = [f for f in frames if f.chunk < chunk] + list(new or []) + [f for f in frames if f.chunk > chunk]
    return out


def json_record_spans(text: str):
    """(record, end offset) of every record of a well-formed JSON array text."""
    dec = json.JSONDecoder()
    i = text.index("[") + 1
    out = []
    while True:
        while text[i] in " \t\r\n,":
            i += 1
        if text[i] == "]":
            return out
        obj, i = dec.raw_decode(text, i)
        out.append((obj, i))


# ---------------------------------------------------------------------------------------------------
# the probe
# ---------------------------------------------------------------------------------------------------
class CaseTimeout(BaseException):
    pass


class SkipCase(Exception):
    """The damage cannot be done on this platform (no FIFOs, no symlinks)."""


class Result:
    def __init__(self, case: Case):
        self.case = case
        self.n_ok = self.n_clean = self.n_undetectable = self.n_fail = 0
        self.fails: list[str] = []
        self.cleans: list[str] = []
        self.notes: list[str] = []

    def ok(self):
        self.n_ok += 1

    def clean(self, op, e):
        self.n_clean += 1
        if len(self.cleans) < 3:
            self.cleans.append(f"{op}: {type(e).__name__}: {str(e)[:300]}")

    def undetectable(self, op, msg):
        self.n_undetectable += 1
        if len(self.notes) < 3:
            self.notes.append(f"{op}: {msg}")

    def fail(self, op, msg):
        detail = f"{op}: {msg}"[:700]
        if len(self.fails) < 12:
            self.fails.append(detail)
        elif not self._is_known(detail):
            self.fails[-1] = detail  # keep one unexplained failure visible
        self.n_fail += 1

    def _is_known(self, detail) -> bool:
        return any(re.search(case_rx, self.case.id) and re.search(rx, detail) for _, rx, case_rx in KNOWN_BUGS)

    def error(self, op, e, names):
        """An exception from *op*: clean when an ImgStoreError names one of *names*."""
        import imgstore

        if isinstance(e, (CaseTimeout, KeyboardInterrupt, SystemExit)):
            raise e
        if not isinstance(e, imgstore.ImgStoreError):
            tb = traceback.extract_tb(e.__traceback__)
            where = " <- ".join(f"{os.path.basename(fr.filename)}:{fr.lineno}" for fr in reversed(tb[-3:]))
            self.fail(op, f"bare {type(e).__name__}: {str(e)[:300]} [{where}]")
            return
        msg = str(e)
        if not names:
            self.fail(op, f"{type(e).__name__} where correct data was expected: {msg[:300]}")
            return
        if any(n and n in msg for n in names):
            self.clean(op, e)
        else:
            self.fail(op, f"{type(e).__name__} message names none of {sorted(set(names))}: {msg[:300]}")

    def outcome(self) -> dict:
        if self.fails:
            out = "known_bug" if all(self._is_known(f) for f in self.fails) else "fail"
        elif self.n_clean:
            out = "clean_error"
        elif self.n_undetectable:
            out = "undetectable"
        else:
            out = "correct"
        return {"id": self.case.id, "cat": self.case.cat, "outcome": out, "fails": self.fails,
                "cleans": self.cleans, "notes": self.notes, "ops": self.n_ok + self.n_clean + self.n_undetectable}


def _nan_eq(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def check_image(res: Result, op: str, store, img, fe: FrameExp):
    if not isinstance(img, np.ndarray):
        res.fail(op, f"returned {type(img).__name__}, not an array")
        return
    want_shape, want_dtype = tuple(store.image_shape), store.dtype
    if img.shape == want_shape and img.dtype != want_dtype:
        res.fail(op, f"returned frame dtype {img.dtype}, the store says {want_dtype} (frame {fe.chunk}/{fe.pos})")
        return
    if img.shape != want_shape or img.dtype != want_dtype:
        res.fail(op, f"returned frame shape {img.shape} dtype {img.dtype}; the store says {want_shape} {want_dtype} "
                     f"(frame {fe.chunk}/{fe.pos}, {fe.status})")
        return
    if fe.status == "array":
        if fe.array is not None and np.array_equal(img, fe.array):
            res.ok()
        else:
            res.fail(op, f"frame {fe.chunk}/{fe.pos}: pixels differ from the file's content")
        return
    bar = barcode(img) if img.shape[:2] == GRAY else -1
    if fe.exact and fe.status == "good":
        src = source_frame(fe.bar, len(want_shape) == 3)
        if src.shape == img.shape and np.array_equal(img, src):
            res.ok()
        else:
            res.fail(op, f"frame {fe.chunk}/{fe.pos}: pixels differ from those written (barcode {bar}, "
                         f"expected {fe.bar})")
        return
    if fe.bar is not None and bar == fe.bar:
        res.ok()
    elif fe.status == "lossy":
        res.undetectable(op, f"frame {fe.chunk}/{fe.pos} decoded to other pixels (barcode {bar})")
    else:
        res.fail(op, f"frame {fe.chunk}/{fe.pos} ({fe.status}): wrong pixels, barcode {bar} expected {fe.bar}")


def attempt(fn):
    try:
        return fn(), None
    except (CaseTimeout, KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # noqa: BLE001 - the probe classifies every exception
        return None, e


def _frame_ok_meta(res, op, got, fe):
    fn, ft = got
    if int(fn) != fe.fn or not _nan_eq(float(ft), float(fe.ft)):
        res.fail(op, f"returned metadata ({fn}, {ft}), expected ({fe.fn}, {fe.ft})")
        return False
    return True


def check_frame_call(res, op, store, call, fe: FrameExp, meta=True):
    v, e = attempt(call)
    if e is not None:
        res.error(op, e, fe.names if fe.status != "good" else ())
        return False
    if meta:
        img, md = v
        if _frame_ok_meta(res, op, md, fe):
            check_image(res, op, store, img, fe)
    else:
        check_image(res, op, store, v, fe)
    return True


def nearest_oracle(values, q):
    best = None
    for i, v in enumerate(values):
        if isinstance(v, float) and math.isnan(v):
            continue
        if isinstance(v, float) and math.isinf(v):
            d = Fraction(10) ** 400  # farther than any finite value
        else:
            d = abs(Fraction(v) - Fraction(q))  # exact: float rounding must not decide ties
        if best is None or d < best[0]:
            best = (d, i)
    return None if best is None else best[1]


def _records_eq(got: list, want: list) -> str | None:
    if len(got) != len(want):
        return f"{len(got)} records, expected {len(want)}"
    for k, (g, w) in enumerate(zip(got, want)):
        keys = set(g) | set(w)
        for key in keys:
            a, b = g.get(key, float("nan")), w.get(key, float("nan"))
            if a is None:
                a = float("nan")
            if b is None:
                b = float("nan")
            if isinstance(a, (np.generic,)):
                a = a.item()
            if isinstance(a, float) and isinstance(b, (int, bool)) and not isinstance(b, float):
                b = float(b)
            if isinstance(b, float) and isinstance(a, (int, bool)):
                a = float(a)
            if not _nan_eq(a, b):
                return f"record {k} key {key!r}: {a!r} != {b!r}"
    return None


def check_extra(res, store, exp: Expect):
    if exp.extra == "skip":
        return

    def as_records(df):
        if df is None:
            return []
        return df.to_dict("records")

    v, e = attempt(store.get_extra_data)
    if e is not None:
        res.error("get_extra_data", e, exp.extra_names)
        if exp.extra_ignore != "skip" and exp.extra_names:
            v2, e2 = attempt(lambda: store.get_extra_data(ignore_corrupt_chunks=True))
            if e2 is not None:
                res.error("get_extra_data(ignore_corrupt_chunks)", e2, ())
            else:
                why = _records_eq(as_records(v2), exp.extra_ignore or [])
                if why:
                    res.fail("get_extra_data(ignore_corrupt_chunks)", why)
                else:
                    res.ok()
        return
    got = as_records(v)
    whys = []
    for want in [exp.extra] + list(exp.extra_alt):
        why = _records_eq(got, want or [])
        if why is None:
            res.ok()
            return
        whys.append(why)
    res.fail("get_extra_data", "; ".join(whys)[:400])


def probe(path: str, exp: Expect, res: Result):
    import imgstore

    s, e = attempt(lambda: imgstore.new_for_filename(path))
    if e is not None:
        res.error("open", e, exp.open_names if (exp.open_names or exp.frames is None) else ())
        return
    if exp.frames is None:
        res.fail("open", "the store opened, but must not")
    try:
        _probe_open_store(s, exp, res)
    finally:
        v, e = attempt(s.close)
        if e is not None:
            res.error("close", e, ())


def _probe_open_store(s, exp: Expect, res: Result):
    import imgstore

    md, e = attempt(s.get_frame_metadata)
    if e is not None:
        res.error("get_frame_metadata", e, ())
        return
    frames = None
    for cand in [exp.frames or []] + list(exp.alt_frames):
        if [f.fn for f in cand] == list(md["frame_number"]) and all(
                _nan_eq(float(f.ft), float(t)) for f, t in zip(cand, md["frame_time"])) and len(cand) == len(
                md["frame_time"]):
            frames = cand
            break
    if frames is None:
        want = [f.fn for f in exp.frames or []]
        res.fail("get_frame_metadata", f"frame numbers {list(md['frame_number'])[:14]} "
                                       f"expected {want[:14]} (or {len(exp.alt_frames)} alternatives)")
        return
    res.ok()
    n = len(frames)
    chunks = sorted({f.chunk for f in frames})
    for name, got, want in (("frame_count", s.frame_count, n), ("len", len(s), n), ("chunks", list(s.chunks), chunks)):
        if got != want:
            res.fail(name, f"{got!r} != {want!r}")
    if n:
        fmin = min(f.fn for f in frames)
        if float(s.frame_min) != float(fmin) or float(s.frame_max) != float(max(f.fn for f in frames)):
            res.fail("frame_min/max", f"{s.frame_min}, {s.frame_max}")
    if exp.user_md is not None and s.user_metadata != exp.user_md:
        res.fail("user_metadata", f"{s.user_metadata!r:.200} != {exp.user_md!r:.200}")
    v, e = attempt(lambda: s.created)
    if e is not None:
        res.error("created", e, exp.created_names)

    # every frame by index
    for i, fe in enumerate(frames):
        check_frame_call(res, f"get_image(frame_index={i})", s, lambda i=i: s.get_image(None, frame_index=i), fe)
    # out of range
    v, e = attempt(lambda: s.get_image(None, frame_index=n))
    if not isinstance(e, imgstore.FrameNotFoundError):
        res.fail(f"get_image(frame_index={n})", f"expected FrameNotFoundError, got {e!r:.200}")

    # sequential from a fresh store object, skipping a broken frame with get_image(frame_index=i+1)
    cursor_ok = True
    s_seq, e = attempt(lambda: imgstore.new_for_filename(s.filename))
    if e is not None:
        res.error("reopen", e, exp.open_names)
        cursor_ok = False
    if cursor_ok:
        try:
            i = 0
            ended = True
            while i < n:
                ok = check_frame_call(res, f"get_next_image[{i}]", s_seq, s_seq.get_next_image, frames[i])
                if not ok:  # broken frame: carry on from the next good one with get_image(frame_index=j)
                    j = next((j for j in range(i + 1, n) if frames[j].status == "good"), None)
                    if j is None:
                        ended = False
                        break
                    check_frame_call(res, f"get_image(frame_index={j}) after error", s_seq,
                                     lambda j=j: s_seq.get_image(None, frame_index=j), frames[j])
                    i = j
                i += 1
            if ended:
                v, e = attempt(s_seq.get_next_image)
                if not (isinstance(e, imgstore.EndOfStoreError) and isinstance(e, EOFError)):
                    res.fail("get_next_image at end", f"expected EndOfStoreError, got {e!r:.200}")
                else:
                    res.ok()
        finally:
            s_seq.close()

    # by frame number: the first frame written with it
    seen = {}
    for i, fe in enumerate(frames):
        seen.setdefault(fe.fn, i)
    for k, (fn, i) in enumerate(seen.items()):
        if k >= 8:
            break
        check_frame_call(res, f"get_image({fn})", s, lambda fn=fn: s.get_image(fn), frames[i])
    if n:
        fns = [f.fn for f in frames]
        for q in (max(fns) + 1, min(fns) - 1, float(min(fns)) + 0.5):
            if q in seen:
                continue
            v, e = attempt(lambda q=q: s.get_image(q))
            if isinstance(e, imgstore.FrameNotFoundError) and isinstance(e, ValueError):
                res.ok()
            else:
                res.fail(f"get_image({q})", f"expected FrameNotFoundError, got {e!r:.200}")
        for q in (min(fns) - 3, max(fns) + 3, (min(fns) + max(fns)) // 2, fns[n // 2]):
            i = nearest_oracle(fns, q)
            check_frame_call(res, f"get_image({q}, exact_only=False)", s,
                             lambda q=q: s.get_image(q, exact_only=False), frames[i])
    # by time
    fts = [float(f.ft) for f in frames]
    finite = [t for t in fts if math.isfinite(t)]
    queries = sorted(set(finite))[:4]
    if finite:
        queries += [min(finite) - 1.0, max(finite) + 1.0, (min(finite) + max(finite)) / 2]
    if not finite and n:
        queries += [T0]
    for q in queries:
        i = nearest_oracle(fts, q)
        if i is None:
            v, e = attempt(lambda q=q: s.get_nearest_image(q))
            if isinstance(e, imgstore.FrameNotFoundError):
                res.ok()
            else:
                res.fail(f"get_nearest_image({q})", f"expected FrameNotFoundError (no finite times), got {e!r:.200}")
            continue
        check_frame_call(res, f"get_nearest_image({q!r})", s, lambda q=q: s.get_nearest_image(q), frames[i])

    # array view
    for i in sorted({0, n // 2, n - 1}) if n else []:
        check_frame_call(res, f"store[{i}]", s, lambda i=i: s[i], frames[i], meta=False)
    if n:
        for key, idx in ((slice(None), list(range(n))), (slice(1, n - 1, 2), list(range(1, n - 1, 2))),
                         ([n - 1, 0, n - 1], [n - 1, 0, n - 1])):
            sel = [frames[i] for i in idx]
            names = tuple(x for f in sel if f.status != "good" for x in f.names)
            v, e = attempt(lambda key=key: s[key])
            if e is not None:
                res.error(f"store[{key}]", e, names)
                continue
            if not isinstance(v, np.ndarray) or v.shape[0] != len(idx):
                res.fail(f"store[{key}]", f"returned {getattr(v, 'shape', type(v))}")
                continue
            for img, fe in zip(v, sel):
                check_image(res, f"store[{key}]", s, img, fe)
    check_extra(res, s, exp)


# ---------------------------------------------------------------------------------------------------
# the cases' damage and expectations
# ---------------------------------------------------------------------------------------------------
def md_frames(tpl, extra_names=()):
    """Frames after a metadata change: correct, or clean errors naming metadata.yaml / the frame / chunk."""
    frames = tpl.frame_exps()
    for f in frames:
        f.status = "lossy" if tpl.fmt in LOSSY_FORMATS else "damaged"
        f.names = ("metadata.yaml", os.path.basename(tpl.frame_rel(f.chunk, f.pos)),
                   os.path.basename(tpl.chunk_rel(f.chunk))) + tuple(extra_names)
    return frames


def base_expect(tpl, **kw) -> Expect:
    kw.setdefault("frames", tpl.frame_exps())
    kw.setdefault("extra", tpl.extra_records())
    return Expect(**kw)


def md_expect(tpl, **kw) -> Expect:
    md_names = ("metadata.yaml",)
    exp = Expect(frames=md_frames(tpl), open_names=md_names, alt_frames=[[]], extra="skip",
                 created_names=md_names, **kw)
    return exp


def _md_path(tpl):
    return os.path.join(tpl.path, "metadata.yaml")


def case_md_truncate(case, tpl):
    data = rd(_md_path(tpl))
    k = cut_point(case.rng, len(data))
    wr(_md_path(tpl), data[:k])
    return md_expect(tpl)


def case_md_flip(case, tpl):
    data, _ = flip_bytes(case.rng, rd(_md_path(tpl)))
    wr(_md_path(tpl), data)
    return md_expect(tpl)


def _load_md(tpl):
    import yaml

    with open(_md_path(tpl)) as f:
        return yaml.safe_load(f)


def _dump_md(tpl, doc):
    import yaml

    with open(_md_path(tpl), "w") as f:
        yaml.safe_dump(doc, f, allow_unicode=True)


def case_md_value(case, tpl):
    key = case.params["key"]
    value = MD_VALUES[key][case.params["n"]]
    doc = _load_md(tpl)
    if value is None and case.params["n"] == 0:
        doc["__store"].pop(key, None)  # missing key
    else:
        doc["__store"][key] = value
    _dump_md(tpl, doc)
    return md_expect(tpl)


def case_md_struct(case, tpl):
    v = case.params["v"]
    p = _md_path(tpl)
    text = rd(p).decode("utf-8")
    doc = _load_md(tpl)
    marker = marker_path(tpl)
    exp = md_expect(tpl)
    must_fail = Expect(frames=None, open_names=("metadata.yaml",), marker=marker)
    body = {
        "empty": b"", "whitespace": b"  \n\n  ", "null": b"null\n", "scalar": b"42\n", "list": b"- 1\n- 2\n",
        "string": b"DirectoryImgStore\n",
    }
    if v in body:
        wr(p, body[v])
        return must_fail
    if v == "no_store":
        doc.pop("__store")
        _dump_md(tpl, doc)
        return must_fail
    if v in ("store_null", "store_list", "store_string", "store_empty"):
        doc["__store"] = {"store_null": None, "store_list": [1, 2], "store_string": "x", "store_empty": {}}[v]
        _dump_md(tpl, doc)
        return must_fail
    if v == "python_apply":
        wr(p, (text + f"evil: !!python/object/apply:builtins.open [{marker!r}, w]\n").encode())
        return must_fail
    if v == "python_object":
        wr(p, (text + f"evil: !!python/object:fuzz_cases._Marker {{path: {marker!r}}}\n").encode())
        return must_fail
    if v == "python_name":
        wr(p, (text + "evil: !!python/name:os.system\n").encode())
        return must_fail
    if v == "python_module":
        wr(p, (text + "evil: !!python/module:os\n").encode())
        return must_fail
    if v == "python_in_user":
        wr(p, text.replace("genotype: wt", f"genotype: !!python/object/apply:builtins.open [{marker!r}, w]").encode())
        return must_fail
    if v == "binary_tag":
        wr(p, (text + "blob: !!binary aGVsbG8=\n").encode())
        exp.user_md = dict(USER_MD, blob=b"hello")
        return exp
    if v == "laughs":
        lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        for k in range(1, 12):
            lines.append(f"a{k}: &a{k} [" + ", ".join([f"*a{k - 1}"] * 10) + "]")
        wr(p, (text + "\n".join(lines) + "\n").encode())
        exp.user_md = None
        return exp
    if v == "deep_nest":
        wr(p, (text + "deep: " + "[" * 20000 + "]" * 20000 + "\n").encode())
        return exp
    if v == "huge_int":
        wr(p, (text + "big: " + "9" * 5000 + "\nbig2: " + "9" * 400 + "\n").encode())
        return exp
    if v == "huge_float":
        wr(p, (text + "bigf: 1.0e999\nsmall: -.inf\nnotnum: .nan\n").encode())
        return exp
    if v == "unicode_user":
        doc["ключ ✓"] = {"値": ["ü", "\u202e", "\U0001F600"], "\x85": "nel"}
        _dump_md(tpl, doc)
        doc = _load_md(tpl)
        exp.user_md = {k: v for k, v in doc.items() if k != "__store"}
        return exp
    if v == "bom":
        wr(p, b"\xef\xbb\xbf" + text.encode())
        exp.user_md = dict(USER_MD)
        return exp
    if v == "utf16":
        wr(p, text.encode("utf-16"))
        exp.user_md = dict(USER_MD)
        return exp
    if v == "crlf":
        wr(p, text.replace("\n", "\r\n").encode())
        exp.user_md = dict(USER_MD)
        return exp
    if v == "tabs":
        wr(p, text.replace("  ", "\t").encode())
        return exp
    if v == "dup_keys":
        wr(p, (text + "genotype: mutant\n").encode())
        return exp
    if v == "long_line":
        wr(p, (text + "long: " + "x" * 300_000 + "\n").encode())
        return exp
    if v == "invalid_utf8":
        wr(p, text.encode() + b"bad: \xff\xfe\xc3\x28\n")
        return exp
    if v == "nul_bytes":
        wr(p, text.encode() + b"nul: a\x00b\n")
        return exp
    if v == "bad_timestamp":
        wr(p, text.replace("created_utc:", "created_utc: 2020-13-45\n  old_created_utc:").encode())
        return exp
    if v == "bad_int_tag":
        wr(p, (text + "n: !!int abc\nf: !!float xyz\nt: !!timestamp 2020-99-99\n").encode())
        return exp
    if v == "anchor_store":
        wr(p, b"x: &s 1\n" + text.encode().replace(b"__store:", b"__store: &st"))
        return exp
    if v == "is_directory":
        rm(p)
        os.mkdir(p)
        return must_fail
    if v == "dangling_symlink":
        rm(p)
        symlink(os.path.join(tpl.path, "nonexistent.yaml"), p)
        return must_fail
    if v == "symlink_loop":
        rm(p)
        symlink(p, p)
        return must_fail
    if v == "set_tag":
        wr(p, (text + "s: !!set {a, b}\nomap: !!omap [a: 1, b: 2]\npairs: !!pairs [a: 1]\n").encode())
        return exp
    if v == "merge_keys":
        wr(p, (text + "base: &b {x: 1}\nderived:\n  <<: *b\n  y: 2\n").encode())
        return exp
    if v == "huge_seq":
        wr(p, (text + "seq: [" + ", ".join(["1"] * 20000) + "]\n").encode())
        return exp
    raise AssertionError(v)


def _index_path(tpl, c=TARGET_CHUNK, ext=".npz"):
    return os.path.join(tpl.path, tpl.index_rel(c, ext))


def _chunk_frames(tpl, c):
    return [(tpl.fns[i], tpl.fts[i]) for i in range(len(tpl.fns)) if tpl.chunk_of(i)[0] == c]


def index_expect(tpl, verdict, c=TARGET_CHUNK, either=None) -> Expect:
    full = tpl.frame_exps()
    skipped = replace_chunk(full, c, None)
    if verdict[0] == "valid":
        frames = replace_chunk(full, c, frames_from_index(tpl, c, verdict[1], verdict[2]))
        alts = []
    else:
        frames, alts = skipped, []
    if either is not None:
        alts.append(replace_chunk(full, c, frames_from_index(tpl, c, either[0], either[1])))
    exp = Expect(frames=frames, alt_frames=alts, extra=tpl.extra_records())
    return exp


def case_idx_truncate(case, tpl):
    p = _index_path(tpl)
    data = rd(p)
    data = data[:cut_point(case.rng, len(data))]
    wr(p, data)
    return index_expect(tpl, oracle_npz(data))


def case_idx_flip(case, tpl):
    p = _index_path(tpl)
    data, _ = flip_bytes(case.rng, rd(p))
    wr(p, data)
    return index_expect(tpl, oracle_npz(data))


def case_idx_content(case, tpl):
    v = case.params["v"]
    p = _index_path(tpl)
    ch = _chunk_frames(tpl, TARGET_CHUNK)
    fn = np.array([a for a, _ in ch], dtype=np.int64)
    ft = np.array([b for _, b in ch], dtype=np.float64)
    marker = marker_path(tpl)
    invalid = ("invalid",)
    if v in ("pickle_fn", "pickle_ft"):
        arrs = {"frame_number": pickled_object_array(marker) if v == "pickle_fn" else fn,
                "frame_time": pickled_object_array(marker) if v == "pickle_ft" else ft}
        buf = io.BytesIO()
        np.savez(buf, **arrs)  # np.savez pickles object arrays
        wr(p, buf.getvalue())
        exp = index_expect(tpl, invalid)
        exp.marker = marker
        return exp
    spec: dict[str, Callable] = {
        "len_mismatch": lambda: (npz_bytes(frame_number=fn, frame_time=ft[:-1]), invalid),
        "fn_2d_col": lambda: (npz_bytes(frame_number=fn[:, None], frame_time=ft), invalid),
        "fn_2d_square": lambda: (npz_bytes(frame_number=fn.reshape(2, 2), frame_time=ft.reshape(2, 2)), invalid),
        "fn_str": lambda: (npz_bytes(frame_number=fn.astype(str), frame_time=ft), invalid),
        "ft_str_text": lambda: (npz_bytes(frame_number=fn, frame_time=np.array(["a", "b", "c", "d"])), invalid),
        "fn_float_frac": lambda: (npz_bytes(frame_number=fn + 0.5, frame_time=ft), invalid),
        "fn_float_nan": lambda: (npz_bytes(frame_number=np.where(fn == fn[1], np.nan, fn), frame_time=ft), invalid),
        "fn_float_huge": lambda: (npz_bytes(frame_number=fn * 1e30, frame_time=ft), invalid),
        "fn_uint64_huge": lambda: (npz_bytes(frame_number=fn.astype(np.uint64) + np.uint64(2 ** 63), frame_time=ft),
                                   invalid),
        "ft_complex": lambda: (npz_bytes(frame_number=fn, frame_time=ft + 1j), invalid),
        "ft_datetime": lambda: (npz_bytes(frame_number=fn, frame_time=ft.astype("datetime64[s]")), invalid),
        "fn_0d": lambda: (npz_bytes(frame_number=fn[0], frame_time=ft), invalid),
        "both_0d": lambda: (npz_bytes(frame_number=fn[0], frame_time=ft[0]), invalid),
        "no_fn": lambda: (npz_bytes(frame_time=ft), invalid),
        "no_ft": lambda: (npz_bytes(frame_number=fn), invalid),
        "fn_struct": lambda: (npz_bytes(frame_number=np.zeros(4, dtype=[("a", "i8")]), frame_time=ft), invalid),
        "not_zip": lambda: (bytes(case.rng.randrange(256) for _ in range(300)), invalid),
        "empty_file": lambda: (b"", invalid),
        "plain_npy": lambda: (npy_bytes(fn), invalid),
        "pickle_file": lambda: (pickle.dumps({"frame_number": fn, "frame_time": ft}), invalid),
    }
    if v in spec:
        data, verdict = spec[v]()
        wr(p, data)
        return index_expect(tpl, verdict)
    if v == "ft_str_num":  # numeric strings: may be read as numbers or rejected
        wr(p, npz_bytes(frame_number=fn, frame_time=ft.astype(str)))
        return index_expect(tpl, invalid, either=(list(fn), [float(x) for x in ft.astype(str)]))
    if v == "fn_float_int":
        wr(p, npz_bytes(frame_number=fn.astype(np.float64), frame_time=ft))
        return index_expect(tpl, invalid, either=(list(fn), list(ft)))
    if v == "fn_bool":
        b = np.array([True, False, True, True])
        wr(p, npz_bytes(frame_number=b, frame_time=ft))
        return index_expect(tpl, invalid, either=([int(x) for x in b], list(ft)))
    if v == "ft_nan_inf":
        ft2 = ft.copy()
        ft2[0], ft2[1], ft2[3] = np.nan, np.inf, -np.inf
        wr(p, npz_bytes(frame_number=fn, frame_time=ft2))
        return index_expect(tpl, oracle_arrays(fn, ft2))
    if v == "fn_uint64_ok":
        wr(p, npz_bytes(frame_number=fn.astype(np.uint64), frame_time=ft))
        return index_expect(tpl, oracle_arrays(fn, ft))
    if v == "fn_int8":
        f8 = (fn - 100).astype(np.int8)
        wr(p, npz_bytes(frame_number=f8, frame_time=ft))
        return index_expect(tpl, oracle_arrays(f8, ft))
    if v == "fn_bigendian":
        wr(p, npz_bytes(frame_number=fn.astype(">i8"), frame_time=ft.astype(">f8")))
        return index_expect(tpl, oracle_arrays(fn, ft))
    if v == "ft_int":
        ti = ft.astype(np.int64)
        wr(p, npz_bytes(frame_number=fn, frame_time=ti))
        return index_expect(tpl, oracle_arrays(fn, ti))
    if v == "ft_float32":
        t32 = np.arange(4, dtype=np.float32) * np.float32(0.25)
        wr(p, npz_bytes(frame_number=fn, frame_time=t32))
        return index_expect(tpl, ("valid", list(fn), [float(x) for x in t32]))
    if v == "empty":
        wr(p, npz_bytes(frame_number=fn[:0], frame_time=ft[:0]))
        return index_expect(tpl, ("valid", [], []))
    if v == "extra_keys":
        wr(p, npz_bytes(frame_number=fn, frame_time=ft, junk=np.arange(5), other=np.array(["x"])))
        return index_expect(tpl, oracle_arrays(fn, ft))
    if v == "longer":
        fn6 = np.concatenate([fn, fn[-1:] + np.arange(1, 3)])
        ft6 = np.concatenate([ft, ft[-1:] + np.arange(1, 3)])
        wr(p, npz_bytes(frame_number=fn6, frame_time=ft6))
        return index_expect(tpl, oracle_arrays(fn6, ft6))
    if v == "shorter":
        wr(p, npz_bytes(frame_number=fn[:2], frame_time=ft[:2]))
        return index_expect(tpl, oracle_arrays(fn[:2], ft[:2]))
    if v == "fortran":
        wr(p, npz_bytes(frame_number=np.asfortranarray(fn), frame_time=ft))
        return index_expect(tpl, oracle_arrays(fn, ft))
    if v in ("header_huge_shape", "header_lies_shape"):
        good = npy_bytes(fn)
        shape = "(1000000000000,)" if v == "header_huge_shape" else "(400,)"
        hdr_end = good.index(b"\n") + 1
        hdr = good[10:hdr_end].decode("latin1").replace("(4,)", shape)
        hdr = hdr.rstrip("\n").rstrip(" ")
        hdr = hdr + " " * ((64 - (10 + len(hdr) + 1) % 64) % 64) + "\n"
        bad = good[:8] + len(hdr).to_bytes(2, "little") + hdr.encode("latin1") + good[hdr_end:]
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("frame_number.npy", bad)
            z.writestr("frame_time.npy", npy_bytes(ft))
        wr(p, buf.getvalue())
        return index_expect(tpl, invalid)
    if v == "zip_dir_entry":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("frame_number.npy/", b"")
            z.writestr("frame_time.npy", npy_bytes(ft))
        wr(p, buf.getvalue())
        return index_expect(tpl, invalid)
    if v == "npz_dir":
        rm(p)
        os.mkdir(p)
        return index_expect(tpl, invalid)
    raise AssertionError(v)


def case_idx_yaml(case, tpl):
    import yaml

    v = case.params["v"]
    npz = _index_path(tpl)
    p = _index_path(tpl, ext=".yaml")
    ch = _chunk_frames(tpl, TARGET_CHUNK)
    fn = [a for a, _ in ch]
    ft = [b for _, b in ch]
    marker = marker_path(tpl)
    if v != "with_npz":
        rm(npz)
    good = yaml.safe_dump({"frame_number": fn, "frame_time": ft})
    invalid = ("invalid",)
    if v in ("valid", "with_npz"):
        wr(p, good.encode() if v == "valid" else b"frame_number: [1, 2]\nframe_time: [1.0]\n")
        return index_expect(tpl, ("valid", fn, ft))
    if v == "valid_nan":
        ft2 = [float("nan"), ft[1], float("inf"), ft[3]]
        wr(p, yaml.safe_dump({"frame_number": fn, "frame_time": ft2}).encode())
        return index_expect(tpl, ("valid", fn, ft2))
    if v == "truncate":
        data = good.encode()
        data = data[:cut_point(case.rng, len(data))]
        wr(p, data)
        try:
            doc = yaml.safe_load(data)
            verdict = oracle_arrays(np.asarray(doc["frame_number"]), np.asarray(doc["frame_time"], dtype=float))
        except Exception:
            verdict = invalid
        return index_expect(tpl, verdict)
    bodies = {
        "python_tag": f"frame_number: !!python/object/apply:builtins.open [{marker!r}, w]\nframe_time: [1.0]\n",
        "list_top": "- 1\n- 2\n",
        "null": "",
        "strings": "frame_number: [a, b, c, d]\nframe_time: [1, 2, 3, 4]\n",
        "len_mismatch": "frame_number: [1, 2, 3, 4]\nframe_time: [1, 2]\n",
        "nested": "frame_number: [[1, 2], [3, 4]]\nframe_time: [[1, 2], [3, 4]]\n",
        "deep_nest": "frame_number: " + "[" * 20000 + "]" * 20000 + "\nframe_time: []\n",
        "huge_int": "frame_number: [" + "9" * 40 + ", 1, 2, 3]\nframe_time: [1, 2, 3, 4]\n",
        "missing_key": "frame_number: [1, 2, 3, 4]\n",
        "bad_timestamp": "frame_number: [1, 2, 3, 4]\nframe_time: [2020-13-45, 1, 2, 3]\n",
    }
    wr(p, bodies[v].encode())
    exp = index_expect(tpl, invalid)
    exp.marker = marker
    return exp


def case_idx_framelog(case, tpl):
    v = case.params["v"]
    npz = _index_path(tpl)
    p = _index_path(tpl, ext=".frames")
    ch = _chunk_frames(tpl, TARGET_CHUNK)
    dt = np.dtype([("frame_number", "<i8"), ("frame_time", "<f8")])
    rec = np.array(ch, dtype=dt)
    rm(npz)
    if v == "valid":
        wr(p, rec.tobytes())
        return index_expect(tpl, ("valid", [a for a, _ in ch], [b for _, b in ch]))
    if v == "torn":
        data = rec.tobytes()
        data = data[:2 * dt.itemsize + 5]
        wr(p, data)
        return index_expect(tpl, ("valid", [a for a, _ in ch[:2]], [b for _, b in ch[:2]]))
    if v == "garbage":
        data = bytes(case.rng.randrange(256) for _ in range(3 * dt.itemsize))
        wr(p, data)
        r = np.frombuffer(data, dtype=dt)
        # arbitrary numbers are still numbers: read as they are, or rejected as implausible
        exp = index_expect(tpl, ("invalid",), either=([int(x) for x in r["frame_number"]],
                                                       [float(x) for x in r["frame_time"]]))
        return exp
    if v == "empty":
        wr(p, b"")
        return index_expect(tpl, ("valid", [], []))
    if v == "with_npz_corrupt":
        wr(p, rec.tobytes())
        wr(npz, b"PK\x03\x04garbage")
        exp = index_expect(tpl, ("invalid",), either=([a for a, _ in ch], [b for _, b in ch]))
        return exp
    raise AssertionError(v)


# --- extra data ----------------------------------------------------------------------------------
def _extra_path(tpl, c=TARGET_CHUNK):
    return os.path.join(tpl.path, tpl.extra_rel(c))


def _other_records(tpl, c=TARGET_CHUNK):
    return [r for ch, r in tpl.extra if ch != c]


def _with_chunk_records(tpl, recs, c=TARGET_CHUNK):
    out = []
    done = False
    for ch, r in tpl.extra:
        if ch == c:
            if not done:
                out.extend(recs)
                done = True
            continue
        if ch > c and not done:
            out.extend(recs)
            done = True
        out.append(r)
    if not done:
        out.extend(recs)
    return out


def xd_expect(tpl, recs_or_none, name, alt=None):
    """Extra data after damaging chunk 1's file: its records (or a clean error naming it)."""
    if recs_or_none is None:
        exp = base_expect(tpl, extra=None, extra_names=(name,), extra_ignore=_other_records(tpl))
    else:
        exp = base_expect(tpl, extra=_with_chunk_records(tpl, recs_or_none))
    if alt is not None:
        exp.extra_alt = [_with_chunk_records(tpl, a) for a in alt]
    return exp


def case_xd_truncate(case, tpl):
    p = _extra_path(tpl)
    text = rd(p).decode("utf-8")
    data = text.encode("utf-8")
    k = cut_point(case.rng, len(data))
    cut = data[:k]
    wr(p, cut)
    spans = json_record_spans(text)
    keep = [r for r, end in spans if len(text[:end].encode("utf-8")) <= k]
    return xd_expect(tpl, keep, os.path.basename(p))


def case_xd_flip(case, tpl):
    p = _extra_path(tpl)
    data, pos = flip_bytes(case.rng, rd(p), count=1)
    wr(p, data)
    text_ok = None
    try:
        doc = json.loads(data.decode("utf-8"))
        if isinstance(doc, list) and all(isinstance(r, dict) for r in doc):
            text_ok = doc
    except Exception:
        pass
    orig = [r for r, _ in json_record_spans(rd(os.path.join(template(tpl.fmt, tpl.color).path,
                                                            tpl.extra_rel(TARGET_CHUNK))).decode())]
    if text_ok is not None:
        return xd_expect(tpl, text_ok, os.path.basename(p))
    # damage nobody can read past: a clean error, or (only if no record was hit) every record
    exp = xd_expect(tpl, None, os.path.basename(p))
    exp.extra_alt = [_with_chunk_records(tpl, orig)]
    return exp


def case_xd_replace(case, tpl):
    v = case.params["v"]
    p = _extra_path(tpl)
    name = os.path.basename(p)
    orig = [r for r, _ in json_record_spans(rd(p).decode())]
    text = rd(p).decode()
    end0 = json_record_spans(text)[0][1]
    bodies = {"num": "42", "str": '"records"', "null": "null", "true": "true", "list_of_num": "[1, 2, 3]",
              "nested_list": "[[{\"a\": 1}]]", "mixed": '[{"a": 1}, 3]', "deep_nest": "[" * 100000 + "]" * 100000,
              "garbage_mid": text[:end0] + ", @@garbage@@" + text[end0:-1],
              "closed_early": text[:end0] + "]" + text[end0:]}
    if v in bodies:
        wr(p, bodies[v].encode())
        return xd_expect(tpl, None, name)
    if v == "dict":
        wr(p, b'{"a": 1}')
        exp = xd_expect(tpl, None, name)
        exp.extra_alt = [_with_chunk_records(tpl, [{"a": 1}])]
        return exp
    if v in ("empty_list", "empty_file", "whitespace"):
        wr(p, {"empty_list": b"[]", "empty_file": b"", "whitespace": b" \n\t "}[v])
        return xd_expect(tpl, [], name)
    if v == "invalid_utf8":
        wr(p, text.replace("pos", "p\xffs", 1).encode("latin1", errors="replace") if False else
           text.encode().replace(b"pos", b"p\xff\xfes", 1))
        alt_recs = json.loads(text.encode().replace(b"pos", b"p\xff\xfes", 1).decode("utf-8", "replace"))
        exp = xd_expect(tpl, None, name)
        exp.extra_alt = [_with_chunk_records(tpl, alt_recs)]
        return exp
    if v == "bom":
        wr(p, b"\xef\xbb\xbf" + text.encode())
        exp = xd_expect(tpl, None, name)
        exp.extra_alt = [_with_chunk_records(tpl, orig)]
        return exp
    if v == "nan_tokens":
        recs = [{"a": float("nan"), "b": float("inf"), "c": -float("inf"), "frame_index": 4}]
        wr(p, json.dumps(recs).encode())
        return xd_expect(tpl, recs, name)
    if v == "trailing_junk":
        wr(p, (text + "\n\x00\x00junk").encode())
        exp = xd_expect(tpl, None, name)
        exp.extra_alt = [_with_chunk_records(tpl, orig)]
        return exp
    if v == "torn_writer":  # writer killed after a record: '[{...}, {...}'
        wr(p, text.rstrip()[:-1].encode())
        return xd_expect(tpl, orig, name)
    if v == "torn_writer_mid":  # killed inside a record's write
        t = text.rstrip()[:-1]
        cut = t.rindex(", {") + 9
        wr(p, t[:cut].encode())
        return xd_expect(tpl, orig[:-1], name)
    if v == "huge_number":
        recs = [{"big": 10 ** 400, "frame_index": 4}]
        wr(p, ('[{"big": ' + "9" * 400 + ', "frame_index": 4}]').encode())
        exp = xd_expect(tpl, None, name)
        exp.extra_alt = [_with_chunk_records(tpl, [{"big": int("9" * 400), "frame_index": 4}])]
        return exp
    if v == "dup_keys":
        wr(p, b'[{"a": 1, "a": 2, "frame_index": 4}]')
        return xd_expect(tpl, [{"a": 2, "frame_index": 4}], name)
    raise AssertionError(v)


def _motif_records(n=6, unused=2, unsorted=False):
    recs = []
    for k in range(n):
        recs.append({"frame_number": 100 + k if k < n - unused else -1, "frame_index": k,
                     "sensor_time": T0 + k, "value": k * 1.5})
    if unsorted:
        recs = list(reversed(recs))
    return recs


def case_xd_motif_json(case, tpl):
    v = case.params["v"]
    p = os.path.join(tpl.path, "%06d.extra_data.json" % TARGET_CHUNK)
    name = os.path.basename(p)
    recs = _motif_records(unsorted=v == "unsorted")
    want = sorted([r for r in recs if r["frame_number"] >= 0], key=lambda r: (r["frame_index"], r["sensor_time"]))
    text = json.dumps(recs)
    if v in ("valid", "unsorted"):
        wr(p, text.encode())
        return xd_expect(tpl, want, name)
    if v.startswith("truncate"):
        k = cut_point(case.rng, len(text), lo=2)
        wr(p, text[:k].encode())
        spans = json_record_spans(text)
        keep = [r for r, end in spans if end <= k]
        keep = sorted([r for r in keep if r["frame_number"] >= 0], key=lambda r: (r["frame_index"], r["sensor_time"]))
        return xd_expect(tpl, keep, name)
    if v == "not_list":
        wr(p, b'"motif"')
        return xd_expect(tpl, None, name)
    raise AssertionError(v)


def _h5_expected(cols, camera, delay):
    mask = camera["frame_number"] >= 0
    out = []
    for k in np.flatnonzero(mask):
        r = {c: float(v[k]) for c, v in cols.items()}
        for f in camera.dtype.names:
            r[f] = camera[f][k].item()
        r["sample_delay"] = float(delay[k])
        out.append(r)
    return out


def write_motif_h5(path, variant="valid", rows=8, unused=2):
    import h5py

    cam_dt = np.dtype([("frame_number", "<i8"), ("frame_time", "<f8"), ("frame_index", "<i8")])
    camera = np.zeros(rows, dtype=cam_dt)
    camera["frame_number"] = np.arange(rows) + 100
    if unused:
        camera["frame_number"][rows - unused:] = -1
    camera["frame_time"] = T0 + np.arange(rows) * 0.04
    camera["frame_index"] = np.arange(rows)
    daq = np.vstack([np.arange(rows) * 1.0, np.arange(rows) * 2.0])
    ai = np.arange(rows)[None, :] * 0.5
    delay = np.arange(rows) * 0.001
    with h5py.File(path, "w") as f:
        f.attrs["datasets"] = "daq,ai"
        d = f.create_dataset("daq", data=daq)
        d.attrs["column_names"] = "a,b"
        d.attrs["samplerate"] = 1000.0
        d = f.create_dataset("ai", data=ai)
        d.attrs["column_names"] = "c"
        f.create_dataset("camera", data=camera)
        f.create_dataset("sample_delay", data=delay)
        if variant == "no_camera":
            del f["camera"]
        elif variant == "no_sample_delay":
            del f["sample_delay"]
        elif variant == "no_dataset":
            del f["ai"]
        elif variant == "no_column_names":
            del f["daq"].attrs["column_names"]
        elif variant == "no_datasets_attr":
            del f.attrs["datasets"]
        elif variant == "datasets_attr_empty":
            f.attrs["datasets"] = ""
        elif variant == "datasets_attr_int":
            f.attrs["datasets"] = 5
        elif variant == "datasets_attr_bytes":
            f.attrs["datasets"] = np.bytes_(b"daq,ai")
        elif variant == "camera_plain":
            del f["camera"]
            f.create_dataset("camera", data=np.arange(rows))
        elif variant == "camera_no_fn":
            del f["camera"]
            f.create_dataset("camera", data=np.zeros(rows, dtype=[("frame_time", "<f8")]))
        elif variant == "dataset_1d":
            del f["ai"]
            d = f.create_dataset("ai", data=np.arange(rows) * 0.5)
            d.attrs["column_names"] = "c"
        elif variant == "dataset_wrong_cols":
            f["daq"].attrs["column_names"] = "a,b,extra"
        elif variant == "sample_delay_short":
            del f["sample_delay"]
            f.create_dataset("sample_delay", data=delay[:3])
        elif variant == "group_dataset":
            del f["ai"]
            g = f.create_group("ai")
            g.attrs["column_names"] = "c"
        elif variant == "column_names_array":
            f["daq"].attrs["column_names"] = np.array([b"a", b"b"])
    cols = {"a": daq[0], "b": daq[1], "c": ai[0]}
    return cols, camera, delay


def case_xd_h5(case, tpl):
    v = case.params["v"]
    p = os.path.join(tpl.path, "%06d.extra_data.h5" % TARGET_CHUNK)
    name = os.path.basename(p)
    if v == "json_text":
        wr(p, b'[{"a": 1}]')
        return xd_expect(tpl, None, name)
    if v == "empty_file":
        wr(p, b"")
        return xd_expect(tpl, None, name)
    if v == "zero_rows":
        cols, camera, delay = write_motif_h5(p, "valid", rows=0, unused=0)
        return xd_expect(tpl, [], name, alt=None)
    variant = "valid" if v in ("valid", "valid_unused_rows") else v
    cols, camera, delay = write_motif_h5(p, variant, unused=2 if v != "valid" else 0)
    want = _h5_expected(cols, camera, delay)
    if v in ("valid", "valid_unused_rows", "datasets_attr_bytes"):
        return xd_expect(tpl, want, name)
    if v == "datasets_attr_empty":  # no DAQ datasets: camera and sample delay only
        return xd_expect(tpl, None, name, alt=[[{k: r[k] for k in r if k not in "abc"} for r in want]])
    return xd_expect(tpl, None, name)


def case_xd_h5_truncate(case, tpl):
    p = os.path.join(tpl.path, "%06d.extra_data.h5" % TARGET_CHUNK)
    cols, camera, delay = write_motif_h5(p)
    data = rd(p)
    k = cut_point(case.rng, len(data))
    wr(p, data[:k])
    return xd_expect(tpl, None, os.path.basename(p))


def case_xd_h5_flip(case, tpl):
    p = os.path.join(tpl.path, "%06d.extra_data.h5" % TARGET_CHUNK)
    cols, camera, delay = write_motif_h5(p)
    data, _ = flip_bytes(case.rng, rd(p), count=case.rng.randint(1, 8))
    wr(p, data)
    # HDF5 has no checksums on raw data: a flip in the numbers is undetectable, so any result is
    # accepted here as long as it is a DataFrame of the right length or a clean error
    exp = xd_expect(tpl, None, os.path.basename(p))
    exp.extra = "h5flip"
    return exp


# --- frame files ---------------------------------------------------------------------------------
TARGET_FRAME = (TARGET_CHUNK, 1)


def _frame_path(tpl, c=TARGET_CHUNK, pos=1):
    return os.path.join(tpl.path, tpl.frame_rel(c, pos))


def _npy_oracle(data, tpl):
    """The pixels a damaged npy file holds, if it still is a frame of the store's shape and dtype."""
    try:
        arr = np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
    except Exception:
        return None
    if arr.dtype != np.uint8 or arr.shape != tpl.shape:
        return None
    return arr


def frame_expect(tpl, pred, status="damaged", names=None, array=None):
    frames = tpl.frame_exps()
    for f in frames:
        if pred(f):
            f.names = names if names is not None else (os.path.basename(tpl.frame_rel(f.chunk, f.pos)),)
            f.exact = False
            if array is not None:
                f.status, f.array = "array", array
            else:
                f.status = "lossy" if (tpl.fmt in LOSSY_FORMATS and status == "damaged") else status
    return base_expect(tpl, frames=frames)


def case_fr_truncate(case, tpl):
    p = _frame_path(tpl)
    data = rd(p)
    if tpl.fmt == "raw":
        k = cut_point(case.rng, len(data))
        wr(p, data[:k])
        fb = int(np.prod(tpl.shape))
        # frames wholly before the cut stay readable; a cut header breaks the chunk
        return frame_expect(tpl, lambda f: f.chunk == TARGET_CHUNK and (k < 4096 or 4096 + (f.pos + 1) * fb > k))
    k = cut_point(case.rng, len(data))
    wr(p, data[:k])
    return frame_expect(tpl, lambda f: (f.chunk, f.pos) == TARGET_FRAME)


def case_fr_flip(case, tpl):
    p = _frame_path(tpl)
    data = rd(p)
    rng = case.rng
    if tpl.fmt == "npy":
        new, _ = flip_bytes(rng, data)
        wr(p, new)
        arr = _npy_oracle(new, tpl)
        if arr is not None:
            return frame_expect(tpl, lambda f: (f.chunk, f.pos) == TARGET_FRAME, array=arr)
        return frame_expect(tpl, lambda f: (f.chunk, f.pos) == TARGET_FRAME)
    if tpl.fmt == "raw":
        in_header = rng.random() < 0.5
        lo, hi = (0, 4096) if in_header else (4096, len(data))
        new, pos = flip_bytes(rng, data, lo, hi)
        wr(p, new)
        try:
            hdr_ok = new[:4096] == data[:4096] or _raw_header_equiv(new[:4096], data[:4096])
        except Exception:
            hdr_ok = False
        fb = int(np.prod(tpl.shape))
        if not hdr_ok:
            return frame_expect(tpl, lambda f: f.chunk == TARGET_CHUNK)
        exp = base_expect(tpl)
        for f in exp.frames:
            if f.chunk == TARGET_CHUNK:
                off = 4096 + f.pos * fb
                if any(off <= q < off + fb for q in pos):
                    f.status = "array"
                    f.array = np.frombuffer(new[off:off + fb], dtype=np.uint8).reshape(tpl.shape)
                    f.names = (os.path.basename(p),)
        return exp
    if tpl.fmt == "png":
        new, _ = flip_bytes(rng, data, 8, len(data))  # past the signature: chunk data, lengths, CRCs
    else:
        new, _ = flip_bytes(rng, data, len(data) // 3, len(data))
    wr(p, new)
    return frame_expect(tpl, lambda f: (f.chunk, f.pos) == TARGET_FRAME)


def _raw_header_equiv(a, b):
    import ast

    def parse(h):
        n = int.from_bytes(h[8:10], "little")
        return h[:8], n, ast.literal_eval(h[10:10 + n].decode("latin1"))

    return parse(a) == parse(b)


def _encode_as(fmt, img):
    from imgstore.codecs.images import IMAGE_FORMATS

    if fmt == "npy":
        return npy_bytes(img)
    return IMAGE_FORMATS[fmt].encode(img)


def case_fr_replace(case, tpl):
    v = case.params["v"]
    p = _frame_path(tpl)
    name = os.path.basename(p)
    target = lambda f: (f.chunk, f.pos) == TARGET_FRAME  # noqa: E731
    if tpl.fmt == "raw":
        target = lambda f: f.chunk == TARGET_CHUNK  # noqa: E731  (one file holds the whole chunk)
    bar = tpl.bars[TARGET_CHUNK * tpl.chunksize + 1]
    src = source_frame(bar, tpl.color)
    other = source_frame(bar, not tpl.color)
    marker = marker_path(tpl)
    fmt = "npy" if tpl.fmt == "raw" else tpl.fmt
    out_fmt = {"npy": "png", "png": "jpg", "jpg": "png"}[fmt]
    damaged = frame_expect(tpl, target)
    if v == "empty":
        wr(p, b"")
        return damaged
    if v == "garbage":
        wr(p, bytes(case.rng.randrange(256) for _ in range(200)))
        return damaged
    if v == "other_format":
        wr(p, _encode_as(out_fmt, src))
        return damaged
    if v == "missing":
        rm(p)
        return damaged
    if v == "is_directory":
        rm(p)
        os.mkdir(p)
        return damaged
    if v == "dangling_symlink":
        rm(p)
        symlink(os.path.join(tpl.path, "nope"), p)
        return damaged
    if v == "symlink_loop":
        rm(p)
        symlink(p, p)
        return damaged
    if v == "symlink_outside":
        outside = os.path.join(os.path.dirname(tpl.path), "outside-" + name)
        shutil.copy(p, outside)
        rm(p)
        symlink(outside, p)
        return frame_expect(tpl, target)  # the same pixels through the link, or refused cleanly
    if v == "fifo":
        rm(p)
        if not hasattr(os, "mkfifo"):
            raise SkipCase("no FIFOs on this platform")
        os.mkfifo(p)
        return damaged
    if tpl.fmt == "raw":
        # a raw chunk is one .npy of all the chunk's frames: swap in arrays that disagree with the metadata
        n = sum(1 for f in tpl.frame_exps() if f.chunk == TARGET_CHUNK)
        stack = np.stack([source_frame(tpl.bars[TARGET_CHUNK * tpl.chunksize + k], tpl.color) for k in range(n)])
        arrays = {"pickle": pickled_object_array(marker), "bigger": np.zeros((n, 96, 128) + tpl.shape[2:], np.uint8),
                  "smaller": stack[:, :24], "uint16": stack.astype(np.uint16), "float64": stack.astype(float),
                  "color": np.stack([source_frame(tpl.bars[TARGET_CHUNK * tpl.chunksize + k], not tpl.color)
                                     for k in range(n)]),
                  "gray": stack[..., 0] if tpl.color else stack, "one_d": stack.ravel(), "four_d": stack[None],
                  "zero_d": np.array(5), "fortran": np.asfortranarray(stack), "rgba": np.zeros(stack.shape[:3] + (4,),
                                                                                           np.uint8),
                  "bool": stack > 0}
        arr = arrays[v]
        wr(p, npy_bytes(arr, allow_pickle=arr.dtype.hasobject))
        exp = frame_expect(tpl, target)
        exp.marker = marker
        if v == "fortran" or (v == "gray" and not tpl.color):
            # same frames, other layout: readable (with the right pixels) or refused cleanly
            for f in exp.frames:
                if f.chunk == TARGET_CHUNK:
                    f.status = "damaged"
        return exp
    if v == "pickle":
        if fmt != "npy":
            wr(p, pickle.dumps(_Marker(marker)))
        else:
            wr(p, npy_bytes(pickled_object_array(marker), allow_pickle=True))
        exp = damaged
        exp.marker = marker
        return exp
    h, w = GRAY
    imgs = {
        "bigger": np.zeros((h * 2, w * 2) + tpl.shape[2:], np.uint8),
        "smaller": src[: h // 2],
        "uint16": src.astype(np.uint16) * 257,
        "float64": src.astype(np.float64),
        "color": other if not tpl.color else src,
        "gray": other if tpl.color else src,
        "one_d": src.ravel(),
        "four_d": src[None],
        "zero_d": np.array(7, np.uint8),
        "fortran": np.asfortranarray(src),
        "rgba": np.dstack([np.dstack([src] * 3) if src.ndim == 2 else src, np.full(GRAY, 255, np.uint8)]),
        "bool": src > 100,
    }
    img = imgs[v]
    try:
        if fmt == "npy":
            data = npy_bytes(img)
        elif fmt == "png" and img.dtype in (np.uint8, np.uint16) and img.ndim in (2, 3):
            import imagecodecs

            data = imagecodecs.png_encode(img)
        elif fmt == "jpg" and img.dtype == np.uint8 and img.ndim in (2, 3) and img.shape[-1:] != (4,):
            import imagecodecs

            data = imagecodecs.jpeg8_encode(img, level=95)
        else:
            data = npy_bytes(img)  # cannot be written in this format: the wrong bytes altogether
    except Exception:
        data = npy_bytes(img)
    wr(p, data)
    return damaged


# --- layout: missing and stray files --------------------------------------------------------------
def _outside_chunk(tpl) -> str:
    """A valid chunk folder outside the store (two frames with barcodes 500, 501)."""
    root = os.path.dirname(tpl.path)
    path = os.path.join(root, "outside-store")
    if not os.path.exists(path):
        write_store(path, tpl.fmt, tpl.color, [500, 501], [T0 + 100, T0 + 101], [500, 501], extra_every=0)
    return os.path.join(path, "000000")


def case_stray(case, tpl):
    v = case.params["v"]
    P = lambda *a: os.path.join(tpl.path, *a)  # noqa: E731
    full = tpl.frame_exps()
    c = TARGET_CHUNK
    last = tpl.chunks[-1]
    if v == "rm_chunk":
        rm(P(tpl.chunk_rel(c)))
        return base_expect(tpl, frames=replace_chunk(full, c, None), extra=tpl.extra_records(
            [x for x in tpl.chunks if x != c]))
    if v == "rm_first_chunk":
        rm(P(tpl.chunk_rel(0)))
        return base_expect(tpl, frames=replace_chunk(full, 0, None), extra=tpl.extra_records(tpl.chunks[1:]))
    if v == "rm_last_chunk":
        rm(P(tpl.chunk_rel(last)))
        return base_expect(tpl, frames=replace_chunk(full, last, None), extra=tpl.extra_records(tpl.chunks[:-1]))
    if v == "rm_all_chunks":
        for x in tpl.chunks:
            rm(P(tpl.chunk_rel(x)))
        return base_expect(tpl, frames=[], extra=None)
    if v == "rm_index":
        rm(P(tpl.index_rel(c)))
        return base_expect(tpl, frames=replace_chunk(full, c, None), extra_alt=[
            tpl.extra_records([x for x in tpl.chunks if x != c])])
    if v == "rm_frames":
        for f in os.listdir(P(tpl.chunk_rel(c))):
            if not f.startswith("index"):
                rm(P(tpl.chunk_rel(c), f))
        return frame_expect(tpl, lambda f: f.chunk == c)
    if v == "dir_abc":
        os.makedirs(P("abc", "000000"))
        wr(P("abc", "index.npz"), rd(P(tpl.index_rel(0))))
        return base_expect(tpl)
    if v == "tmp_file":
        wr(P("000007.tmp"), b"junk")
        wr(P(tpl.chunk_rel(c), "000007.tmp"), b"junk")
        return base_expect(tpl)
    if v == "ds_store":
        wr(P(".DS_Store"), b"\x00\x00\x00\x01Bud1" + bytes(100))
        wr(P("Thumbs.db"), b"\xd0\xcf\x11\xe0")
        os.makedirs(P("__MACOSX", "000000"))
        return base_expect(tpl)
    if v == "ds_store_in_chunk":
        wr(P(tpl.chunk_rel(c), ".DS_Store"), b"\x00\x00\x00\x01Bud1")
        wr(P(tpl.chunk_rel(c), "._000000.npy"), b"\x00\x05\x16\x07")
        return base_expect(tpl)
    if v == "dir_numeric_suffix":
        shutil.copytree(P(tpl.chunk_rel(c)), P("000003x"))
        shutil.copytree(P(tpl.chunk_rel(c)), P("000004.bak"))
        return base_expect(tpl)
    if v == "dir_negative":
        shutil.copytree(P(tpl.chunk_rel(c)), P("-00001"))
        shutil.copytree(P(tpl.chunk_rel(c)), P("+00005"))
        shutil.copytree(P(tpl.chunk_rel(c)), P(" 000006"))
        return base_expect(tpl)
    if v == "file_numeric":
        wr(P("000004"), b"not a folder")
        return base_expect(tpl)
    if v == "empty_numeric_dir":
        os.makedirs(P("000005"))
        return base_expect(tpl)
    if v == "index_no_frames":
        os.makedirs(P("000007"))
        shutil.copy(P(tpl.index_rel(c)), P("000007"))
        extra = [FrameExp(7, p, fn, ft, None, status="damaged",
                          names=(os.path.basename(tpl.frame_rel(7, p)),))
                 for p, (fn, ft) in enumerate(_chunk_frames(tpl, c))]
        return base_expect(tpl, frames=full + extra)
    if v == "unicode_digits":
        shutil.copytree(P(tpl.chunk_rel(c)), P("٠٠٠٠٠٧"))  # Arabic-Indic digits: not a chunk name
        shutil.copytree(P(tpl.chunk_rel(c)), P("０００００８"))  # full-width digits
        return base_expect(tpl)
    if v == "short_numeric_dir":  # chunk names are six digits: '7' and '0000009' are not chunk 7 / 9
        shutil.copytree(P(tpl.chunk_rel(c)), P("7"))
        frames7 = [FrameExp(7, f.pos, f.fn, f.ft, f.bar, exact=f.exact) for f in full if f.chunk == c]
        return base_expect(tpl, alt_frames=[full + frames7])
    if v in ("symlink_dir_outside", "symlink_chunk_outside"):
        out = _outside_chunk(tpl)
        if v == "symlink_dir_outside":
            symlink(os.path.dirname(out), P("linked"))
            return base_expect(tpl)
        symlink(out, P("000005"))
        ext = [FrameExp(5, 0, 500, T0 + 100, 500, exact=tpl.fmt in EXACT_FORMATS),
               FrameExp(5, 1, 501, T0 + 101, 501, exact=tpl.fmt in EXACT_FORMATS)]
        return base_expect(tpl, alt_frames=[full + ext])
    if v == "symlink_loop_dir":
        symlink(P("000006"), P("000006"))
        return base_expect(tpl)
    if v == "dangling_chunk_symlink":
        symlink(P("nowhere"), P("000006"))
        return base_expect(tpl)
    if v == "index_symlink_loop":
        ip = P(tpl.index_rel(c))
        rm(ip)
        symlink(ip, ip)
        return base_expect(tpl, frames=replace_chunk(full, c, None))
    if v == "index_is_dir":
        ip = P(tpl.index_rel(c))
        rm(ip)
        os.mkdir(ip)
        return base_expect(tpl, frames=replace_chunk(full, c, None))
    if v == "stale_lock":
        wr(P(".lock"), json.dumps({"pid": 999999999, "host": "gone", "started": 0}).encode())
        return base_expect(tpl)
    if v == "garbage_sqlite":
        wr(P(".index.sqlite"), b"SQLite format 3\x00" + bytes(case.rng.randrange(256) for _ in range(500)))
        return base_expect(tpl)
    if v == "garbage_cache":
        wr(P(".imgstore-frameindex"), b"IMGSTORE-FRAMEINDEX\n" + bytes(case.rng.randrange(256) for _ in range(500)))
        return base_expect(tpl)
    if v == "extra_frame_file":
        fp = _frame_path(tpl)
        if tpl.fmt != "raw":
            shutil.copy(fp, P(tpl.chunk_rel(c), "000099." + tpl.fmt))
        return base_expect(tpl)
    if v == "stray_yaml_index":
        wr(P(tpl.index_rel(c, ".yaml")), b"frame_number: [1]\nframe_time: [2.0]\n")
        return base_expect(tpl)
    if v == "tmp_index":
        wr(P(tpl.chunk_rel(c), ".tmp-abc123"), b"PK\x03\x04")
        wr(P(tpl.chunk_rel(c), "index.npz.tmp"), b"PK\x03\x04")
        return base_expect(tpl)
    if v == "motif_garbage_json":
        name = "%06d.extra_data.json" % c
        wr(P(name), b"\x00garbage{")
        return base_expect(tpl, extra=None, extra_names=(name,),
                           extra_ignore=tpl.extra_records([x for x in tpl.chunks if x != c]))
    if v == "huge_chunk_number":
        os.makedirs(P("9" * 40))
        shutil.copy(P(tpl.index_rel(c)), P("9" * 40))
        big = int("9" * 40)
        extra = [FrameExp(big, p, fn, ft, None, status="damaged", names=("9" * 40,))
                 for p, (fn, ft) in enumerate(_chunk_frames(tpl, c))]
        return base_expect(tpl, alt_frames=[full + extra])
    raise AssertionError(v)


# --- frame numbers and times: unusual but valid -----------------------------------------------------
def number_series(kind, rng, n):
    fts = [T0 + i * 0.04 for i in range(n)]
    fns = list(range(n))
    if kind == "dup":
        fns = [rng.randint(0, 3) for _ in range(n)]
    elif kind == "perm":
        rng.shuffle(fns)
    elif kind == "wrap":
        start = 65536 - rng.randint(1, n)
        fns = [(start + i) % 65536 for i in range(n)]
    elif kind == "negative":
        fns = [i - rng.randint(1, n) for i in range(n)]
    elif kind == "nan_times":
        for i in rng.sample(range(n), max(1, n // 3)):
            fts[i] = float("nan")
    elif kind == "perm_times":
        rng.shuffle(fts)
    elif kind == "dup_times":
        fts = [T0 + rng.randint(0, 2) for _ in range(n)]
    elif kind == "inf_times":
        fts[rng.randrange(n)] = float("inf")
        fts[rng.randrange(n)] = float("-inf")
    elif kind == "all_nan_times":
        fts = [float("nan")] * n
    elif kind == "huge_times":
        fts = [rng.choice([1e300, -1e300, 0.0, -0.0, 5e-324, T0]) for _ in range(n)]
    elif kind == "huge_numbers":
        base = rng.choice([2 ** 62, -2 ** 62, 2 ** 53 + 1])
        fns = [base + rng.randint(-3, 3) for _ in range(n)]
    elif kind == "mixed":
        fns = [rng.randint(-5, 5) for _ in range(n)]
        fts = [rng.choice([float("nan"), T0 + rng.randint(0, 4), float("inf")]) for _ in range(n)]
    return fns, fts


def case_numbers(case, tpl_unused):
    rng = case.rng
    kind = case.params["v"]
    n = {"single": 1, "chunksize": rng.randint(1, 13)}.get(kind, rng.randint(5, 12))
    chunksize = rng.choice([1, 2, 3, 4, 7]) if kind in ("chunksize", "mixed") else CHUNKSIZE
    fns, fts = number_series(kind, rng, n)
    bars = [1000 + i for i in range(n)]
    path = new_case_dir()
    tpl = write_store(path, case.fmt, case.color, fns, fts, bars, chunksize=chunksize, extra_every=3)
    exp = base_expect(tpl)
    return tpl, exp


# --- the frame index cache ------------------------------------------------------------------------
def case_cache(case, tpl):
    import imgstore
    from imgstore.index_cache import build_index

    v = case.params["v"]
    s = imgstore.new_for_filename(tpl.path)
    layout, storage = s._layout, s._storage
    s.close()
    build_index(storage, layout, use_cache=False, write_cache=True, min_frames_to_cache=0)
    p = os.path.join(tpl.path, ".imgstore-frameindex")
    if not os.path.exists(p):
        return base_expect(tpl)
    data = rd(p)
    rng = case.rng
    hdr_len = 20 + 8 + int.from_bytes(data[20:28], "little")
    if v == "truncate":
        wr(p, data[:cut_point(rng, len(data))])
    elif v == "flip_header":
        wr(p, flip_bytes(rng, data, 0, hdr_len)[0])
    elif v == "flip_arrays":
        start = (hdr_len + 4095) // 4096 * 4096
        wr(p, flip_bytes(rng, data, start, start + 80, count=2)[0])  # frame_number / frame_time bytes
    elif v == "garbage":
        wr(p, bytes(rng.randrange(256) for _ in range(len(data))))
    elif v == "empty":
        wr(p, b"")
    elif v == "other_store":  # a valid cache of another store whose files look the same
        other = fresh_copy(tpl)
        fns = [7] * len(tpl.fns)
        rm(other.path)
        t2 = write_store(other.path, tpl.fmt, tpl.color, fns, tpl.fts, tpl.bars, extra_every=0)
        s2 = imgstore.new_for_filename(t2.path)
        build_index(s2._storage, s2._layout, use_cache=False, write_cache=True, min_frames_to_cache=0)
        s2.close()
        wr(p, rd(os.path.join(t2.path, ".imgstore-frameindex")))
    return base_expect(tpl)


# --- video stores -------------------------------------------------------------------------------------
def case_video(case, tpl):
    kind = case.kind
    rng = case.rng
    c = TARGET_CHUNK
    p = os.path.join(tpl.path, tpl.chunk_rel(c))
    name = os.path.basename(p)
    data = rd(p)
    chunk_frames = lambda f: f.chunk == c  # noqa: E731
    if kind == "v_truncate":
        wr(p, data[:cut_point(rng, len(data))])
        return frame_expect(tpl, chunk_frames, status="lossy", names=(name,))
    if kind == "v_flip":
        wr(p, flip_bytes(rng, data, len(data) // 4, len(data) * 3 // 4, count=rng.randint(1, 4))[0])
        return frame_expect(tpl, chunk_frames, status="lossy", names=(name,))
    if kind == "v_zero_range":
        a = rng.randrange(len(data) // 2)
        b = bytearray(data)
        b[a:a + 512] = bytes(len(b[a:a + 512]))
        wr(p, bytes(b))
        return frame_expect(tpl, chunk_frames, status="lossy", names=(name,))
    if kind == "v_empty":
        wr(p, b"")
        return frame_expect(tpl, chunk_frames, names=(name,))
    if kind == "v_garbage":
        wr(p, bytes(rng.randrange(256) for _ in range(4000)))
        return frame_expect(tpl, chunk_frames, names=(name,))
    if kind == "v_missing":
        rm(p)
        return base_expect(tpl, frames=replace_chunk(tpl.frame_exps(), c, None), alt_frames=[
            frame_expect(tpl, chunk_frames, names=(name,)).frames], extra_alt=[
            tpl.extra_records([x for x in tpl.chunks if x != c])])
    if kind == "v_rm_index":
        rm(_index_path(tpl))
        return base_expect(tpl, frames=replace_chunk(tpl.frame_exps(), c, None))
    if kind == "v_longer_index":
        ch = _chunk_frames(tpl, c)
        fn = [a for a, _ in ch] + [990, 991]
        ft = [b for _, b in ch] + [T0 + 990, T0 + 991]
        wr(_index_path(tpl), npz_bytes(frame_number=np.array(fn), frame_time=np.array(ft)))
        frames = replace_chunk(tpl.frame_exps(), c, frames_from_index(tpl, c, fn, ft))
        return base_expect(tpl, frames=frames)
    if kind == "v_other_container":
        other = [f for f in VIDEO_FORMATS if f != tpl.fmt and supported(f)]
        if other:
            t2 = template(other[0], tpl.color)
            wr(p, rd(os.path.join(t2.path, t2.chunk_rel(c))))
        return frame_expect(tpl, chunk_frames, status="lossy", names=(name,))
    if kind == "v_stray":
        wr(os.path.join(tpl.path, "000007%s.tmp" % tpl.ext), b"junk")
        wr(os.path.join(tpl.path, "abc%s" % tpl.ext), data)
        wr(os.path.join(tpl.path, ".%06d%s" % (5, tpl.ext)), data)
        return base_expect(tpl)
    if kind == "v_swap_chunks":  # chunk 0's video under chunk 1's name: frames decode, but other barcodes
        wr(p, rd(os.path.join(tpl.path, tpl.chunk_rel(0))))
        return frame_expect(tpl, chunk_frames, status="lossy", names=(name,))
    if kind == "v_sidecar_garbage":
        for f in os.listdir(tpl.path):
            if f.startswith("%06d" % c) and f not in (name, os.path.basename(_index_path(tpl)),
                                                      os.path.basename(_extra_path(tpl))):
                wr(os.path.join(tpl.path, f), bytes(rng.randrange(256) for _ in range(300)))
        return base_expect(tpl)
    if kind == "fr_none":
        return base_expect(tpl)
    raise AssertionError(kind)


CASE_FUNCS = {
    "md_truncate": case_md_truncate, "md_flip": case_md_flip, "md_value": case_md_value, "md_struct": case_md_struct,
    "idx_truncate": case_idx_truncate, "idx_flip": case_idx_flip, "idx_content": case_idx_content,
    "idx_yaml": case_idx_yaml, "idx_framelog": case_idx_framelog,
    "xd_truncate": case_xd_truncate, "xd_flip": case_xd_flip, "xd_replace": case_xd_replace,
    "xd_motif_json": case_xd_motif_json, "xd_h5": case_xd_h5, "xd_h5_truncate": case_xd_h5_truncate,
    "xd_h5_flip": case_xd_h5_flip,
    "fr_truncate": case_fr_truncate, "fr_flip": case_fr_flip, "fr_replace": case_fr_replace,
    "stray": case_stray, "cache": case_cache,
}


def selfcheck_case(cid: str) -> Case:
    """Cases that check the runner itself: a segfault and a hang must each fail one case only."""
    return Case(cid, "selfcheck", "npy", False, cid.split("-", 1)[1])


def run_case(case: Case) -> dict:
    res = Result(case)
    try:
        if case.cat == "selfcheck":
            if case.kind == "segv":
                os.kill(os.getpid(), signal.SIGSEGV)
            elif case.kind == "hang":
                import time

                time.sleep(3600)
            return {"id": case.id, "cat": case.cat, "outcome": "correct", "fails": [], "cleans": [], "notes": []}
        if not supported(case.fmt):
            return {"id": case.id, "cat": case.cat, "outcome": "skip",
                    "fails": [f"format {case.fmt} not supported by this installation"]}
        if case.kind == "numbers":
            tpl, exp = case_numbers(case, None)
        else:
            tpl = fresh_copy(template(case.fmt, case.color))
            if case.cat == "video" and case.kind.startswith("v_") or case.kind == "fr_none":
                exp = case_video(case, tpl)
            else:
                exp = CASE_FUNCS[case.kind](case, tpl)
        if exp.extra == "h5flip":
            exp.extra = "skip"
            _probe_h5flip = True
        else:
            _probe_h5flip = False
        probe(tpl.path, exp, res)
        if _probe_h5flip:
            _check_h5flip(tpl, res)
        if exp.marker and os.path.exists(exp.marker):
            res.fail("security", f"marker file {exp.marker} was created: untrusted data was unpickled/executed")
    except SkipCase as e:
        return {"id": case.id, "cat": case.cat, "outcome": "skip", "fails": [str(e)]}
    except CaseTimeout:
        res.fail("timeout", f"case took more than {case.timeout} s (hang)")
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # noqa: BLE001
        res.fail("harness", f"{type(e).__name__}: {e}\n{traceback.format_exc()[-1500:]}")
    finally:
        _release_fifo_readers()
    return res.outcome()


def _release_fifo_readers():
    """Give readers blocked on a FIFO of the last case an end of file (read-ahead threads wait there)."""
    root = _WORK.get("root")
    if not root or not os.path.isdir(root):
        return
    case_dir = os.path.join(root, "case-%05d" % _WORK.get("n", 0))
    for dirpath, _, files in os.walk(case_dir):
        for f in files:
            p = os.path.join(dirpath, f)
            if not stat.S_ISFIFO(os.lstat(p).st_mode):
                continue
            for _ in range(20):
                try:
                    fd = os.open(p, os.O_WRONLY | os.O_NONBLOCK)
                except OSError:
                    break  # no reader waiting
                os.close(fd)


def _check_h5flip(tpl, res):
    import imgstore

    s = imgstore.new_for_filename(tpl.path)
    try:
        v, e = attempt(s.get_extra_data)
        if e is not None:
            res.error("get_extra_data", e, ("%06d.extra_data.h5" % TARGET_CHUNK,))
        elif v is None or not hasattr(v, "columns"):
            res.fail("get_extra_data", f"returned {type(v).__name__}")
        else:
            res.ok()
    finally:
        s.close()


# ---------------------------------------------------------------------------------------------------
# worker process
# ---------------------------------------------------------------------------------------------------
def _alarm(signum, frame):
    raise CaseTimeout()


def worker_main(case_file: str) -> int:
    import faulthandler
    import logging

    logging.disable(logging.CRITICAL)
    faulthandler.enable()
    with open(case_file) as f:
        ids = json.load(f)
    by_id = {c.id: c for c in all_cases()}
    has_alarm = hasattr(signal, "SIGALRM")
    if has_alarm:
        signal.signal(signal.SIGALRM, _alarm)
    out = sys.stdout
    try:
        for cid in ids:
            out.write("@@START@@ " + cid + "\n")
            out.flush()
            case = by_id[cid] if cid in by_id else selfcheck_case(cid)
            faulthandler.dump_traceback_later(case.timeout + 10, exit=True)  # hangs in C code, too
            if has_alarm:
                signal.alarm(case.timeout)
            try:
                r = run_case(case)
            finally:
                if has_alarm:
                    signal.alarm(0)
                faulthandler.cancel_dump_traceback_later()
            out.write("@@RESULT@@ " + json.dumps(r) + "\n")
            out.flush()
    finally:
        shutil.rmtree(work_root(), ignore_errors=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        sys.exit(worker_main(sys.argv[2]))
    print(__doc__)
