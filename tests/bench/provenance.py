"""What a benchmark result was measured on: the commit, the machine, the versions.

Every script of `make bench` calls ``require_clean()`` first and stores ``record()`` with its
results, so a number always names the commit it measured. A tree with uncommitted changes is
refused (exit status 2) unless BENCH_ALLOW_DIRTY=1; then the results carry the changed paths and
every rendering of them says so in bold.

    python -m tests.bench.provenance    # exit 2 (and say why) when the tree is not clean
"""

import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Paths that `make bench` itself writes: changes there do not make a run's code unknown.
WRITTEN_BY_BENCH = ("tests/bench/results/", "docs/performance.md")
PACKAGES = ("txzserver", "waitress", "Twisted", "h2", "autobahn", "Zope", "Products.CMFPlone",
            "plone.namedfile", "httpx")
ALLOW_DIRTY = "BENCH_ALLOW_DIRTY"


def _git(*argv):
    done = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else None


def changed_paths(porcelain):
    """Paths of ``git status --porcelain`` output, less those that `make bench` writes."""
    paths = []
    for line in porcelain.splitlines():
        if len(line) < 4:
            continue
        path = line[3:].split(" -> ")[-1].strip('"')
        if not any(path == w or path.startswith(w) for w in WRITTEN_BY_BENCH):
            paths.append(path)
    return paths


def git_state():
    """{"commit": full HEAD or None, "dirty": [changed paths]}."""
    head = _git("rev-parse", "HEAD")
    porcelain = _git("status", "--porcelain", "--untracked-files=normal")
    return {"commit": head.strip() if head else None,
            "dirty": changed_paths(porcelain) if porcelain is not None else ["(git status failed)"]}


def _meminfo_total():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def machine():
    return {"cores": len(os.sched_getaffinity(0)), "cpu": _cpu_model(), "ram_bytes": _meminfo_total(),
            "os": platform.platform(), "python": platform.python_version()}


def versions():
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def record():
    """The provenance dict stored in every results file."""
    return {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), **git_state(),
            "machine": machine(), "versions": versions(),
            "loadavg_1min": round(os.getloadavg()[0], 2)}


def allow_dirty():
    return os.environ.get(ALLOW_DIRTY, "") not in ("", "0")


def require_clean(stream=None):
    """Exit with status 2 when the tree has changes, unless BENCH_ALLOW_DIRTY is set."""
    stream = stream or sys.stderr
    state = git_state()
    if state["commit"] and not state["dirty"]:
        return state
    why = ("not a git checkout" if not state["commit"]
           else f"uncommitted changes in {len(state['dirty'])} path(s): " + ", ".join(state["dirty"][:10]))
    if allow_dirty():
        print(f"!!! BENCHMARK OF A DIRTY TREE ({why}): results will say so. !!!", file=stream, flush=True)
        return state
    print(f"make bench measures a commit: {why}.\nCommit first, or set {ALLOW_DIRTY}=1 to measure "
          "anyway (the results then say NOT A CLEAN COMMIT).", file=stream, flush=True)
    sys.exit(2)


if __name__ == "__main__":
    require_clean()
