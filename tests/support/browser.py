"""Page loads in the tests' headless Chromium that survive the host's network changing under
them: Docker and podman add and remove bridge interfaces while other tests run (the compose
and Kubernetes smoke tests beside pytest), and Chromium then aborts the request in flight with
ERR_NETWORK_CHANGED (or calls itself offline, ERR_INTERNET_DISCONNECTED) and shows its error
page without the request ever reaching the server. Any other error page is a failure."""

import re
import time

#: Chromium's errors for a network that changed under it, not for the server
NETWORK_CHANGED = frozenset({"ERR_NETWORK_CHANGED", "ERR_INTERNET_DISCONNECTED"})
ATTEMPTS = 5


def error_codes(driver):
    """The net::ERR_ codes Chromium's error page shows (none for a served page)."""
    return sorted(set(re.findall(r"\bERR_[A-Z0-9_]+\b", driver.page_source)))


def load(driver, url, attempts=ATTEMPTS):
    """``driver.get(url)``, again while Chromium reports only a changed network (up to
    ``attempts`` loads, a second apart); AssertionError naming any other error page."""
    for attempt in range(1, attempts + 1):
        driver.get(url)
        codes = error_codes(driver) if driver.title == _host_of(url) else []
        if not codes:
            return
        if not set(codes) <= NETWORK_CHANGED or attempt == attempts:
            raise AssertionError(f"Chromium could not load {url}: {codes} (load {attempt})")
        print(f"{url}: Chromium reported {codes} (the host's network changed); loading again")
        time.sleep(1)


def _host_of(url):
    """The host name Chromium titles its error page with."""
    return url.split("//", 1)[1].split("/", 1)[0].split(":", 1)[0]
