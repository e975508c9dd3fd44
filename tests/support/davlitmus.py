"""Run litmus (the WebDAV conformance suite, Debian package ``litmus``) and read its results."""

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

SUITES = ("basic", "copymove", "props", "locks", "http")
SUMMARY = re.compile(r"<- summary for `(\w+)': of (\d+) tests run: (\d+) passed, (\d+) failed")
TEST = re.compile(r"(?:^|\r) ?\d+\. (\w+)[. ]", re.MULTILINE)
OUTCOME = re.compile(r"\b(pass|FAIL|SKIPPED)\b")
SUITE_START = re.compile(r"^-> running `(\w+)':", re.MULTILINE)


@dataclass
class SuiteResult:
    run: int
    passed: int
    failed: int
    failures: list = field(default_factory=list)

    def __str__(self):
        return f"{self.passed}/{self.run}"


def available():
    return shutil.which("litmus") is not None


def run_litmus(url, auth, workdir, suites=SUITES, timeout=300):
    """Run ``suites`` against the collection ``url`` (ending in "/"); return
    ({suite: SuiteResult}, output). litmus writes debug.log and child.log in ``workdir``."""
    # litmus runs diff(1) on a PUT/GET mismatch; its output garbles the report, so a
    # silent diff comes first on PATH.
    quiet = Path(workdir) / "quiet-bin"
    quiet.mkdir(exist_ok=True)
    (quiet / "diff").write_text("#!/bin/sh\nexit 1\n")
    (quiet / "diff").chmod(0o755)
    env = {"TESTS": " ".join(suites), "PATH": f"{quiet}:/usr/bin:/bin", "HOME": str(workdir)}
    result = subprocess.run(["litmus", "-k", url, *auth], cwd=workdir, capture_output=True,
                            text=True, timeout=timeout, env=env)
    return parse(result.stdout), result.stdout


def parse(output):
    """{suite: SuiteResult} from litmus output, with the names of the failed tests."""
    results = {}
    starts = [(m.start(), m.group(1)) for m in SUITE_START.finditer(output)]
    for index, (start, suite) in enumerate(starts):
        end = starts[index + 1][0] if index + 1 < len(starts) else len(output)
        part = output[start:end]
        summary = SUMMARY.search(part)
        if not summary:
            continue
        tests = list(TEST.finditer(part))
        failures = []
        for number, test in enumerate(tests):
            stop = tests[number + 1].start() if number + 1 < len(tests) else len(part)
            outcome = OUTCOME.search(part, test.end(), stop)
            if outcome and outcome.group(1) == "FAIL":
                failures.append(test.group(1))
        results[suite] = SuiteResult(int(summary.group(2)), int(summary.group(3)),
                                     int(summary.group(4)), failures)
    return results
