"""Hostile-input fuzz suite.

Every case gives either correct data or an exception from the ``ImgStoreError`` hierarchy whose
message names the offending file; no hang, no interpreter crash, and the other chunks stay readable.
The cases, the damage they do and the expectations are in ``fuzz_cases.py``.

The cases run in two worker subprocesses (one per core), started once for the whole session: a
segfault or a hang in C code is then the failure of the case that was running (the worker is restarted
for the rest), not the end of the test run. Set ``IMGSTORE_FUZZ_INPROCESS=1`` to run the cases in the
pytest process instead (for a debugger), ``IMGSTORE_FUZZ_WORKERS=N`` to change the number of workers
and ``IMGSTORE_FUZZ_STRICT=1`` to fail the cases matching a known bug too.

At the end a table of outcomes per category is printed (``fuzz: N cases, correct=A, clean_error=B, ...``).
"""

from __future__ import annotations

import collections
import json
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time

import pytest

import fuzz_cases as fc

ALL_CASES = fc.all_cases()
CASES_BY_ID = {c.id: c for c in ALL_CASES}
OK_OUTCOMES = ("correct", "clean_error", "undetectable")
WATCHDOG_S = fc.CASE_TIMEOUT + 30  # no word from a worker for this long: it hangs in C code
MIN_CASES = 500

_RESULTS: dict[str, dict] = {}


# ------------------------------------------------------------------------------------------------
# running cases in worker subprocesses
# ------------------------------------------------------------------------------------------------
def _drive_worker(ids: list[str], results: dict, lock: threading.Lock) -> None:
    """Run *ids* in a worker process; restart it after a crash or hang, blaming the case that was running."""
    remaining = list(ids)
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONFAULTHANDLER"] = "1"
    with tempfile.TemporaryDirectory(prefix="imgstore-fuzz-run-") as tmp:
        env["IMGSTORE_CACHE_DIR"] = os.path.join(tmp, "user-cache")
        env["TMPDIR"] = tmp
        while remaining:
            case_file = os.path.join(tmp, "cases.json")
            with open(case_file, "w") as f:
                json.dump(remaining, f)
            err_path = os.path.join(tmp, "stderr.txt")
            with open(err_path, "wb") as err:
                proc = subprocess.Popen([sys.executable, fc.__file__, "--worker", case_file], stdout=subprocess.PIPE,
                                        stderr=err, env=env, cwd=tmp, text=True, bufsize=1)
            lines: queue.Queue = queue.Queue()

            def pump(p=proc, q=lines):
                for line in p.stdout:
                    q.put(line)
                q.put(None)

            threading.Thread(target=pump, daemon=True).start()
            current = None
            died = None
            while True:
                try:
                    line = lines.get(timeout=WATCHDOG_S)
                except queue.Empty:
                    proc.kill()
                    died = f"hang: no progress for {WATCHDOG_S} s, worker killed"
                    break
                if line is None:
                    break
                if line.startswith("@@START@@ "):
                    current = line.split(" ", 1)[1].strip()
                elif line.startswith("@@RESULT@@ "):
                    r = json.loads(line.split(" ", 1)[1])
                    with lock:
                        results[r["id"]] = r
                    current = None
            rc = proc.wait()
            if current is None and rc == 0 and died is None:
                remaining = [i for i in remaining if i not in results]
                if remaining:  # the worker stopped without running them: blame the first
                    current = remaining[0]
                    died = "worker exited early"
                else:
                    break
            with open(err_path, "rb") as f:
                tail = f.read()[-3000:].decode("utf-8", "replace")
            blame = current or (remaining[0] if remaining else None)
            if blame is not None:
                what = died or (f"crash: worker killed by signal {-rc}" if rc < 0 else f"crash: worker exit {rc}")
                with lock:
                    results[blame] = {"id": blame, "cat": _case(blame).cat, "outcome": "fail",
                                      "fails": [f"{what}\n{tail}"], "cleans": [], "notes": []}
            remaining = [i for i in remaining if i not in results]


def _case(cid: str):
    return CASES_BY_ID[cid] if cid in CASES_BY_ID else fc.selfcheck_case(cid)


def run_cases(ids: list[str], workers: int | None = None) -> dict:
    results: dict = {}
    if os.environ.get("IMGSTORE_FUZZ_INPROCESS", "").strip() not in ("", "0"):
        import signal

        old = signal.signal(signal.SIGALRM, fc._alarm)
        try:
            for cid in ids:
                signal.alarm(_case(cid).timeout)
                try:
                    results[cid] = fc.run_case(_case(cid))
                finally:
                    signal.alarm(0)
        finally:
            signal.signal(signal.SIGALRM, old)
        return results
    n = workers or max(1, int(os.environ.get("IMGSTORE_FUZZ_WORKERS", "2")))
    lock = threading.Lock()
    parts = [ids[k::n] for k in range(n)]
    threads = [threading.Thread(target=_drive_worker, args=(p, results, lock)) for p in parts if p]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.fixture(scope="session")
def fuzz_results(request):
    """Results of every fuzz case selected in this session (run once, in parallel workers)."""
    if not _RESULTS:
        ids = [it.callspec.params["case_id"] for it in request.session.items
               if getattr(it, "callspec", None) is not None and "case_id" in it.callspec.params
               and it.module is sys.modules[__name__]]
        t0 = time.monotonic()
        _RESULTS.update(run_cases(ids))
        _RESULTS["__elapsed__"] = {"seconds": time.monotonic() - t0}
        report = os.environ.get("IMGSTORE_FUZZ_REPORT")
        if report:  # every case's outcome and details, for triage
            with open(report, "w") as f:
                json.dump(_RESULTS, f, indent=1)
        request.config.pluginmanager.register(_SummaryPlugin(), "imgstore-fuzz-summary")
    return _RESULTS


# ------------------------------------------------------------------------------------------------
# the summary table
# ------------------------------------------------------------------------------------------------
COLUMNS = ("correct", "clean_error", "undetectable", "known_bug", "fail", "skip")


def summary_lines() -> list[str]:
    rows: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for cid, r in _RESULTS.items():
        if cid.startswith("__"):
            continue
        rows[r["cat"]][r["outcome"]] += 1
    tot = collections.Counter()
    for c in rows.values():
        tot.update(c)
    n_run = sum(v for k, v in tot.items() if k != "skip")
    out = [f"fuzz: {n_run} cases, " + ", ".join(f"{k}={tot[k]}" for k in COLUMNS)
           + f" ({_RESULTS.get('__elapsed__', {}).get('seconds', 0):.1f} s)"]
    out.append("  %-10s %6s " % ("category", "cases") + " ".join("%12s" % k for k in COLUMNS))
    for cat in sorted(rows):
        c = rows[cat]
        out.append("  %-10s %6d " % (cat, sum(v for k, v in c.items() if k != "skip"))
                   + " ".join("%12d" % c[k] for k in COLUMNS))
    bugs = collections.Counter()
    for cid, r in _RESULTS.items():
        if not cid.startswith("__") and r["outcome"] == "known_bug":
            bugs.update({bug for f in r["fails"] for bug, rx, crx in fc.KNOWN_BUGS
                         if re.search(crx, cid) and re.search(rx, f)})
    for bug, k in sorted(bugs.items()):
        out.append(f"  known bug {bug}: {k} cases")
    return out


class _SummaryPlugin:
    def pytest_terminal_summary(self, terminalreporter):
        terminalreporter.write_sep("-", "imgstore fuzz summary")
        for line in summary_lines():
            terminalreporter.write_line(line)


# ------------------------------------------------------------------------------------------------
# the tests
# ------------------------------------------------------------------------------------------------
def _describe(r: dict) -> str:
    parts = [f"{r['id']}: {r['outcome']}"]
    parts += ["  FAIL " + f for f in r.get("fails", [])]
    parts += ["  clean " + f for f in r.get("cleans", [])]
    parts += ["  note " + f for f in r.get("notes", [])]
    return "\n".join(parts)


@pytest.mark.parametrize("case_id", [c.id for c in ALL_CASES])
def test_fuzz(case_id, fuzz_results):
    r = fuzz_results.get(case_id)
    assert r is not None, f"{case_id}: no result (worker lost it)"
    if r["outcome"] == "skip":
        pytest.skip(r["fails"][0] if r.get("fails") else "not supported")
    if r["outcome"] == "known_bug" and os.environ.get("IMGSTORE_FUZZ_STRICT", "").strip() in ("", "0"):
        bugs = sorted({bug for f in r["fails"] for bug, rx, crx in fc.KNOWN_BUGS
                       if re.search(crx, case_id) and re.search(rx, f)})
        pytest.xfail(f"known bug {', '.join(bugs)}: {r['fails'][0][:160]}")
    assert r["outcome"] in OK_OUTCOMES, _describe(r)


@pytest.mark.skipif(not hasattr(__import__("signal"), "SIGALRM") or
                    os.environ.get("IMGSTORE_FUZZ_INPROCESS", "").strip() not in ("", "0"),
                    reason="needs worker processes and SIGALRM")
def test_runner_isolates_crash_and_hang():
    """A segfault or a hang fails the case that caused it; the cases after it still run."""
    ok_case = next(c.id for c in ALL_CASES if c.kind == "stray")
    ids = ["__selfcheck-segv", ok_case, "__selfcheck-hang", "__selfcheck-fine"]
    res = run_cases(ids, workers=1)
    assert res["__selfcheck-segv"]["outcome"] == "fail" and "signal" in res["__selfcheck-segv"]["fails"][0]
    assert res["__selfcheck-hang"]["outcome"] == "fail" and "timeout" in res["__selfcheck-hang"]["fails"][0]
    assert res[ok_case]["outcome"] in OK_OUTCOMES + ("known_bug",)
    assert res["__selfcheck-fine"]["outcome"] == "correct"


def test_fuzz_summary(fuzz_results):
    """Runs last: the outcome table, and the suite's size when all of it was selected."""
    lines = summary_lines()
    print("\n".join(lines))
    ran = [r for k, r in fuzz_results.items() if not k.startswith("__")]
    if len(ran) == len(ALL_CASES):
        n_run = sum(1 for r in ran if r["outcome"] != "skip")
        assert n_run >= MIN_CASES, f"only {n_run} fuzz cases ran (want >= {MIN_CASES})"
