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
# pip byte-compiles what it installs: once, at the default optimization level (no second pass)
install_or_fetch -r requirements.txt

# What the image never runs, removed here in the builder (a later layer could not shrink it):
SITE=$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
before=$(du -sm /opt/venv | cut -f1)
# - the test suites of the packages (with their bytecode). Kept: ZODB/tests (ZEO's zeoup and
#   timeout scripts import it) and twisted/test (twisted.test.proto_helpers and iosim, which
#   autobahn.twisted.testing imports).
find "$SITE" -depth -type d \( -name tests -o -name test \) \
     ! -path "$SITE/ZODB/tests" ! -path "$SITE/twisted/test" ! -path "*/tests/*" ! -path "*/test/*" \
     -exec rm -rf {} +
# - gettext sources next to their compiled catalogs: zope.i18n reads the .mo files (a .po
#   without a .mo stays, for zope_i18n_compile_mo_files)
find "$SITE" -name '*.po' -exec sh -c 'for po; do [ ! -e "${po%.po}.mo" ] || rm -f "$po"; done' sh {} +
# - JavaScript/CSS source maps (only a browser's developer tools ask for them). C sources stay:
#   some are read at import (autobahn.nvx hands its .c file to cffi).
find "$SITE" -name '*.map' -type f -delete
# - debug symbols of the extension modules themselves; the shared libraries that auditwheel
#   vendored (*.libs, patched with patchelf) are left alone
find "$SITE" -path '*.libs' -prune -o -type f -name '*.so' -exec strip --strip-unneeded {} +
# - bytecode of what the server never imports (the .py files stay; imported anyway, they are
#   compiled in memory): pip and setuptools (ADDONS at start only), Twisted's SSH, mail, IRC,
#   DNS and trial packages and its kept test helpers
for package in pip setuptools twisted/conch twisted/mail twisted/words twisted/names \
               twisted/pair twisted/positioning twisted/trial twisted/test; do
  find "$SITE/$package" -depth -type d -name __pycache__ -exec rm -rf {} +
done
echo "venv: ${before} MB -> $(du -sm /opt/venv | cut -f1) MB (tests, .po, .map, debug symbols, unused bytecode removed)"

# group 0 may write (arbitrary uid with gid 0; ADDONS installed at start)
chmod -R g=u /opt/venv
