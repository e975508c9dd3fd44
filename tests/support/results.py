"""Figures a test measured, kept in tests/results/ (not asserted as wall-clock bounds).

A test asserts against a baseline taken in the same run; what it measured on the way (p95s,
RSS growth, counts) is written here, one JSON file per test module, so a run can be compared
with another and `make bench` can publish them.
"""

import json
import os
import time

from .instance import ROOT

RESULTS = ROOT / "tests" / "results"


def record(module, test, **figures):
    """Merge ``figures`` under ``test`` in tests/results/<module>.json (with the load average)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{module}.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[test] = dict(figures, load_average=round(os.getloadavg()[0], 2),
                      recorded=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)
    return data[test]
