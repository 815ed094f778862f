"""Rendered kustomizations, once per session (rendering takes well under a second each)."""

from __future__ import annotations

import pytest

from tests.deploy.tools import EXPORT_JOBS, KUSTOMIZATIONS, OVERLAYS, documents, render


@pytest.fixture(scope="session")
def rendered() -> dict[str, str]:
    """{kustomization: the YAML `kubectl kustomize` prints}, for the overlays and the export Jobs (KUSTOMIZATIONS)."""
    return {name: render(folder) for name, folder in KUSTOMIZATIONS.items()}


@pytest.fixture(scope="session")
def manifests(rendered) -> dict[str, list[dict]]:
    """{kustomization: its rendered objects}."""
    return {name: documents(text) for name, text in rendered.items()}


@pytest.fixture(scope="session")
def stacks(manifests) -> dict[str, list[dict]]:
    """{overlay: what runs once the overlay and its export Job are applied}: both, the objects they share once."""
    stacks = {}
    for overlay in OVERLAYS:
        objects = list(manifests[overlay])
        names = {(o["kind"], o["metadata"]["name"]) for o in objects}
        objects += [o for o in manifests[EXPORT_JOBS[overlay]] if (o["kind"], o["metadata"]["name"]) not in names]
        stacks[overlay] = objects
    return stacks
