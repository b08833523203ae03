#!/usr/bin/env python
"""Side-by-side benchmark: the original imgstore 0.4.0 vs ours, in one run.

    bash bench/setup_original.sh          # once: makes bench/.envs/original
    python bench/run.py --quick           # smoke run, < 2 minutes
    python bench/run.py                   # full run (dir + video + origvideo + index 1e5,1e6)
    python bench/run.py --only video,origvideo   # the video tables and issue #3's targets

Every task runs in its own subprocess (bench/workload.py), once per side and
repeat, the two sides interleaved (alternating which goes first). Numbers are
medians over the repeats. Ratios are oriented so that > 1 always means "ours
is better": ours/original for throughputs, original/ours for times, bytes and
memory. Anything a side fails at is shown as n/a with the error as a footnote.
Writes bench/results-<date>.md and .json (quick runs: results-<date>-quick.*).

Groups: `dir` and `video` (each side writes its own store, then reads it),
`origvideo` (the original writes each video store once; both sides then read
fresh copies of those same files), `index` (open and lookups at scale).
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORKLOAD = os.path.join(HERE, 'workload.py')
SIDES = ('original', 'ours')

DIR_FORMATS = ['npy', 'png', 'jpg', 'tif', 'bmp', 'ppm', 'pgm']
VIDEO_FORMATS = ['mjpeg/avi', 'avc1/mp4', 'h264/mkv']
FORMAT_ALIASES = {'mjpeg'}          # legacy name of mjpeg/avi
SHAPE_LABEL = {'gray': '1280x1024 gray', 'color': '640x480 BGR'}

# metric -> (label, unit, scale, higher_is_better)
STORE_METRICS = [
    ('write_fps', 'write', 'fps', 1.0, True),
    ('seq_read_fps', 'sequential read', 'fps', 1.0, True),
    ('random_read_per_s', 'random read', '/s', 1.0, True),
    ('clustered_read_per_s', 'clustered read (±50)', '/s', 1.0, True),
    ('bytes_per_frame', 'size on disk', 'kB/frame', 1e-3, False),
    ('open_s', 'open', 'ms', 1e3, False),
]
READ_METRICS = [m for m in STORE_METRICS if m[0] not in ('write_fps', 'bytes_per_frame')]
ORIG_WRITTEN_DIR = os.path.join(HERE, '.data', 'orig-written')
GROUPS = ('dir', 'video', 'origvideo', 'index')
INDEX_METRICS = [
    ('open_s', 'open', 's', 1.0, False),
    ('rss_increase_mb', 'peak RSS increase on open', 'MB', 1.0, False),
    ('summary_access_us', 'frame_count+frame_min+frame_max', 'µs', 1.0, False),
    ('lookup_number_first_ms', 'first lookup by frame_number', 'ms', 1.0, False),
    ('lookup_number_ms', 'lookup by frame_number, mean of the rest', 'ms', 1.0, False),
    ('lookup_time_first_ms', 'first lookup nearest frame_time', 'ms', 1.0, False),
    ('lookup_time_ms', 'lookup nearest frame_time, mean of the rest', 'ms', 1.0, False),
]


def log(msg):
    sys.stderr.write(msg + '\n')
    sys.stderr.flush()


def git_describe():
    """commit of the working tree ours runs from, '+dirty' if src/ has changes"""
    try:
        head = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, universal_newlines=True).stdout.strip()
        dirty = subprocess.run(['git', 'status', '--porcelain', '--', 'src'], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, universal_newlines=True).stdout.strip()
        return (head or '?') + ('+dirty' if dirty else '')
    except OSError:
        return '?'


def loadavg():
    try:
        return os.getloadavg()
    except OSError:
        return None


# ours may keep its frame-index cache in a per-user folder: keep it in ours
CACHE_DIR = os.path.join(HERE, '.data', 'user-cache')


def run_workload(python, task, extra, timeout):
    """run one workload subprocess; always returns a result dict"""
    cmd = [python, WORKLOAD, task, '--json'] + list(extra)
    env = dict(os.environ)
    env['IMGSTORE_CACHE_DIR'] = CACHE_DIR
    env.pop('PYTHONPATH', None)
    t = time.perf_counter()
    res = {'task': task, 'metrics': {}, 'errors': {}, 'params': {}, 'info': {}}
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                           cwd='/tmp', universal_newlines=True, env=env)
    except subprocess.TimeoutExpired:
        res['errors']['timeout'] = 'timed out after %d s' % timeout
        res['wall_s'] = time.perf_counter() - t
        return res
    except OSError as e:
        res['errors']['launch'] = '%s: %s' % (type(e).__name__, e)
        return res
    lines = [l for l in p.stdout.splitlines() if l.strip().startswith('{')]
    if lines:
        try:
            res = json.loads(lines[-1])
        except ValueError as e:
            res['errors']['json'] = 'bad JSON: %s' % e
    else:
        tail = (p.stderr.strip().splitlines() or ['no output'])[-1]
        res['errors']['crash'] = 'exit %s: %s' % (p.returncode, tail[-250:])
    res['wall_s'] = time.perf_counter() - t
    return res


def fatal_errors(res):
    """errors that make further repeats of this task pointless"""
    return {k: v for k, v in res.get('errors', {}).items()
            if k in ('import', 'write', 'open', 'task', 'crash', 'launch', 'setup', 'timeout')}


def median_metrics(runs):
    keys = []
    for r in runs:
        for k in r.get('metrics', {}):
            if k not in keys:
                keys.append(k)
    med = {}
    for k in keys:
        vals = [r['metrics'][k] for r in runs if isinstance(r.get('metrics', {}).get(k), (int, float))]
        if vals:
            med[k] = statistics.median(vals)
    return med


def fmt_num(v):
    if v is None:
        return 'n/a'
    a = abs(v)
    if a >= 1000:
        return '{:,.0f}'.format(v)
    if a >= 100:
        return '%.0f' % v
    if a >= 10:
        return '%.1f' % v
    if a >= 1:
        return '%.2f' % v
    if a == 0:
        return '0'
    return '%.3g' % v


def ratio(o, u, higher_better):
    if o is None or u is None:
        return None
    if higher_better:
        return u / o if o > 0 else None
    return o / u if u > 0 else None


def fmt_ratio(r):
    if r is None:
        return '–'
    return ('%.2fx' % r) if r < 10 else ('%.0fx' % r)


class Footnotes(object):
    def __init__(self):
        self.notes = []

    def ref(self, text):
        if text not in self.notes:
            self.notes.append(text)
        return '[%d]' % (self.notes.index(text) + 1)

    def render(self):
        return ['[%d] %s' % (i + 1, n.replace('|', '\\|')) for i, n in enumerate(self.notes)]


def first_error(runs, metric):
    for r in runs:
        errs = r.get('errors', {})
        for key in (metric, 'timeout', 'crash', 'launch', 'import', 'task', 'setup', 'write', 'open',
                    'seq_read', 'random_read', 'clustered_read', 'lookup_api', 'lookup_number',
                    'lookup_time', 'summary'):
            if key in errs:
                return '%s: %s' % (key, errs[key]) if key != metric else errs[key]
        if errs:
            k = sorted(errs)[0]
            return '%s: %s' % (k, errs[k])
    return 'not measured'


# which error keys explain a missing metric
METRIC_PHASE = {
    'write_fps': 'write', 'bytes_per_frame': 'write', 'seq_read_fps': 'seq_read', 'open_s': 'seq_read',
    'random_read_per_s': 'random_read', 'clustered_read_per_s': 'clustered_read',
    'lookup_number_ms': 'lookup_number', 'lookup_time_ms': 'lookup_time',
    'lookup_number_first_ms': 'lookup_number', 'lookup_time_first_ms': 'lookup_time',
    'summary_access_us': 'summary', 'rss_increase_mb': 'open',
}


def explain_missing(runs, metric, group):
    phase = METRIC_PHASE.get(metric)
    if group == 'index' and metric == 'open_s':
        phase = 'open'
    for r in runs:
        errs = r.get('errors', {})
        for key in (phase, 'lookup_api', 'timeout', 'crash', 'launch', 'import', 'task', 'setup', 'write',
                    'open', 'seq_read'):
            if key and key in errs:
                return '%s: %s' % (key, errs[key])
    return first_error(runs, metric)


def build_table(group, rows_spec, results, notes):
    """rows_spec: list of (task_key, row_prefix, metrics_list)"""
    lines = ['| metric | original | ours | ratio (>1 = ours better) |', '|---|---:|---:|---:|']
    for task_key, prefix, metrics in rows_spec:
        per_side = results.get(task_key, {})
        meds = {s: median_metrics(per_side.get(s, [])) for s in SIDES}
        for key, label, unit, scale, hb in metrics:
            if key == 'clustered_read_per_s' and group not in ('video', 'origvideo'):
                continue
            cells = []
            vals = {}
            for s in SIDES:
                v = meds[s].get(key)
                vals[s] = None if v is None else v * scale
                if v is None:
                    runs = per_side.get(s, [])
                    cells.append('n/a ' + notes.ref(explain_missing(runs, key, group)) if runs else 'not run')
                else:
                    cells.append(fmt_num(v * scale))
            r = ratio(vals['original'], vals['ours'], hb)
            lines.append('| %s — %s (%s) | %s | %s | %s |' % (prefix, label, unit, cells[0], cells[1], fmt_ratio(r)))
    return lines


def correctness_lines(results, task_order):
    out = []
    for task_key in task_order:
        for s in SIDES:
            runs = results.get(task_key, {}).get(s, [])
            wrong = sum(int(r.get('metrics', {}).get('wrong_frames', 0) or 0) for r in runs)
            wrong += sum(int(r.get('metrics', {}).get('lookups_wrong', 0) or 0) for r in runs)
            checked = sum(int(r.get('metrics', {}).get('frames_checked', 0) or 0) for r in runs)
            if wrong:
                ex = [r.get('wrong_examples') for r in runs if r.get('wrong_examples')]
                out.append('- %s, %s: %d wrong of %s checked%s' % (
                    task_key, s, wrong, checked or '?', (' e.g. %s' % json.dumps(ex[0][:3])) if ex else ''))
    return out


DEFAULT_VIDEO_FORMAT = 'h264/mkv'


def target_lines(results):
    """Issue #3's ratios, from the medians: ours' default format against the original's avc1/mp4,
    mjpeg/avi against mjpeg/avi, reads of original-written stores, sequential reads, H.264 writes."""
    def med(key, side, metric):
        return median_metrics(results.get(key, {}).get(side, [])).get(metric)

    rows = []

    def row(label, o, u, target, hb=True, extra=''):
        r = ratio(o, u, hb)
        if r is None:
            return
        rows.append('| %s | %s → %s | %s | >= %gx%s | %s |' % (
            label, fmt_num(o), fmt_num(u), fmt_ratio(r), target, extra, 'yes' if r >= target else '**no**'))

    for sh in ('gray', 'color'):
        lab = SHAPE_LABEL.get(sh, sh)
        o = med('avc1/mp4:%s' % sh, 'original', 'random_read_per_s')
        u = med('%s:%s' % (DEFAULT_VIDEO_FORMAT, sh), 'ours', 'random_read_per_s')
        ob = med('avc1/mp4:%s' % sh, 'original', 'bytes_per_frame')
        ub = med('%s:%s' % (DEFAULT_VIDEO_FORMAT, sh), 'ours', 'bytes_per_frame')
        if ob and ub:
            row('random reads/s, our %s vs original avc1/mp4, %s (bytes/frame %.2fx, limit 2x)' % (
                DEFAULT_VIDEO_FORMAT, lab, ub / ob), o, u, 10)
        row('random reads/s, mjpeg/avi, %s' % lab, med('mjpeg/avi:%s' % sh, 'original', 'random_read_per_s'),
            med('mjpeg/avi:%s' % sh, 'ours', 'random_read_per_s'), 15)
    for key in sorted(k for k in results if k.startswith('orig:')):
        _, f, sh = key.split(':')
        row('clustered reads/s (±50) of a store the original wrote, %s %s' % (f, SHAPE_LABEL.get(sh, sh)),
            med(key, 'original', 'clustered_read_per_s'), med(key, 'ours', 'clustered_read_per_s'), 10)
    for key in sorted(k for k in results if not k.startswith(('orig:', 'index:')) and '/' in k):
        f, sh = key.rsplit(':', 1)
        row('sequential fps, %s %s' % (f, SHAPE_LABEL.get(sh, sh)), med(key, 'original', 'seq_read_fps'),
            med(key, 'ours', 'seq_read_fps'), 1.5)
    for key in sorted(k for k in results if not k.startswith(('orig:', 'index:')) and '/' in k):
        f, sh = key.rsplit(':', 1)
        if f in ('avc1/mp4', 'h264/mkv'):
            row('H.264 write fps, %s %s' % (f, SHAPE_LABEL.get(sh, sh)), med(key, 'original', 'write_fps'),
                med(key, 'ours', 'write_fps'), 5)
    if not rows:
        return []
    return ['| target | original → ours | ratio | target | met |', '|---|---:|---:|---|---|'] + rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--quick', action='store_true', help='smoke run: small sizes, 1 repeat, index 1e5 (< 2 min)')
    p.add_argument('--only', default=','.join(GROUPS), help='groups to run: %s (comma list)' % ','.join(GROUPS))
    p.add_argument('--frames', type=int, help='frames per directory store (default 300; quick 20)')
    p.add_argument('--video-frames', type=int, help='frames per video store (default 300; quick 20)')
    p.add_argument('--reads', type=int, help='random reads per directory store (default 200; quick 20)')
    p.add_argument('--video-reads', type=int, help='random and clustered reads per video store (default 60; quick 5)')
    p.add_argument('--scale', help='index sizes, e.g. 1e5,1e6,1e7 (default 1e5,1e6; quick 1e5)')
    p.add_argument('--lookups', type=int, default=200, help='index lookups per kind (default 200)')
    p.add_argument('--repeats', '-k', type=int, help='repeats per task, median reported (default 3; quick 1)')
    p.add_argument('--formats', help='restrict to these formats (comma list)')
    p.add_argument('--shapes', default='gray,color', help='gray,color (default both)')
    p.add_argument('--time-cap', type=float, help='seconds per read/lookup phase before it stops (default 20; quick 5)')
    p.add_argument('--timeout', type=int, default=240, help='seconds per store task subprocess (default 240)')
    p.add_argument('--index-timeout', type=int, default=600, help='seconds per index subprocess (default 600)')
    p.add_argument('--orig-python', default=os.path.join(HERE, '.envs', 'original', 'bin', 'python'))
    p.add_argument('--ours-python', default=None,
                   help='default: /work/main/.venv/bin/python if present, else this interpreter')
    p.add_argument('--out', default=HERE, help='folder for results-<date>.md/.json (default bench/)')
    p.add_argument('--no-write', action='store_true', help='print only, write no results files')
    args = p.parse_args(argv)

    q = args.quick
    frames = args.frames or (20 if q else 300)
    vframes = args.video_frames or (20 if q else 300)
    reads = args.reads or (20 if q else 200)
    vreads = args.video_reads or (5 if q else 60)
    scales = [int(float(x)) for x in (args.scale or ('1e5' if q else '1e5,1e6')).split(',') if x]
    repeats = args.repeats or (1 if q else 3)
    time_cap = args.time_cap or (5.0 if q else 20.0)
    groups = [g.strip() for g in args.only.split(',') if g.strip()]
    for g in groups:
        if g not in GROUPS:
            p.error('unknown group %r' % g)
    shapes = [s for s in args.shapes.split(',') if s]
    ours_py = args.ours_python
    if ours_py is None:
        cand = os.path.join(ROOT, '.venv', 'bin', 'python')
        ours_py = cand if os.path.exists(cand) else sys.executable
    pythons = {'original': args.orig_python, 'ours': ours_py}

    started = datetime.datetime.now()
    load0 = loadavg()
    t_run = time.perf_counter()

    # ---- probe both sides
    probes = {}
    usable = {}
    for s in SIDES:
        if not os.path.exists(pythons[s]):
            probes[s] = {'errors': {'launch': 'no interpreter at %s (run bench/setup_original.sh)' % pythons[s]},
                         'info': {}, 'metrics': {}}
        else:
            probes[s] = run_workload(pythons[s], 'probe', [], 120)
        errs = probes[s].get('errors', {})
        bad = {k: v for k, v in errs.items() if k != 'formats'}
        usable[s] = None if not bad else '; '.join('%s: %s' % kv for kv in sorted(bad.items()))
        info = probes[s].get('info', {})
        log('[probe] %-8s %s imgstore %s (%s) %s' % (
            s, pythons[s], info.get('imgstore'), info.get('imgstore_file'),
            ('UNUSABLE: ' + usable[s]) if usable[s] else 'ok'))

    ours_formats = probes['ours'].get('info', {}).get('formats') or []
    dir_formats, video_formats = list(DIR_FORMATS), list(VIDEO_FORMATS)
    for f in ours_formats:
        if f in FORMAT_ALIASES or '+' in f or f in dir_formats or f in video_formats:
            continue
        (video_formats if '/' in f else dir_formats).append(f)
    if args.formats:
        want = set(args.formats.split(','))
        dir_formats = [f for f in dir_formats if f in want]
        video_formats = [f for f in video_formats if f in want]

    # ---- task list: (group, task_key, [(task, extra args, timeout)...] per side unit)
    jobs = []
    common = ['--time-cap', str(time_cap)]
    if 'dir' in groups:
        for f in dir_formats:
            for sh in shapes:
                jobs.append(('dir', '%s:%s' % (f, sh),
                             [('%s:%s' % (f, sh), ['--frames', str(frames), '--reads', str(reads)] + common,
                               args.timeout)]))
    if 'video' in groups:
        for f in video_formats:
            for sh in shapes:
                jobs.append(('video', '%s:%s' % (f, sh),
                             [('%s:%s' % (f, sh), ['--frames', str(vframes), '--reads', str(vreads)] + common,
                               args.timeout)]))
    if 'origvideo' in groups:
        for f in VIDEO_FORMATS:  # what the original can write
            if args.formats and f not in args.formats.split(','):
                continue
            for sh in shapes:
                src = os.path.join(ORIG_WRITTEN_DIR, '%s_%s' % (f.replace('/', '_'), sh))
                t = time.perf_counter()
                r = (run_workload(pythons['original'], '%s:%s' % (f, sh), ['--frames', str(vframes), '--keep', src],
                                  args.timeout) if not usable['original'] else {'errors': {'import': usable['original']}})
                log('[orig-written] %s %s: %s (%.1f s)' % (f, sh, r.get('errors') or 'written', time.perf_counter() - t))
                jobs.append(('origvideo', 'orig:%s:%s' % (f, sh),
                             [('%s:%s' % (f, sh), ['--frames', str(vframes), '--reads', str(vreads), '--source', src]
                               + common, args.timeout)]))
    if 'index' in groups:
        gen_py = pythons['ours'] if os.path.exists(pythons['ours']) else pythons['original']
        for n in scales:
            t = time.perf_counter()
            r = run_workload(gen_py, 'gen-index:%d' % n, [], 1800)
            log('[gen-index] %d frames: %s (%.1f s)' % (
                n, 'reused' if r.get('params', {}).get('reused') else (r.get('errors') or 'made'),
                time.perf_counter() - t))
            for phase in ('first', 'warm'):
                extra = ['--time-cap', str(time_cap), '--lookups', str(args.lookups if phase == 'warm' else 0)]
                jobs.append(('index', 'index:%d:%s' % (n, phase),
                             [('index:%d:%s' % (n, phase), extra, args.index_timeout)]))

    # index first+warm of one side must run back to back: group them into units
    units = []
    for j in jobs:
        if j[0] == 'index' and j[1].endswith(':warm') and units and units[-1][0][1].endswith(':first'):
            units[-1].append(j)
        else:
            units.append([j])

    results = {}     # task_key -> side -> [runs]
    dead = set()     # (task_key, side) that failed fatally: don't repeat
    total = repeats * len(units) * len(SIDES)
    done = 0
    for rep in range(repeats):
        for ui, unit in enumerate(units):
            order = SIDES if (rep + ui) % 2 == 0 else SIDES[::-1]
            for s in order:
                for group, key, steps in unit:
                    runs = results.setdefault(key, {}).setdefault(s, [])
                    if usable[s]:
                        if not runs:
                            runs.append({'errors': {'import': 'side unusable: ' + usable[s]}, 'metrics': {}})
                        continue
                    if (key, s) in dead:
                        continue
                    for task, extra, timeout in steps:
                        r = run_workload(pythons[s], task, extra, timeout)
                        r['repeat'] = rep
                        runs.append(r)
                        fe = fatal_errors(r)
                        if fe:
                            dead.add((key, s))
                        log('[%d/%d] rep %d %-8s %-24s %6.1f s %s' % (
                            done + 1, total, rep + 1, s, task, r.get('wall_s', 0),
                            'ok' if not r.get('errors') else 'ERR ' + json.dumps(r['errors'])[:160]))
                done += 1

    # ---- report
    load1 = loadavg()
    elapsed = time.perf_counter() - t_run
    md = []
    md.append('# imgstore benchmark: original 0.4.0 vs ours — %s%s' % (
        started.strftime('%Y-%m-%d %H:%M'), ' (quick)' if q else ''))
    md.append('')
    md.append('Ratios: **> 1 means ours is better** (ours/original for fps and reads/s; '
              'original/ours for times, bytes and memory). Medians of %d repeat(s); '
              'sides interleaved. This machine is shared and noisy: trust ratios more than '
              'absolute numbers.' % repeats)
    md.append('')
    md.append('| | original | ours |')
    md.append('|---|---|---|')
    md.append('| git commit | | %s |' % git_describe())
    for label, key in (('interpreter', 'executable'), ('python', 'python'), ('imgstore', 'imgstore'),
                       ('numpy', 'numpy'), ('cv2 importable', 'opencv')):
        md.append('| %s | %s | %s |' % (label, probes['original'].get('info', {}).get(key, 'n/a'),
                                        probes['ours'].get('info', {}).get(key, 'n/a')))
    md.append('| import imgstore (s) | %s | %s |' % tuple(
        fmt_num(probes[s].get('metrics', {}).get('import_s')) for s in SIDES))
    md.append('| usable | %s | %s |' % tuple(
        ('yes' if not usable[s] else 'no: ' + usable[s].replace('|', '\\|')) for s in SIDES))
    md.append('')
    md.append('Machine: %s, %d cores, load average %s at start, %s at end; run took %.0f s. '
              'Params: %d frames/dir store, %d frames/video store, chunksize 100, %d dir reads, '
              '%d video reads, read/lookup phases capped at %.0f s, index scales %s.' % (
                  platform.node(), os.cpu_count() or 0,
                  '/'.join('%.2f' % x for x in load0) if load0 else '?',
                  '/'.join('%.2f' % x for x in load1) if load1 else '?',
                  elapsed, frames, vframes, reads, vreads, time_cap, ','.join('%g' % n for n in scales)))

    order_keys = [j[1] for j in jobs]
    for group, title in (('dir', 'Directory formats'), ('video', 'Video formats'),
                         ('origvideo', 'Video stores written by the original (both sides read the same files)'),
                         ('index', 'Index scale')):
        gj = [j for j in jobs if j[0] == group]
        if not gj:
            continue
        notes = Footnotes()
        md.append('')
        md.append('## %s' % title)
        md.append('')
        if group == 'index':
            md.append('Synthetic DirectoryImgStore (npy, chunksize 10000) of index files only, in bench/.data/. '
                      '"first" = first open with no cache file left by a previous open; "warm" = the next open '
                      '(a fresh process each). Lookups go through the store\'s `_index` (frame files do not '
                      'exist): see the lookup API in the JSON.')
            md.append('')
            spec = []
            for j in gj:
                _, n, phase = j[1].split(':')
                mets = INDEX_METRICS if phase == 'warm' else INDEX_METRICS[:3]
                spec.append((j[1], '%s frames, %s' % ('{:,}'.format(int(n)), phase), mets))
        else:
            spec = []
            for j in gj:
                f, sh = j[1].rsplit(':', 1)
                if group == 'origvideo':
                    f = f.split(':', 1)[1]
                spec.append((j[1], '`%s` %s' % (f, SHAPE_LABEL.get(sh, sh)),
                             READ_METRICS if group == 'origvideo' else STORE_METRICS))
        md.extend(build_table(group, spec, results, notes))
        if notes.notes:
            md.append('')
            md.extend(notes.render())
    tl = target_lines(results)
    if tl:
        md.append('')
        md.append('## Targets of issue #3 (video)')
        md.append('')
        md.extend(tl)
    corr = correctness_lines(results, order_keys)
    md.append('')
    md.append('## Correctness')
    md.append('')
    md.append('Every read decodes the frame-number barcode and checks the returned frame number; index '
              'lookups are checked against the synthetic layout.')
    md.append('')
    md.extend(corr or ['- no wrong frames or lookups on either side.'])
    text = '\n'.join(md) + '\n'
    print(text)

    if not args.no_write:
        stamp = started.strftime('%Y-%m-%d_%H%M') + ('-quick' if q else '')
        base = os.path.join(args.out, 'results-%s' % stamp)
        with open(base + '.md', 'w') as f:
            f.write(text)
        with open(base + '.json', 'w') as f:
            json.dump({'started': started.isoformat(), 'elapsed_s': elapsed, 'load_start': load0,
                       'load_end': load1, 'argv': sys.argv[1:], 'pythons': pythons, 'probes': probes,
                       'git': git_describe(),
                       'params': {'frames': frames, 'video_frames': vframes, 'reads': reads,
                                  'video_reads': vreads, 'scales': scales, 'repeats': repeats,
                                  'time_cap': time_cap, 'lookups': args.lookups},
                       'medians': {k: {s: median_metrics(v.get(s, [])) for s in SIDES}
                                   for k, v in results.items()},
                       'runs': results}, f, indent=1, default=str)
        log('wrote %s.md and %s.json' % (base, base))
    return 0


if __name__ == '__main__':
    sys.exit(main())
