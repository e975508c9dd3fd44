"""Print where a `make test` run's minutes went, from what tools/test-all.sh recorded: how busy
the CPUs were during each phase and how much of that was Docker's containers and podman's pods
(build/cpu.txt: seconds since the start, busy and idle jiffies of all cores, then the
containers' and the pods' CPU nanoseconds, sampled every few seconds) and, for pytest, when
each xdist worker ran its modules and the CPU they cost (the TEST_TIMELINE file written by
tests/conftest.py). Idle CPU during a phase is time a
reordering could win; a worker that ends long before the others is a module handed out too late.

    python tools/where_time_went.py build/phases.txt build/cpu.txt [TIMELINE]
"""

import os
import sys
from pathlib import Path


#: modules listed by their CPU seconds
TOP_MODULES = 15
#: /proc/stat's unit (USER_HZ)
JIFFIES_PER_SECOND = os.sysconf("SC_CLK_TCK")


def read_samples(path):
    """[(second, busy jiffies, idle jiffies, containers' ns, pods' ns)] in the order sampled
    (the last two 0 in a file without them)."""
    samples = []
    for line in Path(path).read_text().splitlines():
        fields = line.split()
        if len(fields) in (3, 5) and all(f.isdigit() for f in fields):
            samples.append(tuple(int(f) for f in fields) + (0, 0)[: 5 - len(fields)])
    return samples


def busy_share(samples, begin, end):
    """The CPUs' busy share between ``begin`` and ``end`` (seconds since the start), or None."""
    shares = cpu_shares(samples, begin, end)
    return shares and shares[0]


def cpu_shares(samples, begin, end):
    """(busy, containers', pods') shares of the CPUs' time between ``begin`` and ``end``, or
    None with fewer than two samples there."""
    inside = [s for s in samples if begin <= s[0] <= end]
    if len(inside) < 2:
        return None
    first, last = inside[0], inside[-1]
    busy, idle = last[1] - first[1], last[2] - first[2]
    if not busy + idle:
        return None
    capacity_ns = (busy + idle) * 1e9 / JIFFIES_PER_SECOND
    return (busy / (busy + idle), (last[3] - first[3]) / capacity_ns,
            (last[4] - first[4]) / capacity_ns)


def read_phases(path):
    """[(name, begin, end)] from build/phases.txt's lines."""
    phases = []
    for line in Path(path).read_text().splitlines():
        fields = line.split()
        if "from" in fields and "to" in fields:
            name = fields[0]
            begin = int(fields[fields.index("from") + 1])
            end = int(fields[fields.index("to") + 1])
            phases.append((name, begin, end))
    return phases


def read_timeline(path):
    """{worker: [(module, start, end, cpu)]} (epoch seconds, CPU seconds of the worker and the
    processes it started) from the TEST_TIMELINE file."""
    workers = {}
    for line in Path(path).read_text().splitlines():
        worker, module, start, end, *cpu = line.split("\t")
        workers.setdefault(worker, []).append(
            (module, float(start), float(end), float(cpu[0]) if cpu else 0.0))
    return workers


def report(phases, samples, timeline=None):
    lines = ["CPU busy during each phase (both cores; idle is time another phase could use), and"
             " the share of Docker's containers and podman's pods in it:"]
    for name, begin, end in phases:
        shares = cpu_shares(samples, begin, end)
        shown = "  n/a" if shares is None else (
            f"{shares[0]:4.0%}   containers {shares[1]:4.0%}   pods {shares[2]:4.0%}")
        lines.append(f"  {name:<18} {shown}   ({begin} s - {end} s)")
    if samples:
        overall = busy_share(samples, samples[0][0], samples[-1][0])
        if overall is not None:
            lines.append(f"  {'whole run':<18} {overall:4.0%}")
    if timeline:
        start = min(m[1] for modules in timeline.values() for m in modules)
        lines.append("pytest workers (seconds since pytest's first test; each worker's last modules):")
        for worker, modules in sorted(timeline.items()):
            modules.sort(key=lambda m: m[1])
            last = ", ".join(f"{m[0]} {m[2] - m[1]:.0f} s" for m in modules[-3:])
            lines.append(f"  {worker}: {len(modules)} modules, done at {modules[-1][2] - start:.0f} s"
                         f" (last: {last})")
        every = [m for modules in timeline.values() for m in modules]
        total = sum(m[3] for m in every)
        if total:
            top = sorted(every, key=lambda m: -m[3])[:TOP_MODULES]
            lines.append(f"pytest CPU: {total:.0f} s in modules; the {len(top)} costliest (CPU s,"
                         " wall s):")
            lines += [f"  {m[3]:6.0f} {m[2] - m[1]:6.0f}  {m[0]}" for m in top]
    return "\n".join(lines)


def main(argv):
    if len(argv) not in (2, 3):
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    timeline = read_timeline(argv[2]) if len(argv) == 3 and Path(argv[2]).exists() else None
    print(report(read_phases(argv[0]), read_samples(argv[1]), timeline))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
