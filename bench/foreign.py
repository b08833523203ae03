#!/usr/bin/env python
"""Stores whose chunks other programs wrote: do we read the pixels the original reads?

    .venv/bin/python bench/foreign.py [--original-python bench/.envs/original/bin/python]
                                      [--frames 300] [--only NAME,...] [--out FILE.md]

The original writes three stores (`avc1/mp4` 640x480 BGR, `h264/mkv` 1280x1024 gray, `mjpeg/avi`
640x480 BGR; workload.py, frames carrying their number in a barcode). Each variant below re-encodes
every chunk file of one of them with PyAV as another program would (other pixel formats, B-frames,
GOPs, colour tags, codecs) and keeps the store's metadata and frame index. Then, each in a fresh
process: the original reads the store sequentially (OpenCV decodes in order: its sequential read is
the reference), ours reads it sequentially and at 120 shuffled frame numbers. Printed per variant:
frames of ours' sequential and random reads whose pixels differ from the original's (md5 of each
frame), the largest difference on the first 5 frames, and frames whose barcode or frame number is wrong in ours' reads (must be 0).
Not timed: run it beside other work.
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

# name: (source store, codec, pix_fmt, encoder options)
_709 = 'colormatrix=bt709:colorprim=bt709:transfer=bt709'
VARIANTS = {
    'x264 yuvj420p, B-pyramid, GOP 30': ('color', 'libx264', 'yuvj420p', {'bf': '3', 'b-pyramid': 'normal', 'g': '30'}),
    'x264 yuv444p, B-frames': ('color', 'libx264', 'yuv444p', {'bf': '2', 'g': '50'}),
    'x264 open GOP': ('color', 'libx264', 'yuv420p', {'bf': '3', 'g': '25', 'x264-params': 'open-gop=1'}),
    'x264 4 slices, one keyframe': ('color', 'libx264', 'yuv420p', {'bf': '0', 'g': '1000', 'slices': '4'}),
    'x264 full-range flag': ('color', 'libx264', 'yuv420p', {'bf': '2', 'g': '50', 'x264-params': 'fullrange=on'}),
    'x264 tagged BT.709': ('color', 'libx264', 'yuv420p', {'bf': '2', 'g': '50', 'x264-params': _709}),
    'x264 yuv444p tagged BT.709': ('color', 'libx264', 'yuv444p', {'bf': '2', 'g': '50', 'x264-params': _709}),
    'x264 10-bit': ('color', 'libx264', 'yuv420p10le', {'bf': '2', 'g': '50'}),
    'mpeg4 (mp4v), B-frames': ('color', 'mpeg4', 'yuv420p', {'bf': '2', 'g': '12', 'qscale': '3'}),
    'x265, B-frames': ('color', 'libx265', 'yuv420p', {'x265-params': 'bframes=4:keyint=40:log-level=none'}),
    'MJPEG yuvj422p': ('mjpeg', 'mjpeg', 'yuvj422p', {'qscale': '3'}),
    'MJPEG yuvj444p': ('mjpeg', 'mjpeg', 'yuvj444p', {'qscale': '3'}),
    'gray store: x264 gray': ('gray', 'libx264', 'gray', {'bf': '2', 'g': '50'}),
    'gray store: x264 yuvj420p, B-pyramid': ('gray', 'libx264', 'yuvj420p', {'bf': '3', 'b-pyramid': 'normal', 'g': '30'}),
    'gray store: MJPEG yuvj422p': ('gray', 'mjpeg', 'yuvj422p', {'qscale': '3'}),
    'gray store: x265': ('gray', 'libx265', 'yuv420p', {'x265-params': 'bframes=4:keyint=40:log-level=none'}),
    'gray store: x264 10-bit': ('gray', 'libx264', 'yuv420p10le', {'bf': '2', 'g': '50'}),
}
SOURCES = {'color': 'avc1/mp4:color', 'gray': 'h264/mkv:gray', 'mjpeg': 'mjpeg/avi:color'}


def dump(store, mode, first_dir):
    """Run by either side: per-frame md5 of a sequential (mode 'seq') or shuffled read; barcodes."""
    import numpy as np
    import imgstore
    sys.path.insert(0, HERE)
    import workload
    s = imgstore.new_for_filename(store)
    out, wrong = {}, 0
    if mode == 'seq':
        order = range(s.frame_count)
        reads = (s.get_next_image() for _ in order)
    else:
        fns = [int(f) for f in s.get_frame_metadata()['frame_number']]
        order = [fns[k] for k in np.random.default_rng(1).permutation(len(fns))[:120]]
        reads = (s.get_image(n) for n in order)
    for n, (img, md) in zip(order, reads):
        img = np.ascontiguousarray(img)
        out[int(md[0])] = hashlib.md5(img.tobytes()).hexdigest() + str(img.shape)
        wrong += int(md[0]) != n or workload.read_barcode(img) != n
        if mode == 'seq' and n < 5:
            np.save(os.path.join(first_dir, '%d.npy' % n), img)
    s.close()
    print(json.dumps({'md5': out, 'wrong': wrong}))


def reencode(src, dst, codec, pix_fmt, options):
    import av
    shutil.copytree(src, dst)
    for f in sorted(os.listdir(src)):
        path = os.path.join(src, f)
        if not f.endswith(('.mp4', '.mkv', '.avi')) or os.path.getsize(path) < 1000:
            continue  # an empty last chunk
        with av.open(path) as c:
            frames = [fr.to_ndarray(format='bgr24') for fr in c.decode(video=0)] if c.streams.video else []
        if not frames:
            continue
        os.remove(os.path.join(dst, f))
        with av.open(os.path.join(dst, f), 'w') as oc:
            st = oc.add_stream(codec, rate=25, options=dict(options))
            st.width, st.height, st.pix_fmt = frames[0].shape[1], frames[0].shape[0], pix_fmt
            for a in frames:
                for p in st.encode(av.VideoFrame.from_ndarray(a, format='bgr24')):
                    oc.mux(p)
            for p in st.encode():
                oc.mux(p)


def side(python, store, mode, tmp):
    first = tempfile.mkdtemp(dir=tmp)
    r = subprocess.run([python, os.path.abspath(__file__), '--dump', store, mode, first],
                       capture_output=True, text=True, cwd=tmp)
    if r.returncode:
        return None, first, (r.stderr.strip().splitlines() or ['failed'])[-1]
    return json.loads(r.stdout.strip().splitlines()[-1]), first, None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--original-python', default=os.path.join(HERE, '.envs', 'original', 'bin', 'python'))
    ap.add_argument('--frames', type=int, default=300)
    ap.add_argument('--only', default='', help='comma-separated variant names (substrings)')
    ap.add_argument('--out', default='', help='also write the table to this file')
    ap.add_argument('--dump', nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.dump:
        return dump(*args.dump)
    import numpy as np
    tmp = tempfile.mkdtemp(prefix='imgstore-foreign-')
    try:
        sources = {}
        for key, task in SOURCES.items():
            sources[key] = os.path.join(tmp, 'src-' + key)
            subprocess.run([args.original_python, os.path.join(HERE, 'workload.py'), task, '--frames',
                            str(args.frames), '--keep', sources[key]], check=True, capture_output=True)
        rows = ['| chunks re-encoded as | frames | differ from the original, ours sequential / random | '
                'largest difference (first 5) | wrong frames, ours sequential / random |', '|---|---:|---:|---:|---|']
        for name, (src, codec, pix_fmt, options) in VARIANTS.items():
            if args.only and not any(o.strip() in name for o in args.only.split(',')):
                continue
            store = os.path.join(tmp, 'v%d' % len(rows))
            reencode(sources[src], store, codec, pix_fmt, options)
            orig, ofirst, oerr = side(args.original_python, store, 'seq', tmp)
            seq, sfirst, serr = side(sys.executable, store, 'seq', tmp)
            rnd, _, rerr = side(sys.executable, store, '1', tmp)
            if serr or rerr:
                rows.append('| %s | | | | ours failed: %s |' % (name, serr or rerr))
                continue
            if orig is None:
                differ, biggest = 'n/a (original: %s)' % oerr, ''
            else:
                differ = '%d / %d' % tuple(sum(orig['md5'].get(k) != v for k, v in r['md5'].items())
                                           for r in (seq, rnd))
                diffs = [np.abs(np.load(os.path.join(ofirst, f)).astype(int) - np.load(os.path.join(sfirst, f))).max()
                         for f in sorted(os.listdir(sfirst)) if os.path.exists(os.path.join(ofirst, f))]
                biggest = '%d' % max(diffs) if diffs else ''
            rows.append('| %s | %d | %s | %s | %d / %d |' % (name, len(seq['md5']), differ, biggest,
                                                            seq['wrong'], rnd['wrong']))
            print(rows[-1], flush=True)
            shutil.rmtree(store)
        table = '\n'.join(rows)
        print('\n' + table)
        if args.out:
            import time
            with open(args.out, 'w') as f:
                f.write('# Stores whose chunks other programs wrote (%s)\n\n`%s`; the reference is the original\'s '
                        'sequential read (%s), each store %d frames.\n\n%s\n'
                        % (time.strftime('%Y-%m-%d %H:%M'), ' '.join(['python'] + sys.argv), args.original_python,
                           args.frames, table))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
