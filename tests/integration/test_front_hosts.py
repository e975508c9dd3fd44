"""The HAProxy front (config/haproxy.cfg, as the front image runs it) with a real txzserver
behind it, on loopback: only the configured host names (SERVER_NAMES) are answered, any other
Host gets 421 with a reason and never reaches Zope (its IPubStart events,
``tests.support.published``); every answer carries Strict-Transport-Security with the
configured max-age; a Plone page reached through an allowed name links to that name. The TLS
certificate is the development CA's (compose/dev-certs.sh). Needs Debian's haproxy.
"""

import os
import re
import ssl
import subprocess

import httpx
import pytest

from tests.robustness import ROWS
from tests.support.instance import ROOT, SITE_ID, copy_instance_data, http_server, new_instance
from tests.support.published import SITE_ZCML, published
from tests.support import haproxy
from tests.support.server import ServerProcess, wait_for

FIGURES = ROWS["front_hosts"].figures
NAMES = FIGURES["names"]


def render(config, pem, port, monitor, backend, health):
    """config/haproxy.cfg for loopback: the certificate, the ports and the one instance (its
    HTTP and health ports)."""
    text = config.replace("/etc/haproxy/certs/front.pem", str(pem))
    text = text.replace("bind :8443 ", f"bind 127.0.0.1:{port} ")
    text = text.replace("bind 127.0.0.1:8404", f"bind 127.0.0.1:{monitor}")
    text = text.replace("check port 8081 ", f"check port {health} ")
    text = re.sub(r"instance[12]:8080", f"127.0.0.1:{backend}", text)
    return text.replace(" resolvers docker", "")  # Docker's DNS: not here


@pytest.fixture(scope="module")
def backend(servers):
    directory = servers.tmp.mktemp("front-backend")
    conf = new_instance(directory, http_server(0), "server-threads 2\ntrusted-proxy 127.0.0.1\n"
                        "<health-server>\n  address 127.0.0.1:0\n</health-server>")
    copy_instance_data(servers.template["directory"], directory)
    (directory / "etc" / "site.zcml").write_text(SITE_ZCML)
    server = ServerProcess(conf, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    servers.running.append(server)
    return server.start()


@pytest.fixture(scope="module")
def front(backend, tmp_path_factory):
    certs = tmp_path_factory.mktemp("front-certs")
    env = dict(os.environ, SERVER_NAMES=NAMES, HSTS_MAX_AGE=str(FIGURES["max_age"]))
    subprocess.run(["sh", str(ROOT / "compose" / "dev-certs.sh"), str(certs)], env=env, check=True)
    config = certs / "haproxy.cfg"

    def write_config(ports):
        config.write_text(render((ROOT / "config" / "haproxy.cfg").read_text(), certs / "front.pem",
                                 ports["https"], ports["monitor"], backend.port,
                                 backend.ports["health"]))
        return config

    process, ports = haproxy.start(write_config, env, certs / "haproxy.log")
    port = ports["https"]
    client = httpx.Client(verify=ssl.create_default_context(cafile=str(certs / "ca.crt")),
                          timeout=60)
    url = f"https://127.0.0.1:{port}"

    def up():
        assert process.poll() is None, (certs / "haproxy.log").read_text(errors="replace")
        try:
            return client.get(f"{url}/ok", headers={"Host": "localhost"}).status_code == 200
        except httpx.TransportError:
            return False  # not listening yet

    try:
        # up once the instance passes HAProxy's health check (its /healthz/ready)
        wait_for(up, 60, interval=0.5, what="the front and its instance")
        yield client, url, port
    finally:
        client.close()
        haproxy.stop(process)


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST:{port}", "127.0.0.1:{port}",
                                  "[::1]:{port}", "plone.test:{port}"])
def test_a_configured_name_is_answered_with_hsts(front, host):
    client, url, port = front
    response = client.get(f"{url}/ok", headers={"Host": host.format(port=port)})
    assert response.status_code == 200
    assert response.headers["strict-transport-security"] == f"max-age={FIGURES['max_age']}"


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "localhost.evil.example",
                                  "plone.test.", "evil.example#localhost", ""])
def test_any_other_host_gets_421_and_never_reaches_zope(front, backend, host):
    client, url, port = front
    marker = f"misdirected-{abs(hash(host))}"
    response = client.get(f"{url}/{SITE_ID}/{marker}", headers={"Host": host.format(port=port)})
    assert response.status_code == FIGURES["status"]
    assert response.text == ("misdirected request: this front answers only its configured host"
                             " names (SERVER_NAMES)")
    client.get(f"{url}/{SITE_ID}/after-{marker}", headers={"Host": "localhost"})  # logged after
    text = backend.event_log.read_text(errors="replace")
    assert published(text, f"/after-{marker}") == 1
    assert published(text, f"/{marker}") == 0


def test_plone_links_name_the_host_that_was_checked(front):
    client, url, port = front
    page = client.get(f"{url}/{SITE_ID}", headers={"Host": f"plone.test:{port}"})
    assert page.status_code == 200
    assert f'href="https://plone.test:{port}/{SITE_ID}' in page.text
    assert "evil.example" not in page.text
