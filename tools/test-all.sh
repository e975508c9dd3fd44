#!/bin/sh
# `make test` after its prerequisites (venv, Debian packages, Docker): every test, with the phases
# that wait on different things overlapped.
#
#   background: images/build.sh, then the Kubernetes smoke test under podman (`make k8s-smoke`:
#               it spends most of its two minutes waiting for pods, so it fits beside pytest)
#   foreground: the lints and pytest (unit + integration, on both cores), then the smoke tests of
#               the images and the compose stack (`make smoke`, `make smoke-relstorage`), which
#               need the images: they wait for the build first
#
# Each phase runs whatever the others do (pytest only after the lints pass); the exit status is
# the first failure's. The background phases' output goes to build/images.log and
# build/k8s-smoke.log, printed at the end (whole when the phase failed).
set -u
MAKE=${MAKE:-make}
BIN=${BIN:-.venv/bin}
mkdir -p build test-artifacts
rm -f build/images.rc build/k8s-smoke.rc

stamp() { printf '%s %s\n' "$(date +%T)" "$*"; }

# Waits for a background phase's exit status file (the phases run in a subshell of their own, so
# `wait` cannot see them one by one).
await() {
    while [ ! -s "build/$1.rc" ]; do sleep 2; done
    cat "build/$1.rc"
}

# an interrupted run stops its background phases too (they ignore SIGINT, as background jobs of a
# non-interactive shell do)
trap 'trap - INT TERM; kill 0' INT TERM

(
    images/build.sh >build/images.log 2>&1
    built=$?
    echo "$built" >build/images.rc
    if [ "$built" = 0 ]; then
        $MAKE --no-print-directory k8s-smoke >build/k8s-smoke.log 2>&1
        echo $? >build/k8s-smoke.rc
    else
        echo "not run: images/build.sh failed" >build/k8s-smoke.log
        echo 1 >build/k8s-smoke.rc
    fi
) &
stamp "images/build.sh, then make k8s-smoke: in the background (logs: build/images.log, build/k8s-smoke.log)"

status=0
fail() { [ "$status" != 0 ] || status=$1; stamp "make test: $2 failed" >&2; }

$MAKE --no-print-directory lint || fail $? "make lint"
if [ "$status" = 0 ]; then
    # each test's time in test-artifacts/pytest.xml: where a run's minutes went (the module order's
    # hints in tests/conftest.py come from there)
    # shellcheck disable=SC2086  # PYTEST_PARALLEL is a list of options
    "$BIN/pytest" ${PYTEST_PARALLEL:-} --junitxml=test-artifacts/pytest.xml || fail $? "pytest"
fi

images=$(await images)
tail -n 8 build/images.log
if [ "$images" != 0 ]; then
    cat build/images.log
    fail "$images" "images/build.sh"
else
    $MAKE --no-print-directory smoke || fail $? "make smoke"
    $MAKE --no-print-directory smoke-relstorage || fail $? "make smoke-relstorage"
fi

k8s=$(await k8s-smoke)
stamp "make k8s-smoke (ran in the background) exited $k8s:"
if [ "$k8s" = 0 ]; then tail -n 12 build/k8s-smoke.log; else cat build/k8s-smoke.log; fail "$k8s" "make k8s-smoke"; fi
exit "$status"
