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
