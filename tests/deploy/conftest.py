"""Rendered overlays, once per session (rendering takes well under a second each)."""

from __future__ import annotations

import pytest

from tests.deploy.tools import K8S_DIR, OVERLAYS, documents, render


@pytest.fixture(scope="session")
def rendered() -> dict[str, str]:
    """{overlay: the YAML `kubectl kustomize k8s/overlays/<overlay>` prints}."""
    return {overlay: render(K8S_DIR / "overlays" / overlay) for overlay in OVERLAYS}


@pytest.fixture(scope="session")
def manifests(rendered) -> dict[str, list[dict]]:
    """{overlay: its rendered objects}."""
    return {overlay: documents(text) for overlay, text in rendered.items()}
