"""The rendered overlays, once per module, for the manifest tests."""

import pytest

from tests.kube.manifests import KUSTOMIZE_ROOT, OVERLAYS, render


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request):
    return request.param, render(KUSTOMIZE_ROOT / "overlays" / request.param)


@pytest.fixture(scope="module")
def dev():
    return render(KUSTOMIZE_ROOT / "overlays" / "dev")


@pytest.fixture(scope="module")
def production():
    return render(KUSTOMIZE_ROOT / "overlays" / "production")


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """The podman stack of `make k8s-smoke`, once for test_podman.py and the modules after it."""
    from tests.kube.kubestack import podman_stack
    yield from podman_stack(tmp_path_factory)
