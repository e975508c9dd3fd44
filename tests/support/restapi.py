"""plone.restapi calls for tests: one request, failing loudly with the server's answer."""

import httpx

from .instance import ADMIN


def api(server, method, path, user=ADMIN, **kwargs):
    """``method`` ``path`` on ``server`` as ``user`` (Basic auth), JSON; asserts success."""
    response = httpx.request(method, server.url(path), auth=user, timeout=60,
                             headers={"Accept": "application/json"}, **kwargs)
    assert response.status_code < 400, f"{method} {path}: {response.status_code} {response.text[:300]}"
    return response


def add_users(server, users, password, site="Plone"):
    """Create ``users`` ({name: [global roles]}) through @users."""
    for name, roles in users.items():
        api(server, "POST", f"/{site}/@users", json={"username": name, "password": password,
                                                     "email": f"{name}@example.org", "roles": roles})
