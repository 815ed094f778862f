"""`snapfit train-classifier`: fine-tunes the try-on-readiness classifier on labelled product photos.

Every photo goes through `snapfit.preprocessing.classifier.load_for_classifier` (the serving client's letterbox),
and the model is `TryOnClassifier`, whose in-graph normalisation is what the ONNX export runs, so training and
serving see the same pixels. BatchNorm statistics are re-estimated on (up to 512) un-augmented training photos
after every epoch, so small datasets are scored with statistics that match the weights. Writes the best epoch
(by held-out F1) as a state dict of the EfficientNet (`<output>.pt`) plus `<output>.json` with the held-out
metrics, the variant and the class names.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from export.classifier_model import (
    CHECKPOINT_NAME,
    VARIANTS,
    TryOnClassifier,
    build_network,
    calibrate_batchnorm,
    load_weights,
    metadata_path,
)
from export.labelled_images import DatasetError, LabelledImage, find_labelled_images
from snapfit.preprocessing.classifier import CLASS_NAMES, CLASSIFIER_SIZE, load_for_classifier

log = logging.getLogger(__name__)

PRECISE_BN_IMAGES = 512  # training photos BatchNorm statistics are re-estimated on after each epoch
JITTER = 0.1  # brightness/contrast/saturation factors drawn from [0.9, 1.1]: lighting varies, garment colour must not


@dataclass
class HeldOutMetrics:
    """Binary metrics on the held-out split; "positive" is class 1 (usable for try-on)."""

    accuracy: float
    precision: float
    recall: float
    f1: float
    true_positives: int
    false_positives: int
    true_negatives: int
    false_negatives: int
    loss: float


@dataclass
class TrainReport:
    checkpoint: Path
    metadata: Path
    variant: str
    best_epoch: int
    epochs: int
    train_images: int
    val_images: int
    metrics: HeldOutMetrics
    skipped: list[str] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)  # per epoch: train_loss + held-out metrics

    def to_dict(self) -> dict:
        data = asdict(self)
        data["checkpoint"], data["metadata"] = str(self.checkpoint), str(self.metadata)
        return data

    def __str__(self) -> str:
        m = self.metrics
        lines = [
            f"best epoch {self.best_epoch}/{self.epochs} ({self.variant}), held out {self.val_images} of "
            f"{self.train_images + self.val_images} images:",
            f"  accuracy {m.accuracy:.3f}  precision {m.precision:.3f}  recall {m.recall:.3f}  F1 {m.f1:.3f}",
            f"  confusion: {m.true_positives} TP, {m.false_positives} FP, {m.true_negatives} TN, "
            f"{m.false_negatives} FN (positive = usable)",
            f"  checkpoint {self.checkpoint}, metrics {self.metadata}",
        ]
        if self.skipped:
            lines.append(f"  skipped {len(self.skipped)} rows/files, e.g. {self.skipped[0]}")
        return "\n".join(lines)

    def __rich__(self):
        from rich.text import Text  # plain text: file names and error messages may contain [brackets]

        return Text(str(self))


def train(
    data: Path,
    output: Path,
    variant: str = "efficientnet_v2_s",
    epochs: int = 5,
    batch_size: int = 16,
    lr: float = 3e-4,
    val_fraction: float = 0.2,
    seed: int = 0,
    init_checkpoint: Path | None = None,
    progress: bool = True,
    weight_decay: float = 0.05,
    device: str | None = None,
) -> TrainReport:
    """Fine-tunes `variant` on `data` and writes the best held-out checkpoint.

    data: a folder with usable/ and unusable/ subfolders, or a CSV with image,label columns.
    output: the checkpoint path (`.pt`/`.pth`; metrics go to the same name with `.json`), or a folder to write
    `tryon_classifier.pt` into. init_checkpoint: weights to start from (a previous run, or a torchvision
    ImageNet EfficientNetV2-S state dict, whose 1000-class head is replaced).
    Raises DatasetError for unusable data, ExportError for an incompatible init_checkpoint.
    """
    _check_arguments(variant, epochs, batch_size, val_fraction)
    checkpoint = Path(output) if Path(output).suffix in (".pt", ".pth") else Path(output) / CHECKPOINT_NAME
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    found = find_labelled_images(data)
    with tempfile.TemporaryDirectory(prefix="snapfit-train-") as scratch:
        images, labels, skipped = decode_images(found.items, Path(scratch) / "images.npy", progress)
        skipped = found.skipped + skipped
        if skipped:
            log.warning("skipped %d of %d rows/files in %s:\n  %s", len(skipped), len(found.items) + len(found.skipped),
                        data, "\n  ".join(skipped[:20]) + ("\n  ..." if len(skipped) > 20 else ""))
        _check_classes(labels, data)
        train_idx, val_idx = stratified_split(labels, val_fraction, seed)
        model = _initial_model(variant, init_checkpoint, seed).to(device)
        log.info("training %s on %d images, holding out %d (%s)", variant, len(train_idx), len(val_idx), device)
        best, history = _fit(model, images, labels, train_idx, val_idx, checkpoint, epochs, batch_size, lr,
                             weight_decay, seed, progress, device)
    report = TrainReport(checkpoint=checkpoint, metadata=metadata_path(checkpoint), variant=variant,
                         best_epoch=best[0], epochs=epochs, train_images=len(train_idx), val_images=len(val_idx),
                         metrics=best[1], skipped=skipped, history=history)
    _write_metadata(report, data, seed, init_checkpoint)
    return report


def _check_arguments(variant: str, epochs: int, batch_size: int, val_fraction: float) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"unknown classifier variant '{variant}' (choose one of {', '.join(VARIANTS)})")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be at least 1 (got {epochs} and {batch_size})")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1 (got {val_fraction})")


def decode_images(items: list[LabelledImage], store: Path, progress: bool = True
                  ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decodes and letterboxes every image once into a memory-mapped file (bounded RAM for large sets).

    Returns (images: Nx384x384x3 uint8, labels: N int64, skipped: one reason per undecodable file).
    """
    images = np.lib.format.open_memmap(store, mode="w+", dtype=np.uint8,
                                       shape=(max(len(items), 1), CLASSIFIER_SIZE, CLASSIFIER_SIZE, 3))
    labels, skipped = [], []
    for item in tqdm(items, desc="reading images", unit="img", disable=not progress):
        try:
            images[len(labels)] = load_for_classifier(item.path)
        except (OSError, ValueError, SyntaxError) as exc:  # PIL raises all three for broken files
            skipped.append(f"{item.path}: cannot decode ({type(exc).__name__}: {exc})")
            continue
        labels.append(item.label)
    return images[: len(labels)], np.asarray(labels, dtype=np.int64), skipped


def _check_classes(labels: np.ndarray, data: Path) -> None:
    counts = {name: int(np.sum(labels == label)) for label, name in enumerate(CLASS_NAMES)}
    if len(labels) == 0:
        raise DatasetError(f"no image in {data} could be decoded")
    if min(counts.values()) == 0:
        present = ", ".join(f"{n} {name}" for name, n in counts.items() if n)
        raise DatasetError(f"{data} has only one class ({present}); training needs both usable and unusable photos")
    if min(counts.values()) < 2:
        raise DatasetError(f"{data} needs at least 2 photos of each class to hold one out for validation "
                           f"(has {counts})")


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, held-out indices): each class keeps its share, with at least one image on each side."""
    rng = np.random.default_rng(seed)
    train_idx, val_idx = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        held_out = int(np.clip(round(len(members) * val_fraction), 1, len(members) - 1))
        val_idx.extend(members[:held_out])
        train_idx.extend(members[held_out:])
    return np.sort(np.asarray(train_idx)), np.sort(np.asarray(val_idx))


def _initial_model(variant: str, init_checkpoint: Path | None, seed: int) -> TryOnClassifier:
    torch.manual_seed(seed)
    network = build_network(variant)
    if init_checkpoint is not None:
        load_weights(network, variant, init_checkpoint, allow_new_head=True)
    elif variant != "tiny":
        log.warning("no --init-checkpoint: training %s from RANDOM weights. Without ImageNet features it needs far "
                    "more photos to reach useful accuracy; pass torchvision's EfficientNet_V2_S weights if you can.",
                    variant)
    return TryOnClassifier(network)


def augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random horizontal flip and mild colour jitter. batch: BxHxWx3 uint8 -> BxHxWx3 float32 in [0, 255]."""
    x = batch.to(torch.float32)
    count = x.shape[0]

    def factors() -> torch.Tensor:
        return (1 + (torch.rand(count, 1, 1, 1, generator=generator) * 2 - 1) * JITTER).to(x.device)

    flip = (torch.rand(count, generator=generator) < 0.5).to(x.device)
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(2), x)  # dim 2 is width in HWC
    x = x * factors()  # brightness
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * factors() + mean  # contrast
    grey = x.mean(dim=3, keepdim=True)
    x = (x - grey) * factors() + grey  # saturation
    return x.clamp(0, 255)


def _fit(model, images, labels, train_idx, val_idx, checkpoint, epochs, batch_size, lr, weight_decay, seed,
         progress, device) -> tuple[tuple[int, HeldOutMetrics], list[dict]]:
    """Trains for `epochs`, saving whenever held-out (F1, accuracy, -loss) improves. Returns (best, history)."""
    counts = np.bincount(labels[train_idx], minlength=len(CLASS_NAMES))
    # inverse-frequency weights: usable photos are usually the minority, and recall on them matters
    weights = torch.tensor(len(train_idx) / (len(CLASS_NAMES) * counts), dtype=torch.float32, device=device)
    loss_fn = nn.CrossEntropyLoss(weight=weights)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * -(-len(train_idx) // batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    rng, generator = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    best, best_key, history = None, None, []
    for epoch in range(1, epochs + 1):
        order = rng.permutation(train_idx)
        model.train()
        bar = tqdm(range(0, len(order), batch_size), desc=f"epoch {epoch}/{epochs}", unit="batch",
                   disable=not progress)
        losses = []
        for start in bar:
            idx = np.sort(order[start:start + batch_size])  # sorted reads are sequential in the memmap
            x = augment(torch.from_numpy(images[idx]), generator).to(device)
            loss = loss_fn(model.logits(x), torch.from_numpy(labels[idx]).to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses):.3f}")
        calibrate_batchnorm(model, images, batch_size, indices=np.sort(rng.permutation(train_idx)[:PRECISE_BN_IMAGES]))
        metrics = evaluate(model, images, labels, val_idx, batch_size, loss_fn, device)
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), **asdict(metrics)})
        log.info("epoch %d/%d: train loss %.3f, held-out loss %.3f accuracy %.3f F1 %.3f", epoch, epochs,
                 np.mean(losses), metrics.loss, metrics.accuracy, metrics.f1)
        key = (metrics.f1, metrics.accuracy, -metrics.loss)
        if best_key is None or key > best_key:
            best, best_key = (epoch, metrics), key
            _save_state_dict(model, checkpoint)
    return best, history


@torch.no_grad()
def evaluate(model: TryOnClassifier, images: np.ndarray, labels: np.ndarray, idx: np.ndarray, batch_size: int,
             loss_fn: nn.Module, device: str = "cpu") -> HeldOutMetrics:
    """Scores images[idx] in eval mode; a photo is called usable when P(usable) >= 0.5."""
    model.eval()
    logits = torch.cat([model.logits(torch.from_numpy(images[idx[s:s + batch_size]]).to(device))
                        for s in range(0, len(idx), batch_size)])
    loss = float(loss_fn(logits, torch.from_numpy(labels[idx]).to(device)))
    return binary_metrics(labels[idx], torch.softmax(logits, dim=1)[:, 1].cpu().numpy() >= 0.5, loss)


def binary_metrics(truth: np.ndarray, predicted: np.ndarray, loss: float = float("nan")) -> HeldOutMetrics:
    """truth, predicted: N bool/int (1 = usable). Precision/recall/F1 are 0 where undefined (no positives)."""
    truth, predicted = truth.astype(bool), predicted.astype(bool)
    tp, fp = int(np.sum(truth & predicted)), int(np.sum(~truth & predicted))
    tn, fn = int(np.sum(~truth & ~predicted)), int(np.sum(truth & ~predicted))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    accuracy = (tp + tn) / len(truth) if len(truth) else 0.0
    return HeldOutMetrics(accuracy, precision, recall, f1, tp, fp, tn, fn, loss)


def _save_state_dict(model: TryOnClassifier, checkpoint: Path) -> None:
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    tmp = checkpoint.with_name(f".{checkpoint.name}.tmp")
    torch.save({k: v.detach().cpu() for k, v in model.network.state_dict().items()}, tmp)
    os.replace(tmp, checkpoint)  # an interrupted run never leaves a half-written checkpoint behind


def _write_metadata(report: TrainReport, data: Path, seed: int, init_checkpoint: Path | None) -> None:
    metadata = {
        "variant": report.variant,
        "class_names": list(CLASS_NAMES),
        "image_size": CLASSIFIER_SIZE,
        "preprocessing": "snapfit.preprocessing.classifier.resize_for_classifier (letterbox onto white)",
        "best_epoch": report.best_epoch,
        "epochs": report.epochs,
        "held_out": asdict(report.metrics),
        "train_images": report.train_images,
        "val_images": report.val_images,
        "skipped": report.skipped,
        "history": report.history,
        "data": str(data),
        "seed": seed,
        "init_checkpoint": str(init_checkpoint) if init_checkpoint else None,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    report.metadata.write_text(json.dumps(metadata, indent=2) + "\n")
