#!/usr/bin/env python
"""Side-by-side benchmark: the original imgstore 0.4.0 vs ours, in one run.

    bash bench/setup_original.sh          # once: makes bench/.envs/original
    python bench/run.py --quick           # smoke run, < 2 minutes
    python bench/run.py                   # full run (every group, index 1e5,1e6)
    python bench/run.py --only video,origvideo   # the video tables and issue #3's targets

Every task runs in its own subprocess (bench/workload.py), once per side and
repeat, the two sides interleaved (alternating which goes first). Numbers are
medians over the repeats. Ratios are oriented so that > 1 always means "ours
is better": ours/original for throughputs, original/ours for times, bytes and
memory. Anything a side fails at is shown as n/a with the error as a footnote.
Writes bench/results-<date>.md and .json (quick runs: results-<date>-quick.*).

Groups: `dir` and `video` (each side writes its own store, then reads it),
`origvideo` / `origdir` (the original writes each video / directory store once;
both sides then read fresh copies of those same files), `decoder` (ours against
PyAV alone on the same chunk files, bench/decoder.py), `scaling` (to_dask() on
1 vs 2 dask workers, iter_chunks vs the sequential reader; ours only,
bench/scaling.py), `index` (open and lookups at scale). The report ends with
issue #3's and issue #15's targets, PASS/FAIL.

    python bench/run.py --only origdir,decoder,scaling -k 3     # issue #15's reading targets
    python bench/run.py --only video --formats avc1/mp4,h264/mkv --phases write -k 5   # H.264 writes
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
DECODER = os.path.join(HERE, 'decoder.py')
SCALING = os.path.join(HERE, 'scaling.py')
SIDES = ('original', 'ours')
PYAV = 'PyAV alone'
SCALING_SIDES = {'scaling:dask': ('1 worker', '2 workers'), 'scaling:iter': ('sequential', 'iter_chunks'),
                 'scaling:cores': ('sequential, 1 core', 'iter_chunks, 2 cores')}

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
OURS_WRITTEN_DIR = os.path.join(HERE, '.data', 'ours-written')
GROUPS = ('dir', 'video', 'origvideo', 'origdir', 'decoder', 'scaling', 'index')
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


def run_workload(python, task, extra, timeout, script=WORKLOAD):
    """run one workload subprocess (workload.py, decoder.py or scaling.py); always returns a result dict"""
    cmd = [python, script, task, '--json'] + list(extra)
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
        for s, runs in results.get(task_key, {}).items():
            wrong = sum(int(r.get('metrics', {}).get('wrong_frames', 0) or 0) for r in runs)
            wrong += sum(int(r.get('metrics', {}).get('lookups_wrong', 0) or 0) for r in runs)
            checked = sum(int(r.get('metrics', {}).get('frames_checked', 0) or 0) for r in runs)
            if wrong:
                ex = [r.get('wrong_examples') for r in runs if r.get('wrong_examples')]
                out.append('- %s, %s: %d wrong of %s checked%s' % (
                    task_key, s, wrong, checked or '?', (' e.g. %s' % json.dumps(ex[0][:3])) if ex else ''))
    return out + scaling_digest_problems(results)


DEFAULT_VIDEO_FORMAT = 'h264/mkv'


def target_lines(results, video_keys):
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
    for key in sorted(k for k in results if k in video_keys):
        f, sh = key.rsplit(':', 1)
        row('sequential fps, %s %s' % (f, SHAPE_LABEL.get(sh, sh)), med(key, 'original', 'seq_read_fps'),
            med(key, 'ours', 'seq_read_fps'), 1.5)
    for key in sorted(k for k in results if k in video_keys):
        f, sh = key.rsplit(':', 1)
        if f in ('avc1/mp4', 'h264/mkv'):
            row('H.264 write fps, %s %s' % (f, SHAPE_LABEL.get(sh, sh)), med(key, 'original', 'write_fps'),
                med(key, 'ours', 'write_fps'), 5)
    if not rows:
        return []
    return ['| target | original → ours | ratio | target | met |', '|---|---:|---:|---|---|'] + rows


def side_cell(runs, metric, notes, scale=1.0, fmt=None):
    """(text, value) of a side's median of metric, or n/a with a footnote"""
    v = median_metrics(runs).get(metric)
    if v is None:
        if not runs:
            return 'not run', None
        return 'n/a ' + notes.ref(explain_missing(runs, metric, 'decoder')), None
    return (fmt or fmt_num)(v * scale), v


def random_limit(pyav_runs, ours_runs):
    """issue #15's random-read limit for the reads ours did: (limit /s, ideal-cache limit /s, mean frames
    per read, reads) from the medians of PyAV alone's per-frame decode and convert costs"""
    med = median_metrics(pyav_runs)
    c, conv = med.get('decode_s_per_frame'), med.get('convert_s_per_frame', 0.0)
    counts = cached = None
    for r in pyav_runs:
        if r.get('params', {}).get('random_decode_counts'):
            counts = r['params']['random_decode_counts']
            cached = r['params'].get('random_decode_counts_cached')
            break
    if c is None or not counts:
        return None, None, None, None
    done = [r.get('params', {}).get('random_reads') for r in ours_runs]
    done = [d for d in done if isinstance(d, int) and d > 0]
    m = min(len(counts), int(statistics.median(done))) if done else len(counts)

    def lim(cs):
        return m / (sum(cs[:m]) * c + m * conv) if cs and m else None

    return lim(counts), lim(cached), sum(counts[:m]) / float(m), m


def decoder_rows(results, keys):
    """per decoder key: dict of the numbers the table and the targets use"""
    rows = []
    for key in keys:
        _, writer, f, sh = key.split(':', 3)
        pr, ur = results.get(key, {}).get(PYAV, []), results.get(key, {}).get('ours', [])
        pm, um = median_metrics(pr), median_metrics(ur)
        limit, ideal, per_read, m = random_limit(pr, ur)
        cfg = next((r['params'].get('config') for r in pr if r.get('params', {}).get('config')), None)
        rows.append({'key': key, 'writer': writer, 'format': f, 'shape': sh, 'pyav': pr, 'ours': ur, 'pm': pm,
                     'um': um, 'limit': limit, 'ideal': ideal, 'per_read': per_read, 'reads': m, 'config': cfg})
    return rows


def decoder_table(gj, results, notes):
    out = ['PyAV alone (bench/decoder.py, ours\' interpreter) decodes each chunk file of the store to numpy '
           '(`bgr24` colour, `gray` gray) with the decoder threads ours\' chunk readers use; its sequential '
           'rate is the faster of per-chunk (ours\' threading) and chunk-parallel (N chunks at once, 1 thread '
           'each). *c* = decode-only seconds per frame, *conv* = to_ndarray seconds per frame; *frames/read* '
           '= frames from the keyframe before each random read\'s packet up to it (decode order); '
           'limit = reads / (frames x c + reads x conv). Ideal-cache limit: the same with an unbounded frame '
           'cache and decoders that walk on (informative). Both sides read fresh copies of the same files, '
           'barcodes checked on both.', '',
           '| store (writer) | PyAV per-chunk (fps) | PyAV chunk-parallel (fps) | ours seq (fps) | seq ratio '
           '| c (ms) | conv (ms) | frames/read | limit (/s) | ideal-cache limit (/s) | ours random (/s) '
           '| random / limit |',
           '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
    configs = []
    for d in decoder_rows(results, [j['key'] for j in gj]):
        cells = [side_cell(d['pyav'], 'seq_fps_chunk', notes)[0], side_cell(d['pyav'], 'seq_fps_parallel', notes)[0]]
        useq, uval = side_cell(d['ours'], 'seq_read_fps', notes)
        base = d['pm'].get('seq_read_fps')
        cells += [useq, fmt_ratio(ratio(base, uval, True))]
        cells += [side_cell(d['pyav'], 'decode_s_per_frame', notes, 1e3)[0],
                  side_cell(d['pyav'], 'convert_s_per_frame', notes, 1e3)[0],
                  fmt_num(d['per_read']), fmt_num(d['limit']), fmt_num(d['ideal'])]
        urnd, rval = side_cell(d['ours'], 'random_read_per_s', notes)
        cells += [urnd, fmt_ratio(ratio(d['limit'], rval, True))]
        out.append('| `%s` %s (%s) | %s |' % (d['format'], SHAPE_LABEL.get(d['shape'], d['shape']),
                                              'original' if d['writer'] == 'orig' else 'ours', ' | '.join(cells)))
        if d['config']:
            configs.append('- `%s` %s (%s): %s' % (d['format'], d['shape'], d['writer'], d['config']))
    if configs:
        out += ['', 'Decoder threads used by PyAV alone (as ours\' readers reported them):', ''] + configs
    return out


def scaling_med(results, key, side, metric='fps'):
    return median_metrics(results.get(key, {}).get(side, [])).get(metric)


def scaling_table(results, notes, sframes, workers):
    out = ['Ours only (the original has neither). A %s-frame 1280x1024 gray `h264/mkv` store written by ours, '
           'cached in bench/.data/scaling/; per frame the pixel mean and the barcode (bench/scaling.py). '
           'Each measurement a fresh process; cluster start and worker imports are not timed, an iterator\'s '
           'set-up is.' % '{:,}'.format(sframes), '',
           '| measurement | fps | seconds | ratio (target 1.7x) |', '|---|---:|---:|---:|']
    label = {('scaling:dask', '1 worker'): '`store.to_dask()` on LocalCluster, 1 worker x 1 thread',
             ('scaling:dask', '2 workers'): '`store.to_dask()` on LocalCluster, %d workers x 1 thread' % workers,
             ('scaling:iter', 'sequential'): '`get_next_image()` over the store (sequential reader)',
             ('scaling:iter', 'iter_chunks'): '`store.iter_chunks(workers=%d)`' % workers,
             ('scaling:cores', 'sequential, 1 core'): '`get_next_image()` on 1 core (CPU affinity)',
             ('scaling:cores', 'iter_chunks, 2 cores'): '`store.iter_chunks(workers=%d)` on every core' % workers}
    for key, (a, b) in SCALING_SIDES.items():
        for s in (a, b):
            runs = results.get(key, {}).get(s, [])
            fps, _ = side_cell(runs, 'fps', notes)
            sec, _ = side_cell(runs, 'seconds', notes)
            r = ratio(scaling_med(results, key, a), scaling_med(results, key, b), True) if s == b else None
            out.append('| %s | %s | %s | %s |' % (label[(key, s)], fps, sec, fmt_ratio(r) if s == b else ''))
    return out


def scaling_digest_problems(results):
    digests = {}
    for key in SCALING_SIDES:
        for s, runs in results.get(key, {}).items():
            for r in runs:
                dg = r.get('params', {}).get('stat_digest')
                if dg and r.get('metrics', {}).get('frames_checked'):
                    digests.setdefault(dg, []).append('%s/%s' % (key, s))
    if len(digests) > 1:
        return ['- scaling: the per-frame means differ between methods: %s' % '; '.join(
            '%s: %s' % (d[:10], ', '.join(sorted(set(v)))) for d, v in digests.items())]
    return []


def targets15_lines(results, jobs, groups, repeats, corr):
    """issue #15's deliverables, PASS/FAIL from the medians of this run"""
    rows = []

    def med(key, side, metric):
        return median_metrics(results.get(key, {}).get(side, [])).get(metric)

    def row(num, label, o, u, target, base='original', note=''):
        r = ratio(o, u, True)
        res = 'n/a' if r is None else ('PASS' if r >= target else '**FAIL**')
        rows.append('| %s | %s | %s → %s | %s | >= %gx%s | %s |' % (
            num, label, fmt_num(o), fmt_num(u), fmt_ratio(r), target, note, res))

    def missing(num, what, group):
        rows.append('| %s | %s | not measured: add `%s` to --only | | | n/a |' % (num, what, group))

    keys = {g: [j['key'] for j in jobs if j['group'] == g] for g in GROUPS}
    lab = lambda sh: SHAPE_LABEL.get(sh, sh)  # noqa: E731
    # 1. sequential reads of stores the original wrote >= 1.5x
    for g in ('origvideo', 'origdir'):
        if g not in groups:
            missing(1, 'sequential reads of %s stores the original wrote' % ('video' if g == 'origvideo' else
                                                                              'directory'), g)
        for key in keys[g]:
            _, f, sh = key.split(':')
            row(1, 'sequential read of a store the original wrote, `%s` %s (fps)' % (f, lab(sh)),
                med(key, 'original', 'seq_read_fps'), med(key, 'ours', 'seq_read_fps'), 1.5)
    # 2. against the decoder
    if 'decoder' not in groups:
        missing(2, 'sequential / random reads against PyAV alone', 'decoder')
    drows = decoder_rows(results, keys['decoder'])
    for d in drows:
        w = 'original' if d['writer'] == 'orig' else 'ours'
        row(2, 'sequential vs PyAV alone, `%s` %s written by %s (fps)' % (d['format'], lab(d['shape']), w),
            d['pm'].get('seq_read_fps'), d['um'].get('seq_read_fps'), 0.9, base=PYAV)
    for d in drows:
        w = 'original' if d['writer'] == 'orig' else 'ours'
        row(2, 'random reads vs their limit, `%s` %s written by %s (/s)' % (d['format'], lab(d['shape']), w),
            d['limit'], d['um'].get('random_read_per_s'), 0.8, base='limit')
    # 3. scaling
    if 'scaling' not in groups:
        missing(3, 'to_dask() 2 workers vs 1; iter_chunks vs sequential', 'scaling')
    else:
        row(3, '`to_dask()` per-frame statistic, LocalCluster 2 vs 1 single-threaded worker (fps)',
            scaling_med(results, 'scaling:dask', '1 worker'), scaling_med(results, 'scaling:dask', '2 workers'), 1.7)
        row(3, '`iter_chunks(workers=2)` vs the sequential reader (fps)',
            scaling_med(results, 'scaling:iter', 'sequential'), scaling_med(results, 'scaling:iter', 'iter_chunks'), 1.7,
            note=' (the sequential reader itself decodes on both cores)')
        row(3, '`iter_chunks(workers=2)` on 2 cores vs the sequential reader on 1 core (fps)',
            scaling_med(results, 'scaling:cores', 'sequential, 1 core'),
            scaling_med(results, 'scaling:cores', 'iter_chunks, 2 cores'), 1.7)
    # 4. ppm, pgm, colour bmp reads >= 1.0x
    slow = [('ppm', 'gray'), ('ppm', 'color'), ('pgm', 'gray'), ('pgm', 'color'), ('bmp', 'color')]
    if 'origdir' not in groups and 'dir' not in groups:
        missing(4, 'ppm, pgm, colour bmp reads', 'origdir')
    for g, prefix, src in (('origdir', 'origdir:', 'the original wrote'), ('dir', '', 'each side wrote')):
        for f, sh in slow:
            key = '%s%s:%s' % (prefix, f, sh)
            if key not in keys[g]:
                continue
            for metric, what in (('seq_read_fps', 'sequential read (fps)'), ('random_read_per_s', 'random read (/s)')):
                row(4, '`%s` %s, store %s: %s' % (f, lab(sh), src, what), med(key, 'original', metric),
                    med(key, 'ours', metric), 1.0)
    # 5. H.264 writes >= 5x in the median of 5 interleaved runs
    h264 = [k for k in keys['video'] if k.rsplit(':', 1)[0] in ('avc1/mp4', 'h264/mkv')]
    if not h264:
        missing(5, 'H.264 writes (`--only video --formats avc1/mp4,h264/mkv --phases write -k 5`)', 'video')
    for key in h264:
        f, sh = key.rsplit(':', 1)
        n = min(len([r for r in results.get(key, {}).get(s, []) if 'write_fps' in r.get('metrics', {})])
                for s in SIDES)
        row(5, 'H.264 write, `%s` %s (fps)' % (f, lab(sh)), med(key, 'original', 'write_fps'),
            med(key, 'ours', 'write_fps'), 5, note=', median of %d run(s)%s' % (n, '' if n >= 5 else
                                                                             ' (target: 5; use -k 5)'))
    # correctness
    wrong = len(corr)
    checked = sum(int(r.get('metrics', {}).get('frames_checked', 0) or 0)
                  for v in results.values() for runs in v.values() for r in runs)
    rows.append('| all | wrong frames / lookups in this run (any group, any side) | %s (%s frames checked) | | 0 | %s |' % (
        'none' if not wrong else '%d problem line(s), see Correctness' % wrong, '{:,}'.format(checked),
        ('PASS' if checked else 'n/a') if not wrong else '**FAIL**'))
    head = ['Each row: the base (original, PyAV alone, the random-read limit, 1 worker or the sequential '
            'reader) → ours, medians of this run; PASS if the ratio reaches the target. Deliverable 6 (all '
            'of it in bench/, interleaved, medians) is this report; the README\'s dated table is the '
            'maintainers\'.', '',
            '| # | target | base → ours | ratio | target | result |', '|---|---|---:|---:|---|---|']
    return head + rows


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
    p.add_argument('--phases', help='dir and video groups: phases of each store task, comma list of '
                   'write,seq,random,clustered (default all), e.g. --phases write for writes alone')
    p.add_argument('--scaling-frames', type=int, help='frames of the scaling store (default 3000; quick 300)')
    p.add_argument('--scaling-workers', type=int, default=2, help='scaling: workers of the parallel side (default 2)')
    p.add_argument('--fresh-data', action='store_true', help='scaling: rewrite the cached store in bench/.data')
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
    sframes = args.scaling_frames or (300 if q else 3000)
    if args.phases:
        bad = set(args.phases.split(',')) - {'write', 'seq', 'random', 'clustered'}
        if bad:
            p.error('unknown phases %s' % sorted(bad))
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

    # ---- task list. A job: {'group', 'key', 'sides': [(side, interpreter side, steps)]}, steps =
    # [(script, task, extra args, timeout)]; each side's steps run back to back in fresh subprocesses
    jobs = []

    def job(group, key, steps_for, sides=SIDES, py=None):
        jobs.append({'group': group, 'key': key,
                     'sides': [(s, (py or {}).get(s, s), steps_for(s)) for s in sides]})

    def same(steps):
        return lambda s: steps

    common = ['--time-cap', str(time_cap)]
    phase_args = ['--phases', args.phases] if args.phases else []
    if 'dir' in groups:
        for f in dir_formats:
            for sh in shapes:
                job('dir', '%s:%s' % (f, sh), same([(WORKLOAD, '%s:%s' % (f, sh), ['--frames', str(frames), '--reads',
                                                   str(reads)] + common + phase_args, args.timeout)]))
    if 'video' in groups:
        for f in video_formats:
            for sh in shapes:
                job('video', '%s:%s' % (f, sh), same([(WORKLOAD, '%s:%s' % (f, sh), ['--frames', str(vframes),
                                                       '--reads', str(vreads)] + common + phase_args, args.timeout)]))

    written = {}  # (side, fmt, shape) -> folder, or None if that side failed to write it

    def written_by(side, f, sh, n):
        """the store side writes once per run (workload.py --keep): the folder, or None"""
        k = (side, f, sh)
        if k not in written:
            root = ORIG_WRITTEN_DIR if side == 'original' else OURS_WRITTEN_DIR
            dest = os.path.join(root, '%s_%s' % (f.replace('/', '_'), sh))
            t = time.perf_counter()
            if usable[side]:
                r = {'errors': {'import': usable[side]}}
            else:
                r = run_workload(pythons[side], '%s:%s' % (f, sh), ['--frames', str(n), '--keep', dest], args.timeout)
            log('[%s-written] %s %s: %s (%.1f s)' % ('orig' if side == 'original' else side, f, sh,
                                                   r.get('errors') or 'written', time.perf_counter() - t))
            written[k] = None if r.get('errors') else dest
            write_errors[k] = r.get('errors')
        return written[k]

    write_errors = {}
    want_formats = set(args.formats.split(',')) if args.formats else None
    if 'origvideo' in groups:
        for f in VIDEO_FORMATS:  # what the original can write
            if want_formats and f not in want_formats:
                continue
            for sh in shapes:
                src = written_by('original', f, sh, vframes) or os.path.join(ORIG_WRITTEN_DIR, 'missing')
                job('origvideo', 'orig:%s:%s' % (f, sh),
                    same([(WORKLOAD, '%s:%s' % (f, sh), ['--frames', str(vframes), '--reads', str(vreads), '--source',
                                                         src] + common, args.timeout)]))
    if 'origdir' in groups:
        for f in DIR_FORMATS:  # what the original can write
            if want_formats and f not in want_formats:
                continue
            for sh in shapes:
                src = written_by('original', f, sh, frames) or os.path.join(ORIG_WRITTEN_DIR, 'missing')
                job('origdir', 'origdir:%s:%s' % (f, sh),
                    same([(WORKLOAD, '%s:%s' % (f, sh), ['--frames', str(frames), '--reads', str(reads), '--source',
                                                         src, '--phases', 'seq,random'] + common, args.timeout)]))
    if 'decoder' in groups:
        for writer, fmts in (('original', [f for f in VIDEO_FORMATS if not want_formats or f in want_formats]),
                             ('ours', video_formats)):
            for f in fmts:
                for sh in shapes:
                    src = written_by(writer, f, sh, vframes) or os.path.join(OURS_WRITTEN_DIR, 'missing')
                    reads_args = ['--frames', str(vframes), '--reads', str(vreads), '--source', src]
                    steps = {PYAV: [(DECODER, '%s:%s' % (f, sh), reads_args, args.timeout)],
                             'ours': [(WORKLOAD, '%s:%s' % (f, sh), reads_args + ['--phases', 'seq,random'] + common,
                                       args.timeout)]}
                    job('decoder', 'dec:%s:%s:%s' % ('orig' if writer == 'original' else 'ours', f, sh),
                        lambda s, st=steps: st[s], sides=(PYAV, 'ours'), py={PYAV: 'ours'})
    if 'scaling' in groups:
        sargs = ['--frames', str(sframes)]
        t = time.perf_counter()
        if usable['ours']:
            r = {'errors': {'import': usable['ours']}}
        else:
            r = run_workload(pythons['ours'], 'gen', sargs + (['--force'] if args.fresh_data else []), 3600, SCALING)
        log('[scaling] %d-frame h264/mkv store: %s (%.1f s)' % (
            sframes, 'reused' if r.get('params', {}).get('reused') else (r.get('errors') or 'written'),
            time.perf_counter() - t))
        w = str(args.scaling_workers)
        spy = {s: 'ours' for v in SCALING_SIDES.values() for s in v}
        job('scaling', 'scaling:dask', lambda s: [(SCALING, 'dask', sargs + ['--workers', '1' if s == '1 worker' else w],
                                                   args.index_timeout)], sides=SCALING_SIDES['scaling:dask'], py=spy)
        job('scaling', 'scaling:iter', lambda s: [(SCALING, 'seq' if s == 'sequential' else 'iter',
                                                   sargs + ['--workers', w], args.index_timeout)],
            sides=SCALING_SIDES['scaling:iter'], py=spy)
        job('scaling', 'scaling:cores', lambda s: [(SCALING, 'seq', sargs + ['--workers', w, '--cores', '1'],
                                                    args.index_timeout)] if s == 'sequential, 1 core' else
            [(SCALING, 'iter', sargs + ['--workers', w], args.index_timeout)],
            sides=SCALING_SIDES['scaling:cores'], py=spy)
    if 'index' in groups:
        gen_py = pythons['ours'] if os.path.exists(pythons['ours']) else pythons['original']
        for n in scales:
            t = time.perf_counter()
            r = run_workload(gen_py, 'gen-index:%d' % n, [], 1800)
            log('[gen-index] %d frames: %s (%.1f s)' % (
                n, 'reused' if r.get('params', {}).get('reused') else (r.get('errors') or 'made'),
                time.perf_counter() - t))
            # first and warm of one side run back to back: one job, two steps
            steps = []
            for phase in ('first', 'warm'):
                extra = ['--time-cap', str(time_cap), '--lookups', str(args.lookups if phase == 'warm' else 0)]
                steps.append((WORKLOAD, 'index:%d:%s' % (n, phase), extra, args.index_timeout))
            job('index', 'index:%d' % n, same(steps))

    results = {}     # task_key -> side -> [runs]
    dead = set()     # (task_key, side) that failed fatally: don't repeat
    total = repeats * sum(len(j['sides']) for j in jobs)
    done = 0
    for rep in range(repeats):
        for ji, j in enumerate(jobs):
            sides = j['sides'] if (rep + ji) % 2 == 0 else j['sides'][::-1]
            for s, pyside, steps in sides:
                done += 1
                for script, task, extra, timeout in steps:
                    # an index job's steps are two tasks: results under index:N:first / index:N:warm
                    key = task if j['group'] == 'index' else j['key']
                    runs = results.setdefault(key, {}).setdefault(s, [])
                    if usable[pyside]:
                        if not runs:
                            runs.append({'errors': {'import': 'side unusable: ' + usable[pyside]}, 'metrics': {}})
                        continue
                    if (key, s) in dead:
                        continue
                    r = run_workload(pythons[pyside], task, extra, timeout, script)
                    r['repeat'] = rep
                    runs.append(r)
                    if fatal_errors(r):
                        dead.add((key, s))
                    log('[%d/%d] rep %d %-10s %-30s %6.1f s %s' % (
                        done, total, rep + 1, s, j['key'] if j['group'] != 'index' else task, r.get('wall_s', 0),
                        'ok' if not r.get('errors') else 'ERR ' + json.dumps(r['errors'])[:160]))

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
                  elapsed, frames, vframes, reads, vreads, time_cap, ','.join('%g' % n for n in scales)) +
              (' Groups: %s%s.' % (','.join(groups), (', phases ' + args.phases) if args.phases else '')) +
              (' Scaling store: %d frames.' % sframes if 'scaling' in groups else ''))

    order_keys = []
    for j in jobs:
        if j['group'] == 'index':
            order_keys += [st[1] for st in j['sides'][0][2]]
        else:
            order_keys.append(j['key'])
    for group, title in (('dir', 'Directory formats'), ('video', 'Video formats'),
                         ('origvideo', 'Video stores written by the original (both sides read the same files)'),
                         ('origdir', 'Directory stores written by the original (both sides read the same files)'),
                         ('decoder', 'Against the decoder: PyAV alone vs ours, on the same chunk files'),
                         ('scaling', 'Whole-store processing on several cores (ours only)'),
                         ('index', 'Index scale')):
        gj = [j for j in jobs if j['group'] == group]
        if not gj:
            continue
        notes = Footnotes()
        md.append('')
        md.append('## %s' % title)
        md.append('')
        if group == 'decoder':
            md.extend(decoder_table(gj, results, notes))
        elif group == 'scaling':
            md.extend(scaling_table(results, notes, sframes, args.scaling_workers))
        elif group == 'index':
            md.append('Synthetic DirectoryImgStore (npy, chunksize 10000) of index files only, in bench/.data/. '
                      '"first" = first open with no cache file left by a previous open; "warm" = the next open '
                      '(a fresh process each). Lookups go through the store\'s `_index` (frame files do not '
                      'exist): see the lookup API in the JSON.')
            md.append('')
            spec = []
            for j in gj:
                for st in j['sides'][0][2]:
                    _, n, phase = st[1].split(':')
                    mets = INDEX_METRICS if phase == 'warm' else INDEX_METRICS[:3]
                    spec.append((st[1], '%s frames, %s' % ('{:,}'.format(int(n)), phase), mets))
            md.extend(build_table(group, spec, results, notes))
        else:
            if group in ('origvideo', 'origdir'):
                md.append('The original wrote each store once in this run; each side reads a fresh copy.')
                md.append('')
            spec = []
            for j in gj:
                f, sh = j['key'].rsplit(':', 1)
                if group in ('origvideo', 'origdir'):
                    f = f.split(':', 1)[1]
                mets = READ_METRICS if group in ('origvideo', 'origdir') else STORE_METRICS
                if args.phases and group in ('dir', 'video'):
                    mets = [m for m in mets
                            if METRIC_PHASE.get(m[0], 'seq_read').split('_')[0] in args.phases.split(',')]
                spec.append((j['key'], '`%s` %s' % (f, SHAPE_LABEL.get(sh, sh)), mets))
            md.extend(build_table(group, spec, results, notes))
        if notes.notes:
            md.append('')
            md.extend(notes.render())
    video_keys = [j['key'] for j in jobs if j['group'] == 'video']
    tl = target_lines(results, video_keys)
    if tl:
        md.append('')
        md.append('## Targets of issue #3 (video)')
        md.append('')
        md.extend(tl)
    corr = correctness_lines(results, order_keys)
    t15 = targets15_lines(results, jobs, groups, repeats, corr)
    md.append('')
    md.append('## Targets of issue #15')
    md.append('')
    md.extend(t15)
    md.append('')
    md.append('## Correctness')
    md.append('')
    md.append('Every read decodes the frame-number barcode and checks the returned frame number; index '
              'lookups are checked against the synthetic layout; the scaling methods must agree on every '
              'per-frame mean.')
    md.append('')
    md.extend(corr or ['- no wrong frames or lookups on any side.'])
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
                                  'time_cap': time_cap, 'lookups': args.lookups, 'groups': groups,
                                  'phases': args.phases, 'scaling_frames': sframes,
                                  'scaling_workers': args.scaling_workers},
                       'medians': {k: {s: median_metrics(runs) for s, runs in v.items()}
                                   for k, v in results.items()},
                       'runs': results}, f, indent=1, default=str)
        log('wrote %s.md and %s.json' % (base, base))
    return 0


if __name__ == '__main__':
    sys.exit(main())
