#!/usr/bin/env python
"""One benchmark workload, runnable by EITHER implementation's interpreter.

    python bench/workload.py TASK [options] --json

It imports whatever `imgstore` the interpreter finds (the original 0.4.0 in
bench/.envs/original, ours in /work/main/.venv) and uses only the public API
both share, plus numpy. Every phase is wrapped: a failure becomes an error
string in the JSON, never a crash, so the driver can print "n/a".

Tasks
  probe                   versions, supported formats
  FMT:SHAPE               write / read a store; FMT is a store format
                          (npy, png, ..., avc1/mp4, ...), SHAPE is `gray`
                          (1280x1024) or `color` (640x480 BGR)
                          --keep DIR: write the store to DIR and stop there
                          --source DIR: no write; read a copy of the store in
                          DIR (written by either side with --keep)
                          --phases write,seq,random,clustered: which to run
  gen-index:N             build the synthetic index-only store for N frames in
                          --data-dir (idempotent)
  index:N:first|warm      open that store in this (fresh) process and time it;
                          `first` deletes files a previous open left in the
                          store (e.g. our cached index) before opening

Frame content: textured static background + moving blobs + sensor noise,
seeded and generated before any timing. Each frame carries its frame number
in a 16-bit barcode (bit k set = columns 4k+1..4k+2 of rows 0..31 are 255,
the rest of the 32x64 corner is 0); reads decode it and count wrong frames.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import traceback

import numpy as np

SHAPES = {'gray': (1024, 1280), 'color': (480, 640, 3)}
T0 = 1.7e9           # frame_time of frame 0
FPS = 25.0
SEED = 20261122
CHUNKSIZE = 100
INDEX_CHUNKSIZE = 10000
BARCODE_BITS = 16


def _err(e):
    s = '%s: %s' % (type(e).__name__, e)
    return s if len(s) < 300 else s[:297] + '...'


# ---------------------------------------------------------------- content

def _upsample(a, h, w):
    """bilinear-ish upsample of a small 2D array to (h, w), numpy only"""
    xs = np.linspace(0, a.shape[1] - 1, w)
    ys = np.linspace(0, a.shape[0] - 1, h)
    tmp = np.stack([np.interp(xs, np.arange(a.shape[1]), row) for row in a])
    return np.stack([np.interp(ys, np.arange(a.shape[0]), col) for col in tmp.T], axis=1)


def make_background(shape, rng):
    h, w = shape[:2]
    nch = shape[2] if len(shape) == 3 else 1
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    layers = []
    for c in range(nch):
        smooth = _upsample(rng.random((h // 64 + 2, w // 64 + 2)), h, w) - 0.5
        fine = rng.normal(0.0, 7.0, size=(h, w))
        waves = 18 * np.sin(xx / (6.0 + 2 * c)) * np.cos(yy / (9.0 + c))
        layers.append(120 + 10 * c + 90 * smooth + waves + fine)
    bg = np.stack(layers, axis=-1) if nch > 1 else layers[0]
    return np.clip(bg, 15, 235).astype(np.int16)


def set_barcode(img, n):
    img[0:32, 0:4 * BARCODE_BITS] = 0
    for k in range(BARCODE_BITS):
        if (n >> k) & 1:
            img[0:32, 4 * k + 1:4 * k + 3] = 255


def read_barcode(img):
    img = np.asarray(img)
    corner = img[4:28, 0:4 * BARCODE_BITS].astype(np.float32)
    if corner.ndim == 3:
        corner = corner.mean(axis=2)
    n = 0
    for k in range(BARCODE_BITS):
        if corner[:, 4 * k + 1:4 * k + 3].mean() > 127:
            n |= 1 << k
    return n


def make_frames(nframes, shape, seed=SEED):
    """list of uint8 frames; frame i carries barcode i"""
    return list(iter_frames(nframes, shape, seed))


def iter_frames(nframes, shape, seed=SEED):
    """the frames of make_frames, one at a time (for stores too big to hold in memory)"""
    rng = np.random.default_rng(seed)
    h, w = shape[:2]
    bg = make_background(shape, rng)
    nblobs = 6
    pos = rng.random((nblobs, 2)) * (h, w)
    vel = (rng.random((nblobs, 2)) - 0.5) * 12
    rad = rng.integers(12, 40, nblobs)
    val = rng.choice([25, 40, 220], nblobs)
    for i in range(nframes):
        f = bg.copy()
        for b in range(nblobs):
            # bounce off the borders
            cy, cx = pos[b] + vel[b] * i
            cy = abs(((cy + 2 * h) % (2 * h)) - h) if h else 0
            cx = abs(((cx + 2 * w) % (2 * w)) - w) if w else 0
            cy, cx, r = int(min(cy, h - 1)), int(min(cx, w - 1)), int(rad[b])
            y0, y1, x0, x1 = max(cy - r, 0), min(cy + r, h), max(cx - r, 0), min(cx + r, w)
            yy, xx = np.ogrid[y0:y1, x0:x1]
            m = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
            f[y0:y1, x0:x1][m] = val[b]
        f += rng.integers(-6, 7, size=f.shape, dtype=np.int16)
        np.clip(f, 0, 255, out=f)
        f = f.astype(np.uint8)
        set_barcode(f, i)
        yield f


def random_targets(nframes, reads):
    """the frame numbers of the random-read phase, in read order (decoder.py computes its limit on them)"""
    return np.random.default_rng(SEED + 1).permutation(nframes)[:reads]


# ---------------------------------------------------------------- helpers

def dir_size(path):
    total = 0
    for root, _, files in os.walk(path):
        for fn in files:
            try:
                total += os.path.getsize(os.path.join(root, fn))
            except OSError:
                pass
    return total


class Checker(object):
    """counts frames whose barcode or returned frame number is wrong"""

    def __init__(self):
        self.checked = 0
        self.wrong = 0
        self.examples = []

    def check(self, img, md, expected):
        self.checked += 1
        got_md = None
        try:
            got_md = int(md[0])
        except Exception:
            pass
        try:
            got_img = read_barcode(img)
        except Exception as e:
            got_img = _err(e)
        if got_img != expected or got_md != expected:
            self.wrong += 1
            if len(self.examples) < 5:
                self.examples.append({'expected': expected, 'barcode': got_img, 'frame_number': got_md})


def vm_hwm_kb():
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def import_imgstore(out):
    t = time.perf_counter()
    import imgstore
    out['metrics']['import_s'] = time.perf_counter() - t
    return imgstore


# ---------------------------------------------------------------- tasks

def task_probe(args, out):
    info = out['info']
    info['python'] = sys.version.split()[0]
    info['executable'] = sys.executable
    info['numpy'] = np.__version__
    try:
        import cv2
        info['opencv'] = cv2.__version__
    except Exception:
        info['opencv'] = None
    imgstore = import_imgstore(out)
    info['imgstore'] = getattr(imgstore, '__version__', None)
    if info['imgstore'] is None:
        try:
            from importlib.metadata import version
            info['imgstore'] = version('imgstore')
        except Exception:
            pass
    info['imgstore_file'] = getattr(imgstore, '__file__', None)
    try:
        info['formats'] = sorted(imgstore.get_supported_formats())
    except Exception as e:
        out['errors']['formats'] = _err(e)
    for name in ('new_for_format', 'new_for_filename'):
        if not hasattr(imgstore, name):
            out['errors'][name] = 'imgstore.%s missing' % name


def _run_phase(out, name, fn):
    try:
        return fn()
    except Exception as e:
        out['errors'][name] = _err(e)
        if os.environ.get('BENCH_TRACEBACK'):
            traceback.print_exc()
        return None


def task_store(args, out, fmt, shape_name):
    m = out['metrics']
    shape = SHAPES[shape_name]
    video = '/' in fmt or fmt in ('mjpeg',)
    nframes = args.frames
    out['params'].update(format=fmt, shape=list(shape), frames=nframes, chunksize=CHUNKSIZE,
                         video=video)

    t = time.perf_counter()
    frames = None if args.source else make_frames(nframes, shape)
    out['params']['generate_s'] = round(time.perf_counter() - t, 3)

    imgstore = _run_phase(out, 'import', lambda: import_imgstore(out))
    if imgstore is None:
        return
    store_dir = args.keep or os.path.join(args.workdir, 'store')
    if args.source:
        # a fresh copy each run: files a reader leaves in the store (our packet indexes) start absent
        shutil.copytree(args.source, store_dir)
        out['params']['source'] = args.source
    def warm_up():
        # a throwaway 2-frame store, written and read back first, so that the timed phases measure
        # writing and reading, not the one-time import of the video libraries (ours imports PyAV at
        # the first video store, the original imports OpenCV with imgstore) nor encoder probes or
        # decoder set-up; both sides get the same
        d = os.path.join(args.workdir, 'warm-up')
        two = frames[:2] if frames is not None else make_frames(2, shape)
        s = imgstore.new_for_format(fmt, basedir=d, mode='w', imgshape=shape, imgdtype=np.uint8,
                                    chunksize=CHUNKSIZE)
        for i in range(2):
            s.add_image(two[i], i, T0 + i / FPS)
        s.close()
        s = imgstore.new_for_filename(d)
        for i in range(2):
            s.get_next_image()
        s.get_image(0)
        s.close()
        shutil.rmtree(d, ignore_errors=True)
        return True

    if not args.keep:
        _run_phase(out, 'warm_up', warm_up)
    if hasattr(os, 'sync'):
        os.sync()  # start timing with no dirty pages of earlier work being flushed

    def write():
        t = time.perf_counter()
        s = imgstore.new_for_format(fmt, basedir=store_dir, mode='w', imgshape=shape,
                                    imgdtype=np.uint8, chunksize=CHUNKSIZE)
        for i, f in enumerate(frames):
            s.add_image(f, i, T0 + i / FPS)
        s.close()
        m['write_fps'] = nframes / (time.perf_counter() - t)
        m['bytes_per_frame'] = dir_size(store_dir) / float(nframes)
        return True

    if not args.source and 'write' not in args.phases and not args.keep:
        out['errors']['phases'] = 'reads need a store: --phases without write needs --source'
        return
    if not args.source:
        if args.keep and os.path.exists(store_dir):
            shutil.rmtree(store_dir)
        if not _run_phase(out, 'write', write):
            return
        del frames
        if args.keep or not set(args.phases) & {'seq', 'random', 'clustered'}:
            return

    checker = Checker()

    def open_store():
        t = time.perf_counter()
        s = imgstore.new_for_filename(store_dir)
        dt = time.perf_counter() - t
        return s, dt

    def seq_read():
        s, dt = open_store()
        m['open_s'] = dt
        n = int(s.frame_count)
        if n != nframes:
            out['errors']['frame_count'] = 'frame_count %s != %s written' % (n, nframes)
        t = time.perf_counter()
        done = 0
        for i in range(n):
            img, md = s.get_next_image()
            checker.check(img, md, i)
            done += 1
            if time.perf_counter() - t > args.time_cap:
                break
        m['seq_read_fps'] = done / (time.perf_counter() - t)
        out['params']['seq_reads'] = done
        s.close()
        return True

    def random_read(name, targets):
        s, _ = open_store()
        t = time.perf_counter()
        done = 0
        for n in targets:
            img, md = s.get_image(int(n))
            checker.check(img, md, int(n))
            done += 1
            if time.perf_counter() - t > args.time_cap:
                break
        m[name] = done / (time.perf_counter() - t)
        out['params'][name.replace('_per_s', 's')] = done
        s.close()
        return True

    rng = np.random.default_rng(SEED + 1)
    phases = args.phases
    if 'seq' in phases:
        _run_phase(out, 'seq_read', seq_read)
    targets = rng.permutation(nframes)[:args.reads]  # = random_targets(nframes, args.reads)
    if 'random' in phases:
        _run_phase(out, 'random_read', lambda: random_read('random_read_per_s', targets))
    if video and 'clustered' in phases:
        k = args.reads
        lo, hi = min(50, nframes - 1), max(nframes - 51, 0)
        centres = np.linspace(lo, max(hi, lo), k)
        clustered = np.clip(np.round(centres + rng.integers(-50, 51, k)), 0, nframes - 1).astype(int)
        _run_phase(out, 'clustered_read', lambda: random_read('clustered_read_per_s', clustered))
    m['wrong_frames'] = checker.wrong
    m['frames_checked'] = checker.checked
    if checker.examples:
        out['wrong_examples'] = checker.examples


# ------------------------------------------------------------- index scale

def parse_n(s):
    return int(float(s))


def index_store_dir(data_dir, n):
    return os.path.join(data_dir, 'index_%d' % n)


def index_times(n):
    """frame_time of the synthetic index: 25 fps with seeded jitter, increasing"""
    rng = np.random.default_rng(SEED + 2)
    return T0 + np.arange(n) / FPS + rng.random(n) * 0.01


def task_gen_index(args, out, n):
    path = index_store_dir(args.data_dir, n)
    marker = os.path.join(path, '.bench-complete')
    out['params'].update(frames=n, path=path, chunksize=INDEX_CHUNKSIZE)
    if os.path.exists(marker):
        out['params']['reused'] = True
        return
    t = time.perf_counter()
    if os.path.exists(path):
        shutil.rmtree(path)
    os.makedirs(path)
    store_md = {
        'chunksize': INDEX_CHUNKSIZE, 'class': 'DirectoryImgStore',
        'created_utc': '2026-11-22T12:00:00.000000', 'encoding': None, 'format': 'npy',
        'imgdtype': 'uint8', 'imgshape': [1024, 1280], 'timezone_local': 'Etc/UTC',
        'uuid': '0123456789abcdef0123456789abcdef', 'version': 2,
    }
    # written by hand (no yaml dependency), same layout as the original writes
    with open(os.path.join(path, 'metadata.yaml'), 'w') as f:
        f.write('__store:\n')
        for k in sorted(store_md):
            v = store_md[k]
            if v is None:
                f.write('  %s: null\n' % k)
            elif isinstance(v, list):
                f.write('  %s:\n%s' % (k, ''.join('  - %d\n' % x for x in v)))
            elif isinstance(v, str) and k == 'created_utc':
                f.write("  %s: '%s'\n" % (k, v))
            else:
                f.write('  %s: %s\n' % (k, v))
    times = index_times(n)
    for c, start in enumerate(range(0, n, INDEX_CHUNKSIZE)):
        stop = min(start + INDEX_CHUNKSIZE, n)
        cdir = os.path.join(path, '%06d' % c)
        os.mkdir(cdir)
        with open(os.path.join(cdir, 'index.npz'), 'wb') as f:
            np.savez(f, frame_number=np.arange(start, stop, dtype=np.int64),
                     frame_time=times[start:stop].astype(np.float64), **store_md)
    with open(marker, 'w') as f:
        f.write('%d\n' % n)
    if hasattr(os, 'sync'):
        os.sync()
    out['params']['generate_s'] = round(time.perf_counter() - t, 3)


def clean_index_store(path):
    """remove whatever is not part of the pristine synthetic store (caches)"""
    removed = []
    for name in os.listdir(path):
        p = os.path.join(path, name)
        if name in ('metadata.yaml', '.bench-complete'):
            continue
        if os.path.isdir(p) and name.isdigit() and len(name) == 6:
            for sub in os.listdir(p):
                if sub != 'index.npz':
                    sp = os.path.join(p, sub)
                    shutil.rmtree(sp) if os.path.isdir(sp) else os.remove(sp)
                    removed.append(os.path.join(name, sub))
            continue
        shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
        removed.append(name)
    return removed


def index_lookups(store):
    """(by_frame_number, by_nearest_time, api_description) for the store's index.

    Both return something normalised by _global_index. Index lookups are timed
    directly because the synthetic store has no frame files for get_image().
    """
    idx = getattr(store, '_index', None)
    if idx is None:
        raise NotImplementedError('store has no _index attribute')
    # ours: TODO(bench) confirm these names against src/imgstore/index.py once
    # it lands; the first pair of candidates that exists is used.
    ours_candidates = [
        ('find_number', 'nearest_time'),
        ('find_frame_number', 'find_nearest_time'),
        ('lookup_number', 'lookup_nearest_time'),
    ]
    for by_n, by_t in ours_candidates:
        if hasattr(idx, by_n) and hasattr(idx, by_t):
            return getattr(idx, by_n), getattr(idx, by_t), '_index.%s / _index.%s' % (by_n, by_t)
    # the original's sqlite ImgStoreIndex (and any compatible one)
    if hasattr(idx, 'find_chunk') and hasattr(idx, 'find_chunk_nearest'):
        return (lambda n: idx.find_chunk('frame_number', n),
                lambda t: idx.find_chunk_nearest('frame_time', t),
                "_index.find_chunk('frame_number') / _index.find_chunk_nearest('frame_time')")
    raise NotImplementedError('no known lookup methods on %s' % type(idx).__name__)


def _global_index(res, chunksize=INDEX_CHUNKSIZE):
    """(chunk, idx_in_chunk) or a global index -> global index"""
    if isinstance(res, (tuple, list)) and len(res) == 2:
        return int(res[0]) * chunksize + int(res[1])
    for a, b in (('chunk', 'frame_idx'), ('chunk', 'index'), ('chunk_n', 'frame_idx')):
        if hasattr(res, a) and hasattr(res, b):
            return int(getattr(res, a)) * chunksize + int(getattr(res, b))
    return int(res)


def task_index(args, out, n, phase):
    m = out['metrics']
    path = index_store_dir(args.data_dir, n)
    out['params'].update(frames=n, phase=phase, path=path)
    if not os.path.exists(os.path.join(path, '.bench-complete')):
        out['errors']['setup'] = 'synthetic store missing: run gen-index:%d first' % n
        return
    if phase == 'first':
        removed = clean_index_store(path)
        # ours can also keep its index cache in a per-user folder: the driver
        # points IMGSTORE_CACHE_DIR at a bench-owned folder, emptied here
        cache_dir = os.environ.get('IMGSTORE_CACHE_DIR')
        if cache_dir and os.path.isdir(cache_dir) and \
                os.path.abspath(cache_dir).startswith(os.path.abspath(args.data_dir) + os.sep):
            for name in os.listdir(cache_dir):
                p = os.path.join(cache_dir, name)
                shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
                removed.append(p)
        out['params']['removed_before_open'] = removed
    imgstore = _run_phase(out, 'import', lambda: import_imgstore(out))
    if imgstore is None:
        return
    hwm0 = vm_hwm_kb()

    def do_open():
        t = time.perf_counter()
        s = imgstore.new_for_filename(path)
        m['open_s'] = time.perf_counter() - t
        m['rss_increase_mb'] = (vm_hwm_kb() - hwm0) / 1024.0
        return s

    s = _run_phase(out, 'open', do_open)
    if s is None:
        return

    def summary():
        t = time.perf_counter()
        fc, fmin, fmax = s.frame_count, s.frame_min, s.frame_max
        m['summary_access_us'] = (time.perf_counter() - t) * 1e6
        if (int(fc), int(fmin), int(fmax)) != (n, 0, n - 1):
            out['errors']['summary'] = 'frame_count/min/max = %s/%s/%s, expected %s/0/%s' % (
                fc, fmin, fmax, n, n - 1)
        return True

    _run_phase(out, 'summary', summary)

    lk = None
    if args.lookups > 0:
        lk = _run_phase(out, 'lookup_api', lambda: index_lookups(s))
    if lk is None:
        try:
            s.close()
        except Exception:
            pass
        return
    by_n, by_t, desc = lk
    out['params']['lookup_api'] = desc
    rng = np.random.default_rng(SEED + 3)
    numbers = rng.integers(0, n, args.lookups)
    times = index_times(n)
    wrong = [0]

    def timed(name, fn, values, expected):
        if not len(values):
            return True
        # the first lookup separately: it may build lazy structures
        t = time.perf_counter()
        if _global_index(fn(values[0])) != expected[0]:
            wrong[0] += 1
        t1 = time.perf_counter()
        m[name.replace('_ms', '_first_ms')] = (t1 - t) * 1e3
        done = 0
        for v, e in zip(values[1:], expected[1:]):
            if _global_index(fn(v)) != e:
                wrong[0] += 1
            done += 1
            if time.perf_counter() - t1 > args.time_cap:
                break
        if done:
            m[name] = (time.perf_counter() - t1) / done * 1e3
        out['params'][name.replace('_ms', '_count')] = done + 1
        return True

    _run_phase(out, 'lookup_number', lambda: timed('lookup_number_ms', by_n, [int(x) for x in numbers], numbers))
    # a time a little after frame i's: the nearest frame is i
    _run_phase(out, 'lookup_time', lambda: timed('lookup_time_ms', by_t, [float(times[i]) + 0.001 for i in numbers],
                                                  numbers))
    m['lookups_wrong'] = wrong[0]
    try:
        s.close()
    except Exception:
        pass


# ---------------------------------------------------------------- main

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('task')
    p.add_argument('--json', action='store_true', help='print one JSON object (the only stdout line)')
    p.add_argument('--frames', type=int, default=300, help='frames per store (default 300)')
    p.add_argument('--reads', type=int, default=200, help='random / clustered reads (default 200)')
    p.add_argument('--lookups', type=int, default=200, help='index lookups per kind (default 200)')
    p.add_argument('--time-cap', type=float, default=20.0,
                   help='stop a read/lookup phase after this many seconds (default 20)')
    p.add_argument('--workdir', help='scratch folder (default: a new temp folder, removed after)')
    p.add_argument('--keep', help='FMT:SHAPE: write the store to this folder (replaced) and stop')
    p.add_argument('--source', help='FMT:SHAPE: read a copy of the store in this folder, no write')
    p.add_argument('--phases', default='write,seq,random,clustered',
                   help='FMT:SHAPE: phases to run, comma list of write,seq,random,clustered (default all; '
                        '--keep always writes, --source never does)')
    p.add_argument('--data-dir', default=os.path.join(os.path.dirname(os.path.abspath(__file__)), '.data'),
                   help='where index stores are kept (default bench/.data)')
    args = p.parse_args(argv)
    args.phases = [x.strip() for x in args.phases.split(',') if x.strip()]
    bad = set(args.phases) - {'write', 'seq', 'random', 'clustered'}
    if bad:
        p.error('unknown phases %s' % sorted(bad))

    out = {'task': args.task, 'ok': True, 'metrics': {}, 'errors': {}, 'params': {}, 'info': {}}
    made_workdir = False
    if args.workdir is None:
        args.workdir = tempfile.mkdtemp(prefix='imgstore-bench-')
        made_workdir = True
    t_start = time.perf_counter()
    # keep stdout clean for the JSON line: the libraries may print
    real_stdout = sys.stdout
    if args.json:
        sys.stdout = sys.stderr
    try:
        task = args.task
        if task == 'probe':
            task_probe(args, out)
        elif task.startswith('gen-index:'):
            task_gen_index(args, out, parse_n(task.split(':')[1]))
        elif task.startswith('index:'):
            _, n, phase = task.split(':')
            if phase not in ('first', 'warm'):
                raise ValueError('index phase must be first or warm')
            task_index(args, out, parse_n(n), phase)
        elif ':' in task:
            fmt, shape_name = task.rsplit(':', 1)
            if shape_name not in SHAPES:
                raise ValueError('shape must be one of %s' % sorted(SHAPES))
            task_store(args, out, fmt, shape_name)
        else:
            raise ValueError('unknown task %r' % task)
    except Exception as e:
        out['errors']['task'] = _err(e)
        if os.environ.get('BENCH_TRACEBACK'):
            traceback.print_exc()
    finally:
        if made_workdir:
            shutil.rmtree(args.workdir, ignore_errors=True)
        sys.stdout = real_stdout
    out['ok'] = not out['errors']
    out['wall_s'] = time.perf_counter() - t_start
    if args.json:
        print(json.dumps(out, default=str))
    else:
        print(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == '__main__':
    sys.exit(main())
