"""Stores written by this implementation must open with the ORIGINAL imgstore 0.4.0.

Needs a Python interpreter that has the original imgstore (and OpenCV) installed:
``$IMGSTORE_ORIGINAL_PYTHON``, else ``bench/.envs/original/bin/python`` if it exists; otherwise the
tests are skipped. E.g.::

    python3 -m venv /tmp/origenv
    /tmp/origenv/bin/pip install imgstore==0.4.0 opencv-python-headless==4.6.0.66 'numpy<2' pandas pyyaml
    IMGSTORE_ORIGINAL_PYTHON=/tmp/origenv/bin/python python -m pytest tests/test_original_reads_ours.py

We write the stores here (with whatever ``imgstore`` this interpreter imports), then one script run
in the original's interpreter opens every store and reports what it read; the tests compare.
"""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from imgstore.stores import new_for_format

from conftest import (COLOR_VARIANT_FORMATS, DIRECTORY_FORMATS, LOSSY_DIRECTORY_FORMATS, REPO_ROOT,
                      base_format, expected_image, make_frame)


def _original_python():
    explicit = os.environ.get('IMGSTORE_ORIGINAL_PYTHON', '').strip()
    if explicit:
        return explicit, True
    default = REPO_ROOT / 'bench' / '.envs' / 'original' / 'bin' / 'python'
    if default.exists():
        return str(default), False
    return None, False


def _clean_env():
    env = dict(os.environ)
    # make sure the original interpreter imports ITS imgstore, not ours
    for k in ('PYTHONPATH', 'PYTHONHOME', 'PYTHONSTARTUP', 'PYTHONSAFEPATH'):
        env.pop(k, None)
    return env


def _probe(python, workdir):
    code = ('import json, imgstore, cv2; '
            'print(json.dumps({"version": imgstore.__version__, "file": imgstore.__file__}))')
    p = subprocess.run([python, '-c', code], cwd=workdir, env=_clean_env(), capture_output=True, text=True,
                       timeout=120)
    if p.returncode != 0:
        return None, p.stderr[-2000:]
    info = json.loads(p.stdout.strip().splitlines()[-1])
    src = os.path.realpath(str(REPO_ROOT / 'src'))
    if os.path.realpath(info['file']).startswith(src):
        return None, 'interpreter imports our imgstore (%s), not the original' % info['file']
    return info, ''


# (name, format, shape, dtype, frame numbers, chunksize)
FNS = [500, 501, 502, 510, 511, 7, 8, 9, 9, 600]


def _cases():
    cases = []
    for fmt in DIRECTORY_FORMATS + COLOR_VARIANT_FORMATS:
        for shape in ((48, 64), (48, 64, 3)):
            name = '%s_%s' % (fmt.replace('+', '_'), 'color' if len(shape) == 3 else 'gray')
            cases.append((name, fmt, shape, 'uint8', FNS, 4))
    cases.append(('npy_gray_uint16', 'npy', (48, 64), 'uint16', FNS, 4))
    cases.append(('npy_color_uint16', 'npy', (48, 64, 3), 'uint16', FNS, 4))
    # frame count a multiple of the chunk size, odd size, single frame, no frames
    cases.append(('png_gray_exact8', 'png', (48, 64), 'uint8', FNS[:8], 4))
    cases.append(('npy_odd_color', 'npy', (49, 65, 3), 'uint8', FNS, 3))
    cases.append(('png_one_frame', 'png', (48, 64, 3), 'uint8', [42], 4))
    cases.append(('npy_no_frames', 'npy', (48, 64), 'uint8', [], 4))
    # video stores in the formats the original can read (through OpenCV's FFmpeg)
    for fmt in VIDEO_FORMATS_ORIGINAL_READS:
        for shape in ((48, 64), (48, 64, 3)):
            name = '%s_%s' % (fmt.replace('/', '_'), 'color' if len(shape) == 3 else 'gray')
            cases.append((name, fmt, shape, 'uint8', FNS, 4))
    cases.append(('h264_mkv_odd_color', 'h264/mkv', (49, 65, 3), 'uint8', FNS, 4))
    return cases


VIDEO_FORMATS_ORIGINAL_READS = ('mjpeg/avi', 'avc1/mp4', 'h264/mkv')


def _is_video(fmt):
    return '/' in fmt


CASES = _cases()

READER_SCRIPT = textwrap.dedent(r'''
    import json, sys, traceback
    import numpy as np
    import imgstore
    from imgstore.index import ImgStoreIndex

    def decode(img):
        img = np.asarray(img)
        thr = 127 if img.dtype == np.uint8 else 32767
        v = 0
        for k in range(16):
            bit = float(np.mean(img[0:32, 4 * k + 1:4 * k + 3])) > thr
            v |= int(bit) << (15 - k)
        return v

    def check(spec):
        out = {}
        s = imgstore.new_for_filename(spec['path'])
        out['class'] = type(s).__name__
        out['frame_count'] = int(s.frame_count)
        out['chunks'] = [int(c) for c in s.chunks]
        md = s.get_frame_metadata()
        out['frame_number'] = [int(v) for v in md['frame_number']]
        out['frame_time'] = [float(v) for v in md['frame_time']]
        out['image_shape'] = [int(v) for v in s.image_shape]
        out['user_metadata'] = s.user_metadata
        out['uuid'] = s.uuid
        out['created_utc'] = s.created[0].isoformat()
        out['lossless'] = bool(s.lossless)
        seq = []
        while True:
            try:
                img, (fn, ft) = s.get_next_image()
            except EOFError:
                break
            entry = {'fn': int(fn), 'ft': float(ft), 'code': decode(img), 'shape': list(img.shape),
                     'dtype': str(img.dtype)}
            if spec['exact']:
                want = np.load(spec['expected'][len(seq)])
                entry['exact'] = bool(img.shape == want.shape and img.dtype == want.dtype and
                                      np.array_equal(img, want))
            seq.append(entry)
        out['sequential'] = seq
        out['by_number'] = []
        for fn in spec['lookup_numbers']:
            img, (f, _) = s.get_image(fn)
            out['by_number'].append([int(f), decode(img)])
        out['by_index'] = []
        for i in range(out['frame_count']):
            img, (f, _) = s.get_image(None, frame_index=i)
            out['by_index'].append([int(f), decode(img)])
        out['extract_only'] = [decode(imgstore.extract_only_frame(spec['path'], i))
                               for i in range(out['frame_count'])]
        df = s.get_extra_data()
        if df is None:
            out['extra'] = None
        else:
            out['extra'] = [{'frame_number': int(r['frame_number']), 'frame_index': int(r['frame_index']),
                             'frame_time': float(r['frame_time']), 'value': float(r['value'])}
                            for _, r in df.iterrows()]
        out['has_extra_data'] = bool(s.has_extra_data)
        s.close()
        if spec.get('sqlite'):
            idx = ImgStoreIndex.new_from_file(spec['sqlite'])
            allmd = idx.get_all_metadata()
            out['sqlite'] = {'chunks': [int(c) for c in idx.chunks],
                             'frame_number': [int(v) for v in allmd['frame_number']],
                             'frame_time': [float(v) for v in allmd['frame_time']],
                             'frame_count': int(idx.frame_count)}
        return out

    specs = json.load(open(sys.argv[1]))
    results = {}
    for name, spec in specs.items():
        try:
            results[name] = {'ok': True, 'result': check(spec)}
        except Exception:
            results[name] = {'ok': False, 'error': traceback.format_exc()}
    json.dump(results, open(sys.argv[2], 'w'))
''')


@pytest.fixture(scope='module')
def original_results(tmp_path_factory):
    python, explicit = _original_python()
    if python is None:
        pytest.skip('no interpreter with the original imgstore (set IMGSTORE_ORIGINAL_PYTHON)')
    root = tmp_path_factory.mktemp('orig_reads_ours')
    info, err = _probe(python, str(root))
    if info is None:
        if explicit:
            pytest.fail('IMGSTORE_ORIGINAL_PYTHON=%s cannot import the original imgstore: %s' % (python, err))
        pytest.skip('%s cannot import the original imgstore: %s' % (python, err))

    specs, written = {}, {}
    for name, fmt, shape, dtype, fns, chunksize in CASES:
        path = root / name
        s = new_for_format(fmt, basedir=str(path), imgshape=shape, imgdtype=dtype, chunksize=chunksize,
                           metadata={'genotype': 'CS', 'store': name})
        times = [1700000000.0 + i / 25. for i in range(len(fns))]
        extra = []
        expected = []
        for i, (fn, ft) in enumerate(zip(fns, times)):
            s.add_image(make_frame(fn, shape, dtype), fn, ft)
            if i % 3 == 1 or i == len(fns) - 1:
                s.add_extra_data(value=i * 0.5)
                extra.append({'frame_number': fn, 'frame_index': i, 'frame_time': ft, 'value': i * 0.5})
            exp_path = root / '_expected' / name / ('%d.npy' % i)
            exp_path.parent.mkdir(parents=True, exist_ok=True)
            np.save(str(exp_path), expected_image(fmt, fn, shape, dtype))
            expected.append(str(exp_path))
        save_index = name in ('npy_gray', 'png_gray_exact8')
        s.close(save_index=save_index)
        uniq = []
        for fn in fns:
            if fn not in uniq:
                uniq.append(fn)
        specs[name] = {'path': str(path), 'exact': not (fmt in LOSSY_DIRECTORY_FORMATS or _is_video(fmt)),
                       'expected': expected,
                       'lookup_numbers': list(reversed(uniq)),
                       'sqlite': str(path / '.index.sqlite') if save_index else None}
        written[name] = {'fmt': fmt, 'shape': list(shape), 'dtype': dtype, 'fns': list(fns), 'times': times,
                         'extra': extra, 'uuid': s.uuid, 'created_utc': s.created[0].isoformat(),
                         'chunksize': chunksize, 'user_metadata': {'genotype': 'CS', 'store': name}}

    spec_path = root / '_specs.json'
    out_path = root / '_results.json'
    with open(str(spec_path), 'w') as f:
        json.dump(specs, f)
    script = root / '_read_with_original.py'
    script.write_text(READER_SCRIPT)
    p = subprocess.run([python, str(script), str(spec_path), str(out_path)], cwd=str(root), env=_clean_env(),
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, 'reader script failed:\n%s\n%s' % (p.stdout[-3000:], p.stderr[-3000:])
    with open(str(out_path)) as f:
        results = json.load(f)
    return written, results


@pytest.mark.parametrize('name', [c[0] for c in CASES])
def test_original_reads_our_store(original_results, name):
    written, results = original_results
    w = written[name]
    res = results[name]
    assert res['ok'], 'the original failed to read our %s store:\n%s' % (name, res.get('error'))
    r = res['result']
    fns, times = w['fns'], w['times']

    video = _is_video(w['fmt'])
    assert r['class'] == ('VideoImgStore' if video else 'DirectoryImgStore')
    assert r['frame_count'] == len(fns)
    assert r['frame_number'] == fns
    assert r['frame_time'] == times
    n_chunks = (len(fns) + w['chunksize'] - 1) // w['chunksize']
    assert r['chunks'] == list(range(n_chunks))
    shape = list(w['shape'])
    if video:  # video stores hold even sizes, as the original wrote them
        shape[0] &= -2
        shape[1] &= -2
    assert r['image_shape'] == shape
    assert r['user_metadata'] == w['user_metadata']
    assert r['uuid'] == w['uuid']
    assert r['created_utc'] == w['created_utc']
    assert r['lossless'] == (w['fmt'] not in LOSSY_DIRECTORY_FORMATS and not video)

    seq = r['sequential']
    assert [(e['fn'], e['ft']) for e in seq] == list(zip(fns, times))
    assert [e['code'] for e in seq] == fns
    for e in seq:
        assert e['shape'] == shape
        assert e['dtype'] == w['dtype']
        if w['fmt'] not in LOSSY_DIRECTORY_FORMATS and not video:
            assert e['exact'], 'frame %d: pixels differ' % e['fn']

    for fn, code in r['by_number']:
        assert code == fn
    assert sorted(f for f, _ in r['by_number']) == sorted(set(fns))
    assert r['by_index'] == [[fn, fn] for fn in fns]
    assert r['extract_only'] == fns

    if w['extra']:
        assert r['has_extra_data']
        assert r['extra'] == w['extra']
    else:
        assert not r['has_extra_data']
        assert not r['extra']

    if 'sqlite' in r:
        assert r['sqlite']['frame_number'] == fns
        assert r['sqlite']['frame_time'] == times
        assert r['sqlite']['frame_count'] == len(fns)
        assert r['sqlite']['chunks'] == list(range(n_chunks))
