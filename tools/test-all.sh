#!/bin/sh
# `make test` after its prerequisites (venv, Debian packages, Docker): every test, with the phases
# that wait on different things overlapped.
#
#   background: images/build.sh, then the Kubernetes smoke test under podman (`make k8s-smoke`:
#               it spends most of its three minutes waiting for pods, so it fits beside pytest)
#               and beside it the Volto image (`images/build.sh volto`: npm ci and razzle's
#               build, computing where k8s-smoke waits);
#               the lints (`make lint`, single-threaded tools) and the Volto add-on's tests
#               (`make volto-addon-test`: npm ci, jest, eslint) beside pytest
#   foreground: pytest (unit + integration, PYTEST_PARALLEL workers), then the smoke tests of the
#               images and the compose stack (`make smoke`), which need the images: they wait
#               for the build first; the RelStorage stack's (`make smoke-relstorage`, its own
#               compose project and port) runs beside the image tests in the background; then
#               the Volto stack's (`make smoke-volto`: UI=volto, Chromium), after the others so
#               that its site and Volto's start do not load the stack tests' measurements
#
# The machine's two cores are kept busy: beside one phase waiting on servers, timers and pods
# another computes. Each phase runs whatever the others do; the exit status is the first
# failure's. The background phases' output goes to build/<phase>.log, printed at the end (whole
# when the phase failed).
set -u
MAKE=${MAKE:-make}
BIN=${BIN:-.venv/bin}
mkdir -p build test-artifacts
rm -f build/images.rc build/volto-image.rc build/k8s-smoke.rc build/lint.rc build/volto-addon.rc build/smoke-relstorage.rc build/phases.txt \
    build/cpu.txt test-artifacts/timeline.tsv
started=$(date +%s)

# The CPUs' busy and idle time every 5 s (build/cpu.txt), and when each pytest worker ran each
# module (TEST_TIMELINE): the end shows how busy each phase kept the machine
# (tools/where_time_went.py), i.e. what overlapping phases could still win.
# Also the CPU nanoseconds of all Docker containers and all podman pods (their cgroup v1 cpuacct
# totals; 0 where there is none), so that each phase's CPU splits into theirs and the rest.
cgroup_ns() { cat "/sys/fs/cgroup/cpuacct/$1/cpuacct.usage" 2>/dev/null || echo 0; }
(
    while :; do
        read -r _ user nice system idle iowait irq softirq steal _ </proc/stat
        echo "$(($(date +%s) - started)) $((user + nice + system + irq + softirq + steal))" \
            "$((idle + iowait)) $(cgroup_ns docker) $(cgroup_ns libpod_parent)"
        sleep 5
    done
) >build/cpu.txt &
sampler=$!
TIMELINE=test-artifacts/timeline.tsv

stamp() { printf '%s %s\n' "$(date +%T)" "$*"; }

# Runs a phase ("$@") and notes in build/phases.txt when it ran and how it ended (printed at the
# end: where a run's minutes went, e.g. in CI's log)
timed() {
    name=$1
    shift
    begin=$(date +%s)
    "$@"
    rc=$?
    end=$(date +%s)
    printf '%-18s %5d s   from %5d s to %5d s   exit %s\n' "$name" $((end - begin)) \
        $((begin - started)) $((end - started)) "$rc" >>build/phases.txt
    return "$rc"
}

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
    timed images/build.sh images/build.sh >build/images.log 2>&1
    built=$?
    echo "$built" >build/images.rc
    if [ "$built" = 0 ]; then
        (timed volto-image images/build.sh volto >build/volto-image.log 2>&1; echo $? >build/volto-image.rc) &
        timed k8s-smoke "$MAKE" --no-print-directory k8s-smoke >build/k8s-smoke.log 2>&1
        echo $? >build/k8s-smoke.rc
        wait
    else
        echo "not run: images/build.sh failed" | tee build/k8s-smoke.log >build/volto-image.log
        echo 1 >build/k8s-smoke.rc
        echo 1 >build/volto-image.rc
    fi
) &
stamp "images/build.sh, then make k8s-smoke and images/build.sh volto: in the background (logs: build/images.log, build/k8s-smoke.log, build/volto-image.log)"

status=0
fail() { [ "$status" != 0 ] || status=$1; stamp "make test: $2 failed" >&2; }

# Runs a phase in the background: its output to build/NAME.log, its exit status to build/NAME.rc
# (read by `await NAME`, then `report NAME`).
background() {
    name=$1
    shift
    (timed "$name" "$@" >"build/$name.log" 2>&1; echo $? >"build/$name.rc") &
}

# The end of a background phase's log, or all of it when it failed.
report() {
    rc=$(await "$1")
    stamp "$1 (ran in the background) exited $rc:"
    if [ "$rc" = 0 ]; then tail -n "$2" "build/$1.log"; else cat "build/$1.log"; fail "$rc" "$1"; fi
}

background lint "$MAKE" --no-print-directory lint
background volto-addon "$MAKE" --no-print-directory volto-addon-test
# each test's time in test-artifacts/pytest.xml: where a run's minutes went (the module order's
# hints in tests/conftest.py come from there)
# shellcheck disable=SC2086  # PYTEST_PARALLEL is a list of options
timed pytest env TEST_TIMELINE="$TIMELINE" "$BIN/pytest" ${PYTEST_PARALLEL:-} --junitxml=test-artifacts/pytest.xml || fail $? "pytest"
report lint 4
report volto-addon 6

images=$(await images)
tail -n 8 build/images.log
if [ "$images" != 0 ]; then
    cat build/images.log
    fail "$images" "images/build.sh"
else
    # `-o images`: built above, not again by each target
    background smoke-relstorage "$MAKE" --no-print-directory -o images smoke-relstorage
    timed smoke "$MAKE" --no-print-directory -o images smoke || fail $? "make smoke"
    report smoke-relstorage 3
fi

volto_image=$(await volto-image)
tail -n 3 build/volto-image.log
if [ "$images" != 0 ] || [ "$volto_image" != 0 ]; then
    cat build/volto-image.log
    fail 1 "images/build.sh volto (make smoke-volto not run)"
else
    timed smoke-volto "$MAKE" --no-print-directory -o images -o images-volto smoke-volto || fail $? "make smoke-volto"
fi

report k8s-smoke 12
kill "$sampler" 2>/dev/null
stamp "make test: the phases (seconds since its start; the venv, Debian packages and Docker came before):"
cat build/phases.txt
"$BIN/python" tools/where_time_went.py build/phases.txt build/cpu.txt "$TIMELINE"
stamp "make test: $(( $(date +%s) - started )) s in all, exit $status"
exit "$status"
