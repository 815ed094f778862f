"""The demo's own CLIP and try-on classifier: trained once on the synthetic demo catalog, cached, then exported.

Offline (no model hub) every weight the exporter can build is random, so a demo would search noise.
`snapfit up --demo-catalog N` therefore trains a small CLIP (`snapfit train-clip`) and the small classifier
(`snapfit train-classifier`) on the catalog it imports, with the fixed recipe below, and exports them instead of
the profile's CLIP and classifier (SAM and the try-on model stay the profile's). The weights live in
`runs/demo_models/<key>/`: the key hashes the catalog (CSV, labels and every photo), the recipe and the training
code, so the same catalog and code reuse them in seconds and anything else trains afresh.

These weights know only the synthetic catalog's 8 garments, 12 colours and 4 patterns. Real deployments export
marqo-fashionCLIP (`snapfit export`, the base and cpu profiles' default) or their fine-tune of it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from snapfit.demo_catalog import GARMENTS, TRYON_LABELS_NAME

CACHE_ROOT = Path("runs/demo_models")
CLIP_FILE = "clip.pt"
CLASSIFIER_FILE = "tryon_classifier.pt"
SEARCH_QUALITY_FILE = "search_quality.json"  # CatalogSearchQuality of the trained CLIP on the whole catalog
# What is trained (part of the cache key). CLIP: the first epochs pair each photo with its garment alone, and later
# ones 30 % of the photos (export.train_clip: focus_tags), since colour, learnt in an epoch, otherwise crowds out the
# garment's shape; 10 % of the products held out for the report. About 4-5 minutes on a 2-core CPU.
CLIP_RECIPE = {"clip_model": "tiny-p32", "epochs": 60, "batch_size": 32, "lr": None, "held_out_fraction": 0.1,
               "seed": 0, "focus_tags": (*GARMENTS, "non-product"), "focus_epochs": 10, "focus_share": 0.3,
               "eval_every": 10}
CLASSIFIER_RECIPE = {"variant": "tiny", "epochs": 4, "batch_size": 16, "lr": 3e-4, "val_fraction": 0.2, "seed": 0}
# the classifier trains on every non-product photo and this many product photos per non-product one (the first ones
# of the catalog): a demo catalog's 1,000 photos would take it minutes for nothing a few hundred do not teach
CLASSIFIER_USABLE_PER_UNUSABLE = 3
# the code whose change retrains (besides the recipe and the catalog)
_TRAINING_CODE = ("train_clip.py", "catalog_pairs.py", "clip_models.py", "train_classifier.py", "classifier_model.py",
                  "labelled_images.py", "demo_models.py")


@dataclass(frozen=True)
class DemoWeights:
    """A cache folder holding clip.pt and tryon_classifier.pt (each with its .json report)."""

    key: str
    folder: Path

    @property
    def clip(self) -> Path:
        return self.folder / CLIP_FILE

    @property
    def classifier(self) -> Path:
        return self.folder / CLASSIFIER_FILE

    def export_choices(self) -> dict:
        """Keyword arguments of export.runner.export_models that export these weights."""
        return {"clip_model": CLIP_RECIPE["clip_model"], "clip_pretrained": str(self.clip.resolve()),
                "classifier_variant": CLASSIFIER_RECIPE["variant"],
                "classifier_checkpoint": self.classifier.resolve(), "demo_weights": self.key}

    def reports(self) -> tuple[dict, dict]:
        """(CLIP's train-clip report, the classifier's train-classifier metrics), as written beside the weights."""
        return (json.loads(self.clip.with_suffix(".json").read_text()),
                json.loads(self.classifier.with_suffix(".json").read_text()))


def demo_weights_key(catalog_csv: Path) -> str:
    """A hash of the catalog's CSV, its try-on labels and every photo in its images/ folder, the recipes, the
    training code and the torch / open_clip versions."""
    import open_clip
    import torch

    catalog_csv = Path(catalog_csv)
    digest = hashlib.sha256()
    files = [catalog_csv, catalog_csv.parent / TRYON_LABELS_NAME,
             *sorted((catalog_csv.parent / "images").glob("*")),
             *(Path(__file__).parent / name for name in _TRAINING_CODE)]
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    recipe = {"clip": CLIP_RECIPE, "classifier": CLASSIFIER_RECIPE, "torch": torch.__version__,
              "open_clip": open_clip.__version__}
    digest.update(json.dumps(recipe, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def cached_demo_weights(catalog_csv: Path, cache_root: Path = CACHE_ROOT, key: str | None = None) -> DemoWeights | None:
    """The cached weights of this catalog, recipe and code (`key`: demo_weights_key(catalog_csv), if known), or
    None."""
    key = key or demo_weights_key(catalog_csv)
    weights = DemoWeights(key, Path(cache_root) / key)
    return weights if weights.clip.is_file() and weights.classifier.is_file() else None


def ensure_demo_weights(catalog_csv: Path, cache_root: Path = CACHE_ROOT, say: Callable[[str], None] = print,
                        progress: bool = True) -> DemoWeights:
    """The cached weights for the catalog at catalog_csv (generated by snapfit.demo_catalog, with its
    tryon_labels.csv beside it), training them first when the cache lacks them.

    Training writes into `<key>.partial/` and renames it when both models are done, so a stopped run leaves no
    half entry; a finished one removes the cache's other entries (one demo's weights are kept, ~20 MB)."""
    cache_root = Path(cache_root)
    key = demo_weights_key(catalog_csv)  # reads every photo: once per start
    cached = cached_demo_weights(catalog_csv, cache_root, key)
    if cached is not None:
        say(f"demo weights: reusing {cached.folder} (trained on this catalog with this code)")
        return cached
    from export.train_classifier import train as train_classifier
    from export.train_clip import train_clip

    partial = cache_root / f"{key}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    say(f"demo weights: training a small CLIP and the try-on classifier on {catalog_csv} (once; cached in "
        f"{cache_root / key})")
    clip = train_clip(catalog_csv, partial / CLIP_FILE, progress=progress, **CLIP_RECIPE)
    say(str(clip))
    labels = _classifier_labels(Path(catalog_csv).parent / TRYON_LABELS_NAME, partial / TRYON_LABELS_NAME)
    classifier = train_classifier(labels, partial / CLASSIFIER_FILE, progress=progress, **CLASSIFIER_RECIPE)
    say(str(classifier))
    quality = catalog_search_quality(partial / CLIP_FILE, catalog_csv)
    say(quality.line())
    (partial / SEARCH_QUALITY_FILE).write_text(json.dumps(asdict(quality), indent=2, ensure_ascii=False) + "\n")
    for stale in cache_root.iterdir():
        if stale != partial and stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
    partial.rename(cache_root / key)
    say(f"demo weights: cached in {cache_root / key} (the reports above name its folder while it was written)")
    return DemoWeights(key, cache_root / key)


def _classifier_labels(labels_csv: Path, subset_csv: Path) -> Path:
    """Writes to subset_csv every "unusable" row of labels_csv and the first CLASSIFIER_USABLE_PER_UNUSABLE
    "usable" rows per unusable one, their image paths made absolute; returns subset_csv."""
    import csv

    with labels_csv.open(encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file))
    usable_left = CLASSIFIER_USABLE_PER_UNUSABLE * sum(row["label"] == "unusable" for row in rows)
    subset_csv.parent.mkdir(parents=True, exist_ok=True)
    with subset_csv.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(("image", "label"))
        for row in rows:  # in the catalog's order
            if row["label"] == "usable":
                if not usable_left:
                    continue
                usable_left -= 1
            writer.writerow((str((labels_csv.parent / row["image"]).resolve()), row["label"]))
    return subset_csv


@dataclass
class CatalogSearchQuality:
    """How the trained CLIP searches the whole demo catalog (computed with torch, as FAISS's exact search would):
    recall@10 of every colour x garment query (snapfit.demo_catalog.colour_garment_queries) per language, the
    worst query, and for each product photo used as the query, how often the product itself comes first and how
    many of the next 5 are the same garment."""

    recall_at_10: dict[str, float]  # "en", "ko"
    worst_query: tuple[str, float]
    image_self_first: float
    image_same_garment_next_5: float

    def line(self) -> str:
        recalls = ", ".join(f"{language} {value:.3f}" for language, value in self.recall_at_10.items())
        return (f"colour x garment queries recall@10: {recalls} (worst {self.worst_query[0]!r} "
                f"{self.worst_query[1]:.2f}); image search: the product first {self.image_self_first:.3f}, same "
                f"garment among the next 5 {self.image_same_garment_next_5:.3f}")


def catalog_search_quality(clip_checkpoint: Path, catalog_csv: Path) -> CatalogSearchQuality:
    """Embeds every photo of the catalog and every colour x garment query with the CLIP at clip_checkpoint."""
    import csv

    import numpy as np
    import open_clip
    import torch
    from open_clip.transform import image_transform_v2
    from PIL import Image

    from export.clip_models import load_network
    from snapfit.demo_catalog import GARMENTS, capped_recall, colour_garment_queries

    network = load_network(CLIP_RECIPE["clip_model"], str(clip_checkpoint), 0, weights_required=True)
    model = network.model.eval()
    tokenizer = open_clip.get_tokenizer(network.tokenizer_name, context_length=network.context_length)
    plain = image_transform_v2(network.preprocess, is_train=False)
    with Path(catalog_csv).open(encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file))
    ids = [row["id"] for row in rows]
    tags = [row["tags"].split("|") for row in rows]
    features = []
    with torch.no_grad():
        for start in range(0, len(rows), 64):
            photos = []
            for row in rows[start:start + 64]:
                with Image.open(Path(catalog_csv).parent / row["image"]) as image:
                    photos.append(plain(image.convert("RGB")))
            features.append(torch.nn.functional.normalize(model.encode_image(torch.stack(photos)), dim=-1))
        gallery = torch.cat(features)
        queries = colour_garment_queries()
        texts = torch.nn.functional.normalize(model.encode_text(tokenizer([q.text for q in queries])), dim=-1)
    ranked = (texts @ gallery.T).topk(10, dim=1).indices.tolist()
    recalls = [capped_recall([ids[i] for i in top], {ids[i] for i, t in enumerate(tags) if q.matches(t)})
               for q, top in zip(queries, ranked)]
    by_language = {language: float(np.mean([r for q, r in zip(queries, recalls) if q.language == language]))
                   for language in ("en", "ko")}
    worst = min(zip(recalls, (q.text for q in queries)))
    products = [i for i, t in enumerate(tags) if "non-product" not in t]
    garment = [next((t for t in row_tags if t in GARMENTS), None) for row_tags in tags]
    neighbours = (gallery[products] @ gallery.T).topk(6, dim=1).indices.tolist()
    return CatalogSearchQuality(
        recall_at_10=by_language, worst_query=(worst[1], worst[0]),
        image_self_first=float(np.mean([top[0] == i for i, top in zip(products, neighbours)])),
        image_same_garment_next_5=float(np.mean([np.mean([garment[j] == garment[i] for j in top[1:]])
                                                 for i, top in zip(products, neighbours)])))
