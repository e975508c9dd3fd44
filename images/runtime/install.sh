#!/bin/sh
# Make /opt/venv with the locked requirements. Wheels come from the cache mount /wheels; only
# what is missing there is downloaded (pip's HTTP cache stays empty with PyPI's headers).
set -eu
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi
PIP=/opt/venv/bin/pip

# The lock resolves on the Python the image runs (Debian bookworm's 3.11.2): pip checks every
# package's Requires-Python.
OPTS="-q -c constraints.txt"
# shellcheck disable=SC2086
install() { "$PIP" install $OPTS --no-index --find-links /wheels "$@"; }
# shellcheck disable=SC2086
fetch() { "$PIP" download $OPTS -d /wheels "$@"; }
install_or_fetch() { install "$@" 2>/dev/null || { fetch "$@" && install "$@"; }; }

python3 requirements.py pyproject.toml > requirements.txt
python3 -m venv /opt/venv
install_or_fetch -r requirements.txt
# pip byte-compiles what it installs; this catches anything it left out.
/opt/venv/bin/python -m compileall -q -j 0 /opt/venv/lib >/dev/null || true
# group 0 may write (arbitrary uid with gid 0; ADDONS installed at start)
chmod -R g=u /opt/venv
