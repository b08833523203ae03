#!/usr/bin/env python
"""Several cameras read together: ``imgstore.align_stores`` against reading the stores one after the
other, and against the original's ``StoreAligner.iter_imgs``, on the same stores.

    python bench/align.py                 # full run (3 repeats); --quick for a smoke run
    python bench/align.py --repeats 5 --out bench/

Two cases (the stores are written once by ours, in --data-dir, and reused):

* video: two 1280x1024 gray ``h264/mkv`` stores of --frames frames (chunks of 100), cameras on one
  trigger (the same frame numbers). Timed: reading store A then store B sequentially
  (``get_next_image``), iterating ``align_stores([A, B])``, and the original's
  ``StoreAligner(A, B).iter_imgs()``;
* index: two ``npy`` stores of --small-frames 48x64 frames (chunks of 1000), the first
  --aligned aligned frames. The original looks every frame up in its unindexed sqlite table (one
  query per frame per store; its cost grows with the store).

Every measurement runs in a fresh subprocess (``--worker TASK``), our side with this checkout's
``.venv/bin/python``, the original's with ``bench/.envs/original/bin/python`` (``bench/setup_original.sh``);
the stores are opened before the clock starts. On Python 3 the original's ``iter_imgs`` yields
no frame at all (it looks frame numbers up as numpy integers, which its sqlite index stores as
blobs): the original is timed through an adapter that passes them as Python ints; the run also
records how many frames it yields without one. Ratios > 1 mean ours is faster. Results go to
``bench/results-align-<date>.md`` and ``.json``.
"""
import argparse
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OURS = os.path.join(ROOT, '.venv', 'bin', 'python')
ORIGINAL = os.path.join(HERE, '.envs', 'original', 'bin', 'python')
TARGETS = {'video_vs_sequential': 0.8, 'video_vs_original': 1.5, 'index_vs_original': 10.0}
T0 = 1.7e9
FPS = 30.0


# ---------------------------------------------------------------- worker side (either interpreter)

class IntFrameNumbers(object):
    """The original's store with frame numbers passed to ``get_image`` as Python ints (its sqlite
    index holds them as integers; numpy integers are bound as blobs and match nothing)."""

    def __init__(self, store):
        self._store = store
        self.image_shape = store.image_shape

    def get_frame_metadata(self):
        return self._store.get_frame_metadata()

    def get_image(self, frame_number, exact_only=True, frame_index=None):
        return self._store.get_image(int(frame_number), exact_only=exact_only, frame_index=frame_index)


def _open(imgstore, data, names):
    return [imgstore.new_for_filename(os.path.join(data, n)) for n in names]


def _checked(frames, read_barcode):
    """frame numbers of the (image, frame number) pairs whose barcode disagrees"""
    return [fn for img, fn in frames if read_barcode(img) != fn % 65536]


def worker(task, data, limit):
    """One measurement: dict with seconds, frames, wrong (barcodes that disagree, sampled)."""
    sys.path.insert(0, HERE)
    from workload import read_barcode  # noqa: E402 - the benchmark's own barcode (bench/workload.py)
    import imgstore

    names = ('video/cam1', 'video/cam2') if task.startswith('video') else ('small/small1', 'small/small2')
    stores = _open(imgstore, data, names)
    sample = []
    if task.endswith('sequential'):
        t0 = time.perf_counter()
        n = 0
        for s in stores:
            for i in range(s.frame_count):
                img, (fn, _) = s.get_next_image()
                if i % 50 == 0:
                    sample.append((img, fn))
                n += 1
        dt = time.perf_counter() - t0
        return {'seconds': dt, 'frames': n // 2, 'wrong': len(_checked(sample, read_barcode))}
    if task.endswith('ours'):
        t0 = time.perf_counter()
        rows = imgstore.align_stores(stores)
        n = 0
        for key, imgs, metas in itertools.islice(rows, limit):
            if n % 50 == 0:
                sample.extend((img, m[0]) for img, m in zip(imgs, metas))
            n += 1
        dt = time.perf_counter() - t0
        return {'seconds': dt, 'frames': n, 'wrong': len(_checked(sample, read_barcode))}
    from imgstore.align import StoreAligner  # the original's (or ours, if asked)

    raw = StoreAligner(*stores)  # without the adapter: how many of the first 3 frames it yields
    raw.extract_common_frames(StoreAligner.MISSING_POLICY_DROP)
    raw._fns = raw._fns[:3]  # (it tries every frame number before it ends: 3 are enough to tell)
    yielded_raw = sum(1 for _ in raw.iter_imgs())
    t0 = time.perf_counter()
    al = StoreAligner(*[IntFrameNumbers(s) for s in stores])
    al.extract_common_frames(StoreAligner.MISSING_POLICY_DROP)
    n = 0
    for fn, imgs in itertools.islice(al.iter_imgs(), limit):
        if n % 50 == 0:
            sample.extend((img, fn) for img in imgs)
        n += 1
    dt = time.perf_counter() - t0
    return {'seconds': dt, 'frames': n, 'wrong': len(_checked(sample, read_barcode)),
            'yielded_without_adapter_of_3': yielded_raw}


# ---------------------------------------------------------------- making the stores (ours)

def make_stores(video_dir, small_dir, frames, small_frames):
    sys.path.insert(0, HERE)
    from workload import make_frames, set_barcode  # noqa: E402
    import numpy as np
    import imgstore

    for k, name in enumerate(('cam1', 'cam2')):
        path = os.path.join(video_dir, name)
        if os.path.exists(os.path.join(path, 'metadata.yaml')):
            continue
        imgs = make_frames(frames, (1024, 1280), seed=20261202 + k)
        with imgstore.new_for_format('h264/mkv', basedir=path, imgshape=(1024, 1280), imgdtype=np.uint8,
                                     chunksize=100) as s:
            for i, img in enumerate(imgs):
                s.add_image(img, i, T0 + i / FPS + k * 0.001)
        del imgs
    base = np.random.default_rng(1).integers(20, 100, size=(48, 64)).astype(np.uint8)
    for k, name in enumerate(('small1', 'small2')):
        path = os.path.join(small_dir, name)
        if os.path.exists(os.path.join(path, 'metadata.yaml')):
            continue
        with imgstore.new_for_format('npy', basedir=path, imgshape=(48, 64), imgdtype=np.uint8,
                                     chunksize=1000) as s:
            for i in range(small_frames):
                img = base.copy()
                set_barcode(img, i % 65536)
                s.add_image(img, i, T0 + i / FPS + k * 0.001)


# ---------------------------------------------------------------- driver

def run_worker(python, task, data, limit, timeout):
    cmd = [python, os.path.abspath(__file__), '--worker', task, '--data-dir', data, '--limit', str(limit)]
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return {'error': 'timed out after %d s' % timeout}
    if p.returncode != 0:
        tail = (p.stderr.strip().splitlines() or ['exit %d' % p.returncode])[-1]
        return {'error': tail[:300]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def _median(runs, key='seconds'):
    vals = [r[key] for r in runs if key in r]
    return statistics.median(vals) if vals else None


def measure(args):
    plan = [('video_sequential', OURS, args.frames), ('video_ours', OURS, args.frames),
            ('video_original', args.orig_python, args.frames),
            ('index_ours', OURS, args.aligned), ('index_original', args.orig_python, args.aligned)]
    runs = {task: [] for task, _, _ in plan}
    for rep in range(args.repeats):
        order = plan if rep % 2 == 0 else plan[::-1]  # alternate which goes first
        for task, python, limit in order:
            if python is None:
                continue
            res = run_worker(python, task, args.data_dir, limit, args.timeout)
            runs[task].append(res)
            print('  %-17s rep %d: %s' % (task, rep + 1, res), flush=True)
    return runs


def report(args, runs):
    med = {t: _median(r) for t, r in runs.items()}
    frames = {t: (r[0].get('frames') if r else None) for t, r in runs.items()}

    def rate(t):
        return frames[t] / med[t] if med.get(t) and frames.get(t) else None

    ratios = {}
    if rate('video_ours') and rate('video_sequential'):
        ratios['video_vs_sequential'] = rate('video_ours') / rate('video_sequential')
    if rate('video_ours') and rate('video_original'):
        ratios['video_vs_original'] = rate('video_ours') / rate('video_original')
    if rate('index_ours') and rate('index_original'):
        ratios['index_vs_original'] = rate('index_ours') / rate('index_original')
    lines = ['# Aligned reading of two stores, %s' % time.strftime('%Y-%m-%d %H:%M'), '',
             '`python bench/align.py %s` (medians of %d fresh processes; python %s, %d cores, load %s)' % (
                 ' '.join(args.argv), args.repeats, platform.python_version(), os.cpu_count() or 0,
                 ' '.join('%.2f' % x for x in os.getloadavg())), '',
             '| task | frames (rows) | median s | rows/s | wrong barcodes (sampled) |', '|---|---:|---:|---:|---:|']
    for t in runs:
        if not runs[t]:
            continue
        errs = [r['error'] for r in runs[t] if 'error' in r]
        if errs:
            lines.append('| %s | n/a | n/a | n/a | %s |' % (t, errs[0]))
            continue
        lines.append('| %s | %d | %.3f | %.1f | %d |' % (t, frames[t], med[t], rate(t),
                                                        max(r.get('wrong', 0) for r in runs[t])))
    lines += ['', '| ratio | ours | target |', '|---|---:|---:|']
    for k, target in TARGETS.items():
        v = ratios.get(k)
        lines.append('| %s | %s | >= %.1fx %s |' % (k, 'n/a' if v is None else '%.2fx' % v, target,
                                                    '' if v is None else ('met' if v >= target else 'NOT met')))
    raw = [r.get('yielded_without_adapter_of_3') for t in runs if t.endswith('original') for r in runs[t]]
    if raw:
        lines += ['', "the original's iter_imgs without the adapter yielded %s of the first 3 frames" %
                  sorted(set(x for x in raw if x is not None))]
    return '\n'.join(lines) + '\n', {'runs': runs, 'medians': med, 'ratios': ratios, 'targets': TARGETS}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--worker', help=argparse.SUPPRESS)
    p.add_argument('--limit', type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument('--data-dir', default=os.path.join(tempfile.gettempdir(), 'imgstore-bench-align'))
    p.add_argument('--frames', type=int, default=300, help='frames per 1280x1024 store (default 300)')
    p.add_argument('--small-frames', type=int, default=60000, help='frames per small store (default 6e4)')
    p.add_argument('--aligned', type=int, default=2000, help='aligned rows timed on the small stores (2000)')
    p.add_argument('-k', '--repeats', type=int, default=3)
    p.add_argument('--quick', action='store_true', help='100 frames, 1 repeat, small stores of 6e4 still')
    p.add_argument('--orig-python', default=ORIGINAL if os.path.exists(ORIGINAL) else None)
    p.add_argument('--timeout', type=int, default=600)
    p.add_argument('--out', default=HERE, help='where results go (default bench/)')
    p.add_argument('--no-write', action='store_true')
    args = p.parse_args(argv)
    args.argv = argv
    if args.worker:
        print(json.dumps(worker(args.worker, args.data_dir, args.limit or 10 ** 12)))
        return 0
    if args.quick:
        args.frames, args.repeats = 100, 1
    # the stores of each size are written once (by ours) and kept: a run's data dir links to them
    video_dir = os.path.join(args.data_dir, 'video-%d' % args.frames)
    small_dir = os.path.join(args.data_dir, 'small-%d' % args.small_frames)
    run_dir = os.path.join(args.data_dir, 'run-%d-%d' % (args.frames, args.small_frames))
    for d in (video_dir, small_dir, run_dir):
        os.makedirs(d, exist_ok=True)
    for name, target in (('video', video_dir), ('small', small_dir)):
        link = os.path.join(run_dir, name)
        if not os.path.islink(link):
            os.symlink(target, link)
    print('stores in %s (written once by ours)' % args.data_dir, flush=True)
    subprocess.run([OURS, '-c', 'import sys; sys.path.insert(0, %r); import align; align.make_stores(%r, %r, %d, %d)'
                    % (HERE, video_dir, small_dir, args.frames, args.small_frames)], check=True)
    args.data_dir = run_dir
    if args.orig_python is None:
        print('the original is not installed (bench/setup_original.sh): timing ours only', flush=True)
    text, raw = report(args, measure(args))
    print(text)
    if not args.no_write:
        stem = os.path.join(args.out, 'results-align-%s%s' % (time.strftime('%Y-%m-%d_%H%M'),
                                                              '-quick' if args.quick else ''))
        with open(stem + '.md', 'w') as f:
            f.write(text)
        with open(stem + '.json', 'w') as f:
            json.dump(raw, f, indent=1, default=str)
        print('wrote %s.md and .json' % stem)
    return 0


if __name__ == '__main__':
    sys.exit(main())
