"""The tests' headless Chromium: started with the flags every test needs (``start_chromium``), the
server certificate accepted by its key (``spki_hash``), and page loads that survive the host's
network changing under them: Docker and podman add and remove bridge interfaces while other tests
run (the compose and Kubernetes smoke tests beside pytest), and Chromium then aborts the request
in flight with ERR_NETWORK_CHANGED (or calls itself offline, ERR_INTERNET_DISCONNECTED) and shows
its error page without the request ever reaching the server. Any other error page is a failure."""

import base64
import hashlib
import re
import shutil
import time
from pathlib import Path

#: headless, nothing fetched from the network but what the test asks for
HEADLESS_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--disable-dev-shm-usage")

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


def spki_hash(cert_path):
    """base64(sha256(SubjectPublicKeyInfo)) of a server certificate: what Chromium's
    --ignore-certificate-errors-spki-list takes (the test CA is in no trust store)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def start_chromium(profile, *flags):
    """A selenium driver of Debian's Chromium with HEADLESS_FLAGS, the profile folder
    ``profile`` and ``flags``; a failure naming the packages when they are missing."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        raise AssertionError("chromium and chromium-driver are needed (make test installs them as root)")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in (*HEADLESS_FLAGS, f"--user-data-dir={profile}", *flags):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_page_load_timeout(60)
    return driver


def classic_login(driver, base, user, password, attempts=ATTEMPTS):
    """Log in with Classic UI's form at ``base``/login and wait for the ``__ac`` cookie. The
    form's POST can meet a changed network as a page load can (above): then Chromium shows its
    error page and the login is tried again; any other outcome without the cookie is a failure
    naming where the browser is."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    for attempt in range(1, attempts + 1):
        load(driver, f"{base}/login")
        driver.find_element(By.ID, "__ac_name").send_keys(user)
        driver.find_element(By.ID, "__ac_password").send_keys(password)
        driver.find_element(By.CSS_SELECTOR, "[name='buttons.login']").click()
        try:
            WebDriverWait(driver, 30).until(lambda d: d.get_cookie("__ac") is not None)
            return
        except TimeoutException:
            codes = error_codes(driver)
            if not codes or not set(codes) <= NETWORK_CHANGED or attempt == attempts:
                raise AssertionError(f"no login cookie for {user} after the form was sent: the "
                                     f"browser is at {driver.current_url!r} titled {driver.title!r}"
                                     f" (errors on the page: {codes})") from None
            print(f"login of {user}: Chromium reported {codes} (the host's network changed); again")
            time.sleep(1)
