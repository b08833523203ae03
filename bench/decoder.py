#!/usr/bin/env python
""""PyAV alone": the rate at which PyAV decodes a video store's chunk files to numpy, the baseline
of issue #15's decoder targets. Run by ours' interpreter (it needs `av`; it asks ours' chunk readers
which decoder threads they use, so that the baseline decodes with the same ones).

    .venv/bin/python bench/decoder.py h264/mkv:gray --source DIR [--frames 300 --reads 60] --json

DIR is a video store (written by either side with `workload.py FMT:SHAPE --keep DIR`); a fresh copy
of it is read. Measured, in this order, each pass over every chunk file of the store:

  config      ours opens the copy (`new_for_filename`) and each chunk reader reports its decoder
              threading: `_walk_threads()` (FFmpeg thread_type/thread_count of the decoder that walks
              from keyframes, used by sequential and random reads) and whether the chunk is intra-only
              and read ahead on a pool of `pools._decode_workers()` single-threaded decoders. If that
              private API is missing, a documented fallback rule is used (params.config_source says
              which).
  per-chunk   (seq_fps_chunk) each chunk in turn: `av.open`, the stream's codec context set to ours'
              config, every frame decoded, `to_ndarray('bgr24')` (colour) or `to_ndarray('gray')`
              (gray stores, whatever the stored pixel format), barcode checked; intra-only chunks
              decoded on a pool of N threads, one single-threaded decoder each (what ours does).
  chunk-par.  (seq_fps_parallel) N chunks at once, each on a thread of its own with a 1-thread decoder
              (what ours' chunk read-ahead does), frames converted on those threads and consumed in
              order on the main thread, barcode checked.
  decode only (decode_s_per_frame = c) each chunk in turn with ours' walking config, frames decoded
              and not converted: the per-frame decode cost.
  convert     (convert_s_per_frame) the to_ndarray time per frame, timed inside the per-chunk pass.
  packets     demuxed (no decode): per chunk, (pts, keyframe flag) in decode order -> for each random
              read ours does (workload.py's sequence), the frames that must be decoded: from the last
              keyframe at or before the target's packet up to it, in decode order
              (params.random_decode_counts, one per read, in read order).

seq_fps = max(per-chunk, chunk-parallel) is the baseline for the sequential ratio; random reads'
limit = M / (sum(counts[:M]) * c + M * convert), M = the reads ours did (run.py computes it).
params.random_decode_counts_cached: the same for an ideal reader with an unbounded frame cache that
walks on within a GOP (informative: ours' frame cache lets it beat the plain limit on long GOPs).
"""
import argparse
import concurrent.futures
import json
import os
import queue
import re
import shutil
import sys
import tempfile
import threading
import time
import traceback

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import workload  # noqa: E402

CHUNK_RE = re.compile(r'^(\d{6})\.(avi|mp4|mkv|mov|webm|nut|m4v)$')
INTRA = ('mjpeg', 'ffv1')


def chunk_files(store_dir, skipped=None):
    """(chunk_n, path) of the chunk video files that hold frames (the original leaves an empty last
    chunk, with no video stream, when the frame count is a multiple of the chunk size)"""
    import av

    out = []
    for name in sorted(os.listdir(store_dir)):
        m = CHUNK_RE.match(name)
        if not m:
            continue
        path = os.path.join(store_dir, name)
        try:
            c = av.open(path)
            try:
                st = c.streams.video[0] if c.streams.video else None
                has = st is not None and any(pkt.size for pkt in c.demux(st))
            finally:
                c.close()
        except Exception:
            has = False
        if has:
            out.append((int(m.group(1)), path))
        elif skipped is not None:
            skipped.append(name)
    return out


def ours_config(store_dir, chunks):
    """per chunk: {'threads', 'thread_type', 'pool'} as ours' chunk readers decode it"""
    import imgstore
    from imgstore.codecs.video import pools

    s = imgstore.new_for_filename(store_dir)
    cfgs = {}
    try:
        workers = int(pools._decode_workers())
        for n, _ in chunks:
            r = s._chunk_reader(n)
            if r.direct:
                w = dict(r._walk_threads())
            else:  # demuxer path (demuxed.py): slice threads, the reader's thread count
                w = {'threads': int(r.threads)}
            w.setdefault('thread_type', 'SLICE')
            cfgs[n] = {'threads': int(w['threads']), 'thread_type': str(w['thread_type']),
                       'pool': workers if (r.direct and r._intra and r.read_ahead) else 0,
                       'bands': bool(getattr(r, '_bands', False)), 'direct': bool(r.direct),
                       'codec': r.index.codec}
    finally:
        s.close()
    return cfgs, workers


def fallback_config(chunks):
    """the rule ours implemented when this was written (codecs/video/direct.py, pools.py)"""
    import av

    workers = max(1, min(os.cpu_count() or 1, 4))
    cfgs = {}
    for n, path in chunks:
        c = av.open(path)
        st = c.streams.video[0]
        name = st.codec_context.name
        keys = total = 0
        for pkt in c.demux(st):
            if pkt.size:
                total += 1
                keys += bool(pkt.is_keyframe)
        c.close()
        intra = name in INTRA
        gop = total / max(1, keys)
        frame = name == 'h264' and gop >= 50  # ours also requires one slice per frame
        cfgs[n] = {'threads': workers if frame else 0, 'thread_type': 'FRAME' if frame else 'SLICE',
                   'pool': workers if intra else 0, 'bands': False, 'direct': True, 'codec': name}
    return cfgs, workers


def describe_config(cfgs, workers):
    seen = []
    for c in cfgs.values():
        if c['pool']:
            d = '%s: pool of %d threads x 1-thread decoder (intra-only)' % (c['codec'], c['pool'])
        else:
            d = '%s: %s x %s' % (c['codec'], c['thread_type'], c['threads'] or 'auto(0)')
        if c.get('bands'):
            d += ', ours decodes single frames in bands'
        if d not in seen:
            seen.append(d)
    return '; '.join(seen) + '; chunk-parallel: %d chunks at once x 1-thread decoder' % workers


def _open(path, threads, thread_type):
    import av

    c = av.open(path)
    st = c.streams.video[0]
    st.thread_type = thread_type
    st.thread_count = int(threads)
    return c, st


class Conv(object):
    """to_ndarray in the store's output format, timed"""

    def __init__(self, color):
        self.fmt = 'bgr24' if color else 'gray'
        self.t = 0.0
        self.n = 0
        self.lock = threading.Lock()

    def __call__(self, fr):
        t = time.perf_counter()
        a = fr.to_ndarray(format=self.fmt)
        dt = time.perf_counter() - t
        with self.lock:
            self.t += dt
            self.n += 1
        return a


def _new_cc(st, threads=1):
    import av

    src = st.codec_context
    cc = av.CodecContext.create(src.name, 'r')
    if src.extradata:
        cc.extradata = src.extradata
    if src.width and src.height:
        cc.width, cc.height = src.width, src.height
    try:
        if src.pix_fmt:
            cc.pix_fmt = src.pix_fmt
    except Exception:
        pass
    cc.thread_type = 'SLICE'
    cc.thread_count = threads
    return cc


def decode_chunk_pool(path, workers, conv, sink):
    """intra-only chunk: packets demuxed here, decoded + converted on *workers* threads (each its own
    single-threaded decoder), frames handed to *sink* in presentation (= decode) order"""
    import av

    c = av.open(path)
    st = c.streams.video[0]
    local = threading.local()

    def job(pkt):
        cc = getattr(local, 'cc', None)
        if cc is None:
            cc = local.cc = _new_cc(st, 1)
        frames = cc.decode(pkt)
        return [conv(f) for f in frames]

    ex = concurrent.futures.ThreadPoolExecutor(workers)
    pending = []
    try:
        for pkt in c.demux(st):
            if not pkt.size:
                continue
            pending.append(ex.submit(job, pkt))
            while len(pending) > 2 * workers:
                for a in pending.pop(0).result():
                    sink(a)
        for f in pending:
            for a in f.result():
                sink(a)
    finally:
        ex.shutdown()
        c.close()


def decode_chunk_stream(path, cfg, conv, sink):
    c, st = _open(path, cfg['threads'], cfg['thread_type'])
    try:
        for fr in c.decode(st):
            sink(conv(fr) if conv else fr)
    finally:
        c.close()


class Sink(object):
    """checks each frame's barcode against the next expected frame number"""

    def __init__(self, checker, start):
        self.checker, self.expected, self.count = checker, start, 0

    def __call__(self, a):
        if self.checker is not None:
            self.checker.check(a, (self.expected,), self.expected)
        self.expected += 1
        self.count += 1


def pass_per_chunk(chunks, cfgs, color, checker):
    conv = Conv(color)
    t = time.perf_counter()
    n = 0
    for cn, path in chunks:
        sink = Sink(checker, cn * workload.CHUNKSIZE)
        cfg = cfgs[cn]
        if cfg['pool']:
            decode_chunk_pool(path, cfg['pool'], conv, sink)
        else:
            decode_chunk_stream(path, cfg, conv, sink)
        n += sink.count
    return n, time.perf_counter() - t, conv


def pass_parallel(chunks, workers, color, checker):
    """N chunks at once, each decoded and converted on a pool thread with a 1-thread decoder"""
    conv = Conv(color)
    end = object()
    stop = threading.Event()

    class Stopped(Exception):
        pass

    def put(q, a):
        while True:
            if stop.is_set():
                raise Stopped()
            try:
                q.put(a, timeout=0.2)
                return
            except queue.Full:
                pass

    def job(path, q):
        try:
            decode_chunk_stream(path, {'threads': 1, 'thread_type': 'SLICE'}, conv, lambda a: put(q, a))
        except Stopped:
            return
        except BaseException as e:  # handed to the consumer
            put(q, e)
        put(q, end)

    t = time.perf_counter()
    n = 0
    ex = concurrent.futures.ThreadPoolExecutor(workers)
    try:
        qs = []
        for cn, path in chunks:
            q = queue.Queue(maxsize=workload.CHUNKSIZE)
            qs.append((cn, q))
            ex.submit(job, path, q)
        for cn, q in qs:
            sink = Sink(checker, cn * workload.CHUNKSIZE)
            while True:
                a = q.get()
                if a is end:
                    break
                if isinstance(a, BaseException):
                    raise a
                sink(a)
            n += sink.count
    finally:
        stop.set()  # producers still waiting for room give up
        ex.shutdown()
    return n, time.perf_counter() - t


def pass_decode_only(chunks, cfgs):
    t = time.perf_counter()
    n = [0]

    def count(fr):
        n[0] += 1

    for cn, path in chunks:
        cfg = cfgs[cn]
        if cfg['pool']:  # a random read of an intra-only chunk: one decoder, one frame at a time
            cfg = {'threads': 0, 'thread_type': 'SLICE'}
        decode_chunk_stream(path, cfg, None, count)
    return n[0], time.perf_counter() - t


class Plan(object):
    def __init__(self, dec_of_pos, key_of_dec):
        self.dec_of_pos = dec_of_pos  # presentation position -> decode index of its packet
        self.key_of_dec = key_of_dec  # decode index -> decode index of the last keyframe at/before it

    def __getitem__(self, pos):
        d = int(self.dec_of_pos[pos])
        return d - int(self.key_of_dec[d]) + 1


def ideal_cached_counts(plans, targets):
    """Frames decoded per read by an ideal reader with an unbounded frame cache and one decoder per
    chunk that walks on when the next target is further into the same GOP (informative only: a
    lower bound no bounded cache reaches)."""
    decoded = {}   # chunk -> set of decode indexes decoded so far
    nxt = {}       # chunk -> (keyframe, next decode index) of its decoder
    counts = []
    for t in targets:
        cn, pos = divmod(int(t), workload.CHUNKSIZE)
        pl = plans[cn]
        d = int(pl.dec_of_pos[pos])
        k = int(pl.key_of_dec[d])
        seen = decoded.setdefault(cn, set())
        if d in seen:
            counts.append(0)
            continue
        k0, a = nxt.get(cn, (-1, -1))
        start = a if (k0 == k and a <= d) else k
        counts.append(d + 1 - start)  # a restart decodes from the keyframe again, cached or not
        seen.update(range(start, d + 1))
        nxt[cn] = (k, d + 1)
    return counts


def packet_plans(chunks):
    """chunk_n -> Plan: decode count for each presentation position (last keyframe at/before its
    packet, in decode order, up to it)"""
    import av

    plans = {}
    for cn, path in chunks:
        c = av.open(path)
        st = c.streams.video[0]
        pts, key = [], []
        for pkt in c.demux(st):
            if not pkt.size or pkt.pts is None:
                continue
            pts.append(int(pkt.pts))
            key.append(bool(pkt.is_keyframe))
        c.close()
        pts = np.array(pts, dtype=np.int64)
        key = np.array(key, dtype=bool)
        n = len(pts)
        last_key = np.maximum.accumulate(np.where(key, np.arange(n), -1)) if n else np.zeros(0, int)
        dec_of_pos = np.argsort(pts, kind='stable')
        plans[cn] = Plan(dec_of_pos, np.maximum(last_key, 0))
    return plans


def task_pyav(args, out, fmt, shape_name):
    m, prm = out['metrics'], out['params']
    color = shape_name == 'color'
    nframes = args.frames
    prm.update(format=fmt, shape=shape_name, frames=nframes, source=args.source)
    store_dir = os.path.join(args.workdir, 'store')
    shutil.copytree(args.source, store_dir)
    skipped = []
    chunks = chunk_files(store_dir, skipped)
    if skipped:
        prm['skipped_chunk_files'] = skipped
    if not chunks:
        raise RuntimeError('no chunk video files in %s' % args.source)
    import av

    prm['pyav'] = av.__version__
    try:
        cfgs, workers = ours_config(store_dir, chunks)
        prm['config_source'] = "ours' chunk readers (_walk_threads, _intra, pools._decode_workers)"
    except Exception as e:
        cfgs, workers = fallback_config(chunks)
        prm['config_source'] = 'fallback rule (ours did not answer: %s)' % workload._err(e)
    prm['config'] = describe_config(cfgs, workers)
    prm['chunk_configs'] = {str(k): v for k, v in cfgs.items()}

    # warm-up, untimed: the first frames of chunk 0 through both paths
    def warm(a):
        raise StopIteration
    for cfg in (cfgs[chunks[0][0]], {'threads': 1, 'thread_type': 'SLICE', 'pool': 0}):
        try:
            if cfg['pool']:
                decode_chunk_pool(chunks[0][1], cfg['pool'], Conv(color), warm)
            else:
                decode_chunk_stream(chunks[0][1], cfg, Conv(color), warm)
        except StopIteration:
            pass
    if hasattr(os, 'sync'):
        os.sync()

    checker = workload.Checker()

    def per_chunk():
        n, dt, conv = pass_per_chunk(chunks, cfgs, color, checker)
        m['seq_fps_chunk'] = n / dt
        m['convert_s_per_frame'] = conv.t / max(1, conv.n)
        prm['frames_decoded_seq'] = n
        if n != nframes:
            out['errors']['frame_count'] = 'decoded %d frames, %d expected' % (n, nframes)
        return True

    def parallel():
        n, dt = pass_parallel(chunks, workers, color, checker)
        m['seq_fps_parallel'] = n / dt
        return True

    def decode_only():
        n, dt = pass_decode_only(chunks, cfgs)
        m['decode_s_per_frame'] = dt / max(1, n)
        return True

    workload._run_phase(out, 'seq_chunk', per_chunk)
    workload._run_phase(out, 'seq_parallel', parallel)
    seqs = [m[k] for k in ('seq_fps_chunk', 'seq_fps_parallel') if k in m]
    if seqs:
        m['seq_read_fps'] = max(seqs)
    workload._run_phase(out, 'decode_only', decode_only)

    def plans():
        p = packet_plans(chunks)
        targets = workload.random_targets(nframes, args.reads)
        counts = []
        for t in targets:
            cn, pos = divmod(int(t), workload.CHUNKSIZE)
            counts.append(int(p[cn][pos]))
        prm['random_decode_counts'] = counts
        prm['random_decode_counts_cached'] = ideal_cached_counts(p, targets)
        m['random_frames_per_read'] = float(np.mean(counts)) if counts else 0.0
        c = m.get('decode_s_per_frame')
        if c is not None and counts:
            conv = m.get('convert_s_per_frame', 0.0)
            m['random_limit_per_s'] = len(counts) / (sum(counts) * c + len(counts) * conv)
        return True

    workload._run_phase(out, 'packets', plans)
    m['wrong_frames'] = checker.wrong
    m['frames_checked'] = checker.checked
    if checker.examples:
        out['wrong_examples'] = checker.examples


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('task', help='FMT:SHAPE')
    p.add_argument('--json', action='store_true')
    p.add_argument('--source', required=True, help='the video store to read (a copy of it)')
    p.add_argument('--frames', type=int, default=300)
    p.add_argument('--reads', type=int, default=60, help='random reads ours does (workload.py --reads)')
    p.add_argument('--workdir')
    args = p.parse_args(argv)
    out = {'task': 'pyav:' + args.task, 'ok': True, 'metrics': {}, 'errors': {}, 'params': {}, 'info': {}}
    made = args.workdir is None
    if made:
        args.workdir = tempfile.mkdtemp(prefix='imgstore-bench-pyav-')
    real_stdout = sys.stdout
    if args.json:
        sys.stdout = sys.stderr
    t0 = time.perf_counter()
    try:
        fmt, shape_name = args.task.rsplit(':', 1)
        task_pyav(args, out, fmt, shape_name)
    except Exception as e:
        out['errors']['task'] = workload._err(e)
        if os.environ.get('BENCH_TRACEBACK'):
            traceback.print_exc()
    finally:
        if made:
            shutil.rmtree(args.workdir, ignore_errors=True)
        sys.stdout = real_stdout
    out['ok'] = not out['errors']
    out['wall_s'] = time.perf_counter() - t0
    print(json.dumps(out, default=str) if args.json else json.dumps(out, indent=2, default=str))
    return 0


if __name__ == '__main__':
    sys.exit(main())
