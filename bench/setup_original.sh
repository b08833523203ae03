#!/usr/bin/env bash
# Creates bench/.envs/original: the ORIGINAL loopbio imgstore==0.4.0, for
# side-by-side benchmarks against ours (bench/run.py).
#
# It runs on Debian's OpenCV 4.6 (python3-opencv), because pip's OpenCV wheels
# cannot write H.264 on these machines. The venv is made with Debian's
# /usr/bin/python3 and --system-site-packages so that it sees cv2 and Debian's
# numpy (cv2 is built against that numpy: we pin numpy to it so pip never
# replaces it). Idempotent: re-running only fills in what is missing.
# Needs root (apt-get) the first time, on Debian bookworm.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ENV="${HERE}/.envs/original"
SYS_PY=/usr/bin/python3
IMGSTORE_VERSION="${IMGSTORE_VERSION:-0.4.0}"

log() { echo "[setup_original] $*"; }

need_apt=()
if ! "${SYS_PY}" -c 'import cv2' >/dev/null 2>&1; then
    need_apt+=(python3-opencv)
fi
if ! "${SYS_PY}" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    need_apt+=(python3-venv)
fi
if ((${#need_apt[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        log "need root to apt-get install ${need_apt[*]}"; exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    # refresh package lists if apt does not know the package yet
    if ! apt-cache policy python3-opencv 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        log "apt-get update"
        apt-get update -q
    fi
    log "apt-get install -y ${need_apt[*]}"
    if ! apt-get install -y -q "${need_apt[@]}"; then
        log "install failed: apt-get update, then retry"   # stale package lists
        apt-get update -q
        apt-get install -y -q "${need_apt[@]}"
    fi
fi

if [[ ! -x "${ENV}/bin/python" ]]; then
    log "creating venv ${ENV} (--system-site-packages, ${SYS_PY})"
    mkdir -p "$(dirname "${ENV}")"
    "${SYS_PY}" -m venv --system-site-packages "${ENV}"
fi
PY="${ENV}/bin/python"

# keep Debian's numpy (cv2's ABI depends on it): pip must treat it as fixed
NUMPY_VERSION="$("${PY}" -c 'import numpy; print(numpy.__version__)')"
CONSTRAINTS="$(mktemp)"
trap 'rm -f "${CONSTRAINTS}"' EXIT
echo "numpy==${NUMPY_VERSION}" > "${CONSTRAINTS}"

if ! "${PY}" - "${IMGSTORE_VERSION}" <<'EOF' >/dev/null 2>&1
import sys
from importlib.metadata import version
assert version('imgstore') == sys.argv[1]
import imgstore, cv2, pandas, yaml, tzlocal, dateutil  # noqa: F401
EOF
then
    log "pip install imgstore==${IMGSTORE_VERSION} (numpy pinned to Debian's ${NUMPY_VERSION})"
    # PIP_CONSTRAINT adds to (does not replace) any constraint file in pip's config
    "${PY}" -m pip install -q -c "${CONSTRAINTS}" \
        "imgstore==${IMGSTORE_VERSION}" numpy pandas pyyaml tzlocal python-dateutil \
        2> >(grep -v "^WARNING: Location 'file:" >&2)
fi

log "using:"
"${PY}" - <<'EOF'
import sys, importlib.metadata as md
import cv2, numpy, imgstore
print('  python      %s (%s)' % (sys.version.split()[0], sys.executable))
print('  imgstore    %s (%s)' % (md.version('imgstore'), imgstore.__file__))
print('  opencv      %s (%s)' % (cv2.__version__, cv2.__file__))
print('  numpy       %s (%s)' % (numpy.__version__, numpy.__file__))
for name in ('pandas', 'PyYAML', 'tzlocal', 'python-dateutil'):
    print('  %-11s %s' % (name, md.version(name)))
bi = cv2.getBuildInformation()
line = [l.strip() for l in bi.splitlines() if l.strip().startswith('FFMPEG:')]
print('  cv2 FFMPEG: %s' % (line[0].split(':', 1)[1].strip() if line else '?'))
print('  formats     %s' % ' '.join(sorted(imgstore.get_supported_formats())))
EOF
log "ok: ${PY}"
