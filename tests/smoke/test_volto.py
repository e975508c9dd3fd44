"""A Volto frontend pointed at the stack: a Volto site made in the stack's database from an
instance container (`create-volto` with SETUP_CONTENT: a front page of blocks), then its REST
API through the TLS front, the way Volto calls it: `++api++` on the site's public URL
(RAZZLE_API_PATH), and the virtual-hosting path that Volto's server-side proxy (seamless mode,
RAZZLE_INTERNAL_API_PATH) sends."""

import time

from .conftest import container
from .test_image import docker

SITE = "Volto"


def create_volto_site():
    started = time.monotonic()
    result = docker("exec", container("instance1"), "env", f"SITE={SITE}", "SETUP_CONTENT=true",
                    "/app/bin/docker-entrypoint.sh", "create-volto", check=False, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert f"site /{SITE} created" in result.stdout or f"site /{SITE} exists already" in result.stdout
    print(f"\ncreate-volto in instance1: {time.monotonic() - started:.1f} s")


def test_volto_site_through_the_front(client, base_url, admin):
    create_volto_site()
    deadline = time.monotonic() + 30
    while True:  # the other instance sees the new site once ZEO has told it
        response = client.get(f"/{SITE}/++api++", headers={"Accept": "application/json"})
        if response.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert response.status_code == 200, response.text[:500]
    site = response.json()
    assert site["@id"] == f"{base_url}/{SITE}" and site["@type"] == "Plone Site" and site["blocks"]
    navigation = client.get(f"/{SITE}/++api++/@navigation", headers={"Accept": "application/json"})
    assert navigation.status_code == 200 and navigation.json()["@id"].startswith(f"{base_url}/{SITE}")
    # Volto's proxy: the public origin in the path, the site at the root of it
    proxied = client.get(f"/VirtualHostBase/https/volto.example.test:443/{SITE}/++api++"
                         "/VirtualHostRoot/", headers={"Accept": "application/json"}, auth=admin)
    assert proxied.status_code == 200, proxied.text[:500]
    assert proxied.json()["@id"] == "https://volto.example.test"
