#!/usr/bin/env python
"""Whole-store processing on several cores (issue #15, deliverable 3): ours only, the original has
neither `to_dask()` nor a chunk-parallel iterator.

    .venv/bin/python bench/scaling.py gen [--frames 3000]      # once: the store, cached in bench/.data
    .venv/bin/python bench/scaling.py dask --workers 1 --json  # to_dask() on a LocalCluster
    .venv/bin/python bench/scaling.py seq --json               # get_next_image over the store
    .venv/bin/python bench/scaling.py iter --workers 2 --json  # store.iter_chunks(workers=2)

The store: 3,000 frames (workload.py's content, barcoded), 1280x1024 gray, `h264/mkv`, chunksize
100, written by ours into bench/.data/scaling/ and reused while its marker file is there (`gen
--force` rewrites it). Before each measurement, files a previous reader added to the store (caches)
are removed, so every measurement starts from the store as written.

The statistic, per frame: the mean of its pixels (float64) and the barcode's frame number, computed
with the same numpy code on a (n, h, w) stack of frames in every method. Measured (after the
store is opened, or the cluster started and every worker has imported imgstore, av and numpy):

  dask  `store.to_dask()`, one delayed statistic per block, `client.compute` + `gather` on a
        dask.distributed LocalCluster(n_workers=N, threads_per_worker=1, processes=True);
        fps = frames / (compute + gather); graph_s (to_dask() itself) reported apart
  seq   `get_next_image()` frame_count times, the statistic per frame
  iter  `store.iter_chunks(workers=N)`, the statistic per chunk's frames; the iterator's set-up
        (e.g. starting its workers) is inside the time. n/a if ours has no iter_chunks yet.
  --cores K  any method on K cores only (CPU affinity): `seq --cores 1` is the sequential reader
        on one core, the baseline of "scales with cores" (ours' sequential reader on 2 cores already
        decodes the next chunk on the second core)

Checks: every frame's barcode = its position and frame_number; `stat_digest` (sha1 of the
per-frame means) must be the same for every method (run.py compares them).
"""
import argparse
import hashlib
import json
import logging
import os
import shutil
import sys
import time
import traceback

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import workload  # noqa: E402

FMT = 'h264/mkv'
SHAPE = (1024, 1280)
MARKER = '.bench-complete.json'


def store_path(data_dir, frames):
    return os.path.join(data_dir, 'scaling', 'h264_mkv_gray_%d' % frames)


def frame_stats(block):
    """(n, 2) float64: per frame the pixel mean and the barcode's number (workload.read_barcode,
    vectorised); block: (n, h, w) or (n, h, w, 3) uint8"""
    block = np.asarray(block)
    n = block.shape[0]
    means = block.reshape(n, -1).mean(axis=1, dtype=np.float64)
    corner = block[:, 4:28, 0:4 * workload.BARCODE_BITS].astype(np.float32)
    if corner.ndim == 4:
        corner = corner.mean(axis=3)
    bits = corner.reshape(n, 24, workload.BARCODE_BITS, 4)[:, :, :, 1:3].mean(axis=(1, 3)) > 127
    codes = (bits * (1 << np.arange(workload.BARCODE_BITS))).sum(axis=1)
    return np.stack([means, codes.astype(np.float64)], axis=1)


def _warm_worker():
    import av  # noqa: F401
    import imgstore  # noqa: F401
    frame_stats(np.zeros((1,) + SHAPE, np.uint8))
    return os.getpid()


def task_gen(args, out):
    path = store_path(args.data_dir, args.frames)
    marker = os.path.join(path, MARKER)
    out['params'].update(path=path, frames=args.frames, format=FMT)
    if os.path.exists(marker) and not args.force:
        out['params']['reused'] = True
        return
    import imgstore
    if os.path.exists(path):
        shutil.rmtree(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    t = time.perf_counter()
    s = imgstore.new_for_format(FMT, basedir=path, mode='w', imgshape=SHAPE, imgdtype=np.uint8,
                                chunksize=workload.CHUNKSIZE)
    for i, f in enumerate(workload.iter_frames(args.frames, SHAPE)):
        s.add_image(f, i, workload.T0 + i / workload.FPS)
    s.close()
    files = sorted(os.path.relpath(os.path.join(r, f), path) for r, _, fs in os.walk(path) for f in fs)
    with open(marker, 'w') as f:
        json.dump({'frames': args.frames, 'format': FMT, 'files': files,
                   'imgstore': getattr(imgstore, '__version__', None), 'written': time.time()}, f)
    out['params']['generate_and_write_s'] = round(time.perf_counter() - t, 1)
    out['params']['bytes'] = workload.dir_size(path)


def clean_store(path):
    """remove whatever a reader added to the store since it was written"""
    with open(os.path.join(path, MARKER)) as f:
        keep = set(json.load(f)['files']) | {MARKER}
    removed = []
    for r, dirs, fs in os.walk(path, topdown=False):
        for fn in fs:
            rel = os.path.relpath(os.path.join(r, fn), path)
            if rel not in keep:
                os.remove(os.path.join(r, fn))
                removed.append(rel)
        for d in dirs:
            p = os.path.join(r, d)
            if not os.listdir(p):
                os.rmdir(p)
    return removed


class Result(object):
    def __init__(self, out, n):
        self.out, self.n = out, n
        self.stats = []
        self.numbers = []

    def add(self, stats, numbers=None):
        self.stats.append(np.asarray(stats, dtype=np.float64).reshape(-1, 2))
        if numbers is not None:
            self.numbers.extend(int(x) for x in numbers)

    def finish(self, seconds):
        m = self.out['metrics']
        st = np.concatenate(self.stats) if self.stats else np.zeros((0, 2))
        got = len(st)
        codes = st[:, 1].astype(np.int64)
        expect = np.arange(got)
        wrong = int(np.count_nonzero(codes != expect))
        if self.numbers:
            nums = np.array(self.numbers[:got] + [-1] * max(0, got - len(self.numbers)))
            wrong = int(np.count_nonzero((codes != expect) | (nums != expect)))
        if got != self.n:
            self.out['errors']['frame_count'] = '%d frames processed, %d in the store' % (got, self.n)
            wrong += abs(self.n - got)
        m['wrong_frames'] = wrong
        m['frames_checked'] = got
        m['seconds'] = seconds
        m['fps'] = got / seconds if seconds > 0 else None
        self.out['params']['stat_digest'] = hashlib.sha1(np.ascontiguousarray(st[:, 0]).tobytes()).hexdigest()
        self.out['params']['mean_of_means'] = float(st[:, 0].mean()) if got else None
        bad = np.flatnonzero(codes != expect)[:5]
        if len(bad):
            self.out['wrong_examples'] = [{'expected': int(i), 'barcode': int(codes[i])} for i in bad]


def _numbers(md, k):
    """frame numbers out of one chunk's metadata, whatever shape iter_chunks gives it (None if unknown)"""
    try:
        if isinstance(md, dict):
            for key in ('frame_number', 'frame_numbers'):
                if key in md:
                    return list(np.asarray(md[key]).reshape(-1))
        if hasattr(md, 'dtype') and getattr(md.dtype, 'names', None) and 'frame_number' in md.dtype.names:
            return list(md['frame_number'])
        if hasattr(md, 'frame_number'):
            return list(np.asarray(md.frame_number).reshape(-1))
        if isinstance(md, (tuple, list)):
            if len(md) == 2 and np.ndim(md[0]) == 1 and len(md[0]) == k:
                return list(md[0])  # (frame_numbers, frame_times)
            if len(md) == k:
                return [int(x[0]) if isinstance(x, (tuple, list)) else int(getattr(x, 'frame_number', x))
                        for x in md]
        arr = np.asarray(md)
        if arr.ndim == 2 and arr.shape[0] == k:
            return list(arr[:, 0])
        if arr.ndim == 1 and len(arr) == k:
            return list(arr)
    except Exception:
        pass
    return None


def _split_item(item):
    """(frames, metadata) out of one item iter_chunks yields"""
    fields = getattr(item, '_fields', ())
    if 'images' in fields and 'frame_numbers' in fields:  # ours' ChunkFrames
        return item.images, {'frame_number': item.frame_numbers}
    if isinstance(item, tuple) and len(item) >= 2:
        a, b = item[0], item[1]
        if np.ndim(a) == 0 and len(item) >= 3:  # (chunk_n, frames, metadata)
            a, b = item[1], item[2]
        return a, b
    for fa in ('frames', 'images', 'imgs'):
        if hasattr(item, fa):
            return getattr(item, fa), getattr(item, 'metadata', getattr(item, 'md', item))
    if isinstance(item, dict):
        return item.get('frames', item.get('images')), item
    raise TypeError('iter_chunks yielded %s: cannot find its frames' % type(item).__name__)


def task_measure(args, out, method):
    path = store_path(args.data_dir, args.frames)
    if not os.path.exists(os.path.join(path, MARKER)):
        out['errors']['setup'] = 'no store at %s: run scaling.py gen first' % path
        return
    out['params'].update(path=path, method=method, workers=args.workers)
    if args.cores:
        cpus = sorted(os.sched_getaffinity(0))[:args.cores]
        os.sched_setaffinity(0, cpus)  # before av/imgstore size their thread pools
        out['params']['cores'] = cpus
    out['params']['removed_before'] = clean_store(path)
    if hasattr(os, 'sync'):
        os.sync()
    import imgstore
    import av  # noqa: F401  (imported before timing, as the workers do)
    out['info']['imgstore'] = getattr(imgstore, '__version__', None)
    frame_stats(np.zeros((1,) + SHAPE, np.uint8))

    if method == 'dask':
        import dask
        import distributed
        from distributed import Client, LocalCluster
        out['info']['dask'] = dask.__version__
        out['info']['distributed'] = distributed.__version__
        # workers import this module by name if cloudpickle pickles frame_stats by reference
        os.environ['PYTHONPATH'] = HERE + os.pathsep + os.environ.get('PYTHONPATH', '')
        t = time.perf_counter()
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
        client = Client(cluster)
        try:
            pids = client.run(_warm_worker)
            out['params']['cluster_start_s'] = round(time.perf_counter() - t, 2)
            out['params']['worker_pids'] = len(set(pids.values()))
            s = imgstore.new_for_filename(path)
            n = int(s.frame_count)
            t = time.perf_counter()
            arr = s.to_dask()
            out['metrics']['graph_s'] = time.perf_counter() - t
            res = Result(out, n)
            t = time.perf_counter()
            parts = [dask.delayed(frame_stats, pure=True)(b) for b in arr.to_delayed().ravel()]
            futs = client.compute(parts)
            for r in client.gather(futs):
                res.add(r)
            res.finish(time.perf_counter() - t)
            out['params']['blocks'] = len(parts)
            s.close()
        finally:
            client.close()
            cluster.close()
        return

    s = imgstore.new_for_filename(path)
    n = int(s.frame_count)
    res = Result(out, n)
    if method == 'seq':
        t = time.perf_counter()
        for i in range(n):
            img, md = s.get_next_image()
            res.add(frame_stats(img[None]), [md[0]])
        res.finish(time.perf_counter() - t)
    elif method == 'iter':
        it = getattr(s, 'iter_chunks', None)
        if it is None:
            out['errors']['iter_chunks'] = 'n/a: this imgstore has no store.iter_chunks() yet'
            s.close()
            return
        t = time.perf_counter()
        chunks = 0
        for item in it(workers=args.workers):
            frames, md = _split_item(item)
            if isinstance(frames, (list, tuple)):
                frames = np.stack(frames) if len(frames) else np.zeros((0,) + SHAPE, np.uint8)
            k = len(frames)
            res.add(frame_stats(frames), _numbers(md, k) or None)
            chunks += 1
        res.finish(time.perf_counter() - t)
        out['params']['chunks_yielded'] = chunks
    else:
        raise ValueError('unknown method %r' % method)
    s.close()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('method', choices=('gen', 'dask', 'seq', 'iter'))
    p.add_argument('--json', action='store_true')
    p.add_argument('--frames', type=int, default=3000)
    p.add_argument('--workers', type=int, default=2)
    p.add_argument('--cores', type=int, default=0,
                   help='run on this many cores (CPU affinity set before anything is imported); 0: all')
    p.add_argument('--force', action='store_true', help='gen: rewrite the store even if it is there')
    p.add_argument('--data-dir', default=os.path.join(HERE, '.data'))
    args = p.parse_args(argv)
    out = {'task': 'scaling:%s' % args.method, 'ok': True, 'metrics': {}, 'errors': {}, 'params': {},
           'info': {}}
    real_stdout = sys.stdout
    if args.json:
        sys.stdout = sys.stderr
    t0 = time.perf_counter()
    try:
        if args.method == 'gen':
            task_gen(args, out)
        else:
            task_measure(args, out, args.method)
    except Exception as e:
        out['errors']['task'] = workload._err(e)
        if os.environ.get('BENCH_TRACEBACK'):
            traceback.print_exc()
    finally:
        sys.stdout = real_stdout
    out['ok'] = not out['errors']
    out['wall_s'] = time.perf_counter() - t0
    print(json.dumps(out, default=str) if args.json else json.dumps(out, indent=2, default=str))
    return 0


if __name__ == '__main__':
    sys.exit(main())
