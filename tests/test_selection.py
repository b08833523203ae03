"""imgstore.selection: ranges as users write them, and the frames they select."""

from __future__ import annotations

import datetime

import numpy as np
import pytest

from imgstore.selection import Selection, parse_range

UTC = datetime.timezone.utc


def test_parse_range():
    assert parse_range("10:20") == (10, 20) and parse_range(":5") == (None, 5) and parse_range("-3:") == (-3, None)
    assert parse_range("1.5:2") == (1.5, 2)
    a, b = parse_range("2026-11-22T16:55:30:2026-11-22T17:00", allow_datetime=True)
    assert a == datetime.datetime(2026, 11, 22, 16, 55, 30) and b == datetime.datetime(2026, 11, 22, 17, 0)
    a, b = parse_range("2026-11-22T16:55:30Z/", allow_datetime=True)
    assert a == datetime.datetime(2026, 11, 22, 16, 55, 30, tzinfo=UTC) and b is None
    assert parse_range("30:2026-11-22T17:00+01:00", allow_datetime=True)[0] == 30
    for bad in ("10", "a:b", "1:2:3"):
        with pytest.raises(ValueError):
            parse_range(bad)
    with pytest.raises(ValueError):
        parse_range("2026-11-22T16:00:2026-11-22T17:00")  # datetimes only where allowed


def test_indices():
    fns = np.array([5, 6, 7, 9, 9, 12, 13, 14])
    t0 = datetime.datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    ts = t0 + np.arange(8) * 0.5
    assert Selection().indices(fns, ts).tolist() == list(range(8))
    assert Selection(start=2, stop=-1, every=2).indices(fns, ts).tolist() == [2, 4, 6]
    assert Selection(frame_numbers=(7, 13)).indices(fns, ts).tolist() == [2, 3, 4, 5]
    assert Selection(time=(1.0, 2.5)).indices(fns, ts).tolist() == [2, 3, 4]
    vienna = __import__("zoneinfo").ZoneInfo("Europe/Vienna")  # 01:00 there is 00:00 UTC
    sel = Selection(time=(datetime.datetime(2026, 1, 1, 1, 0, 1), None))
    assert sel.indices(fns, ts, tz=vienna).tolist() == [2, 3, 4, 5, 6, 7]
    assert Selection(time=(None, "2026-01-01T00:00:01Z")).indices(fns, ts).tolist() == [0, 1]
    with pytest.raises(ValueError):
        Selection(every=0)
