"""What `make demo` promises, through the real stack: the demo's CLIP and try-on classifier, trained on the synthetic
catalog by export.demo_models and exported as `snapfit up --demo-catalog` exports them, served by a real
tritonserver behind `snapfit serve`, find what the catalog's ground truth says.

The demo's own recipe on its 1,000 products trains for about 4-5 minutes on a 2-core CPU, too long for `make test`
(30 minutes in all). So `make test` runs the whole path on a 360-product catalog with the recipe cut to a quarter of
its epochs and checks that search learnt far more than chance; SNAPFIT_DEMO_RECIPE_TEST=1 runs the demo's exact
catalog and recipe and checks the targets (recall@10 >= 0.9 in each language, the product itself first, the
classifier's precision), as docs/training.md reports them.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from export import demo_models
from export.demo_models import DemoWeights, ensure_demo_weights
from export.repository import DEMO_TRAINED_MODELS, recorded_export
from export.runner import export_for_serving
from snapfit import contract
from snapfit.demo_catalog import GARMENTS, capped_recall, colour_garment_queries, generate_catalog
from snapfit.triton.launcher import TritonLaunch, TritonPorts, TritonServer
from tests.conftest import free_port
from tests.integration.orchestrator_process import (
    ADMIN,
    REPO_ROOT,
    running_orchestrator,
    start_import,
    wait_for_import,
)


@dataclass(frozen=True)
class Scale:
    catalog_size: int
    clip_recipe: dict  # changes to export.demo_models.CLIP_RECIPE
    min_recall_at_10: float  # mean over each language's queries
    min_same_garment: float  # share of places 2-6 of an image search holding the query photo's garment
    min_precision: float  # the classifier's on its held-out split (~40 photos in QUICK: one error costs 0.04)


# make demo's catalog and recipe: the targets
DEMO = Scale(1000, {}, min_recall_at_10=0.9, min_same_garment=0.8, min_precision=0.95)
# make test's: the same path on about a third of the catalog (~3.4 products per colour and garment) with a quarter of
# the epochs. There random weights score ~0.03 and this run 0.49 (English) and 0.26 (Korean) on a 2-core Xeon: this
# bound says that training took hold
QUICK = Scale(360, {"epochs": 15, "focus_epochs": 5, "eval_every": 15}, min_recall_at_10=0.1, min_same_garment=0.2,
              min_precision=0.9)
SCALE = DEMO if os.environ.get("SNAPFIT_DEMO_RECIPE_TEST") == "1" else QUICK
# the models a search and an import call (no SAM, no try-on: quicker to load)
SERVED = (contract.CLIP_IMAGE, contract.CLIP_TEXT, contract.CLIP_TOKENIZER, contract.CLIP_TEXT_EMBED,
          contract.TRYON_CLASSIFIER)


class DemoStack:
    def __init__(self, api: httpx.Client, csv_path: Path, weights: DemoWeights):
        self.api = api
        self.csv_path = csv_path
        self.weights = weights
        import csv

        with csv_path.open(encoding="utf-8", newline="") as file:
            self.rows = {row["id"]: row for row in csv.DictReader(file)}

    def tags(self, product_id: str) -> list[str]:
        return self.rows[product_id]["tags"].split("|")


@pytest.fixture(scope="module")
def demo(tiny_repository, tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    csv_path = generate_catalog(root / "demo_catalog", SCALE.catalog_size)
    # the demo's recipe shares make demo's cache (same catalog, recipe and code: same weights, trained once)
    cache_root = REPO_ROOT / demo_models.CACHE_ROOT if SCALE is DEMO else root / "demo_models"
    with pytest.MonkeyPatch.context() as patch:
        for name, value in SCALE.clip_recipe.items():
            patch.setitem(demo_models.CLIP_RECIPE, name, value)
        weights = ensure_demo_weights(csv_path, cache_root=cache_root, say=print, progress=False)
    repository = root / "repository"
    for model in SERVED:
        shutil.copytree(tiny_repository / model, repository / model)
    exported = export_for_serving(repository, None, demo=weights)
    assert set(exported) == set(DEMO_TRAINED_MODELS)
    assert all(recorded_export(repository, model)["demo_weights"] == weights.key for model in DEMO_TRAINED_MODELS)
    for folder in repository.iterdir():  # exporting copied every model's config in
        if folder.name not in SERVED:
            shutil.rmtree(folder)

    server = TritonServer(TritonLaunch(repository=repository,
                                       ports=TritonPorts(http=free_port(), grpc=free_port(), metrics=free_port())),
                          log_path=root / "tritonserver.log")
    server.start()
    try:
        server.wait_until_ready(timeout_s=300)
        with running_orchestrator(server.grpc_url, root / "runs", image_root=csv_path.parent) as api, \
                httpx.Client(base_url=api.base, headers=ADMIN, timeout=60) as client:
            job = wait_for_import(client, start_import(client, csv_path), timeout_s=600)
            assert (job["status"], job["inserted"], job["failed"]) == ("succeeded", SCALE.catalog_size, 0), job
            yield DemoStack(client, csv_path, weights)
    finally:
        server.stop()


def test_text_search_finds_every_colour_and_garment_in_english_and_korean(demo):
    """GET /v1/search?q=red dress (and 빨간색 원피스): recall@10 of the products of that colour and garment, over
    all 12 x 8 combinations in each language (at least 0.9 for the demo's recipe)."""
    recall: dict[str, list[tuple[float, str]]] = {"en": [], "ko": []}
    for query in colour_garment_queries():
        response = demo.api.get("/v1/search", params={"q": query.text, "k": 10})
        assert response.status_code == 200, response.text
        ranked = [hit["product"]["product_id"] for hit in response.json()["results"]]
        relevant = {pid for pid in demo.rows if query.matches(demo.tags(pid))}
        recall[query.language].append((capped_recall(ranked, relevant), query.text))
    means = {language: float(np.mean([value for value, _ in values])) for language, values in recall.items()}
    print("recall@10: " + ", ".join(f"{language} {mean:.3f}" for language, mean in means.items()))
    for language, mean in means.items():
        assert mean >= SCALE.min_recall_at_10, \
            f"{language}: recall@10 {mean:.3f}; worst {sorted(recall[language])[:5]}"


def test_a_catalog_photo_finds_its_product_first_and_the_same_garment_next(demo):
    """POST /v1/search/image with a product's own photo, one product of each garment in every colour."""
    first, same_garment = [], []
    products = [pid for pid in demo.rows if "non-product" not in demo.tags(pid)]
    for product_id in products[::5][:48]:
        photo = demo.csv_path.parent / demo.rows[product_id]["image"]
        response = demo.api.post("/v1/search/image", files={"file": (photo.name, photo.read_bytes())},
                                 data={"k": "6"})
        assert response.status_code == 200, response.text
        ranked = [hit["product"]["product_id"] for hit in response.json()["results"]]
        garment = next(tag for tag in demo.tags(product_id) if tag in GARMENTS)
        first.append(ranked[0] == product_id)
        same_garment.append(np.mean([garment in demo.tags(pid) for pid in ranked[1:]]))
    assert np.mean(first) >= 0.95, f"the product itself came first for {np.mean(first):.2f} of the photos"
    print(f"the product first {np.mean(first):.3f}, the same garment in places 2-6 {np.mean(same_garment):.3f}")
    assert np.mean(same_garment) >= SCALE.min_same_garment, \
        f"the same garment filled {np.mean(same_garment):.2f} of places 2-6"


def test_the_served_classifier_marks_the_non_product_photos_unusable(demo):
    """Held-out precision of the trained classifier (its report; at least 0.95 for the demo's recipe), and what
    the import stored: of the products a search for lookbook photos finds marked try-on ready, at least 95 % are
    product photos."""
    _, classifier = demo.weights.reports()
    assert classifier["held_out"]["precision"] >= SCALE.min_precision, classifier["held_out"]
    ready = demo.api.get("/v1/search", params={"q": "lookbook photo", "k": 50, "tryon_ready": "true"}).json()
    marked = [hit["product"]["product_id"] for hit in ready["results"]]
    non_products = [pid for pid in marked if "non-product" in demo.tags(pid)]
    assert len(non_products) <= 0.05 * len(marked), f"{non_products} of {len(marked)} marked try-on ready"
