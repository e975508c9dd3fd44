"""HAProxy's built-in Prometheus exporter on the front, in both of its configurations (compose's
config/haproxy.cfg and Kubernetes' components/front/haproxy.cfg) run by Debian's haproxy on
loopback: /metrics answers on the metrics port only, its counters move with the requests the
public port answered, any other path there is 404, and the public port never serves the
exporter. No instance is needed: the requests are answered by the front itself (421 for a host
it does not serve) or fail on an unreachable backend. Needs Debian's haproxy.
"""

import os
import re
import subprocess

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.instance import ROOT
from tests.support import haproxy

CONFIGS = {"compose": ROOT / "config" / "haproxy.cfg",
           "kubernetes": ROOT / "config" / "kubernetes" / "components" / "front" / "haproxy.cfg"}
NAMES = "localhost 127.0.0.1"


def render(text, pem, ports):
    """A front configuration for loopback: the certificate, free ports, an unreachable backend."""
    text = text.replace("/etc/haproxy/certs/front.pem", str(pem))
    text = text.replace("bind :8443 ", f"bind 127.0.0.1:{ports['https']} ")
    text = re.sub(r"bind (127\.0\.0\.1)?:8404\b", f"bind 127.0.0.1:{ports['monitor']}", text)
    text = re.sub(r"bind (127\.0\.0\.1)?:8405\b", f"bind 127.0.0.1:{ports['metrics']}", text)
    text = re.sub(r"instance[12]:8080", "127.0.0.1:9", text)  # compose's instances: nobody there
    return text.replace(" resolvers docker", "")


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def front(request, tmp_path_factory):
    directory = tmp_path_factory.mktemp(f"front-{request.param}")
    env = dict(os.environ, SERVER_NAMES=NAMES, HSTS_MAX_AGE="600", INSTANCE_SLOTS="3",
               POD_NAMESPACE="txzserver", CLUSTER_DOMAIN="invalid")
    subprocess.run(["sh", str(ROOT / "compose" / "dev-certs.sh"), str(directory)], env=env,
                   check=True, capture_output=True)
    config = directory / "haproxy.cfg"
    text = CONFIGS[request.param].read_text()
    assert "use-service prometheus-exporter" in text

    def write_config(ports):
        config.write_text(render(text, directory / "front.pem", ports))
        return config

    process, ports = haproxy.start(write_config, env, directory / "haproxy.log",
                                   names=("https", "monitor", "metrics"), listen="monitor")
    try:
        assert httpx.get(f"http://127.0.0.1:{ports['monitor']}/healthz", timeout=5).status_code == 200
        yield {"ports": ports, "name": request.param}
    finally:
        haproxy.stop(process)


def scrape(front):
    response = httpx.get(f"http://127.0.0.1:{front['ports']['metrics']}/metrics", timeout=30)
    assert response.status_code == 200
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def responses(samples, proxy, code):
    return samples[("haproxy_frontend_http_responses_total", (("code", code), ("proxy", proxy)))]


def test_the_exporter_counts_what_the_public_port_answered(front):
    before = scrape(front)
    assert before[("haproxy_process_nbthread", ())] >= 1
    with httpx.Client(verify=False, timeout=30) as client:
        for _ in range(3):  # a host the front does not serve: 421 from the front itself
            answer = client.get(f"https://127.0.0.1:{front['ports']['https']}/",
                                headers={"Host": "elsewhere.example"})
            assert answer.status_code == 421
    after = scrape(front)
    assert responses(after, "https", "4xx") - responses(before, "https", "4xx") == 3
    # the exporter's own frontend counts its scrapes, not the public requests
    assert responses(after, "metrics", "2xx") - responses(before, "metrics", "2xx") == 1


def test_only_metrics_on_the_metrics_port(front):
    answer = httpx.get(f"http://127.0.0.1:{front['ports']['metrics']}/stats", timeout=30)
    assert answer.status_code == 404 and answer.text == "only /metrics here"


def test_the_public_port_does_not_serve_the_exporter(front):
    answer = httpx.get(f"https://127.0.0.1:{front['ports']['https']}/metrics", verify=False,
                       timeout=60, headers={"Host": "localhost"})
    assert answer.status_code == 503  # to the instances, none of which is reachable here
    assert "haproxy_" not in answer.text
