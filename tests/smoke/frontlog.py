"""The front's (HAProxy's) access log, read back by the attack tests: where each of an
attack's requests ended."""

import re
import subprocess

from .conftest import DOCKER, container

# httplog: "... frontend backend/server TR/Tw/Tc/Tr/Ta status ...": Tc >= 0 means the request got
# a connection to an instance, -1 that it never left the front (denied, reset while queued). The
# QUIC listener's frontend is logged without the "~" of TLS over TCP.
TIMERS = re.compile(r" https~? (\S+)/(\S+) (-?\d+)/(-?\d+)/(-?\d+)/(-?\d+)/\+?(-?\d+) (-?\d+) ")


def front_log_since(since):
    """The front's log lines (httplog) since the docker timestamp ``since``."""
    result = subprocess.run([DOCKER, "logs", "--since", since, container("front")],
                            capture_output=True, text=True, timeout=60)
    return (result.stdout + result.stderr).splitlines()


def outcomes(lines, mark):
    """(reached an instance, answered 429, ended in the front) of the requests whose log lines
    carry ``mark`` (the attack puts it in their query strings)."""
    reached = denied = front = 0
    for line in lines:
        match = TIMERS.search(line)
        if not match or mark not in line:
            continue
        if int(match.group(8)) == 429:
            denied += 1
        elif int(match.group(5)) >= 0:
            reached += 1
        else:
            front += 1
    return reached, denied, front
