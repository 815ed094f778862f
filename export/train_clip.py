"""`snapfit train-clip`: contrastive fine-tuning of the served open_clip model on a catalog CSV.

The network is the one the exporter builds (export/clip_models.py: "tiny", "tiny-p32", an open_clip name with a
pretrained tag or checkpoint file, or an `hf-hub:` id), so what is trained is what `snapfit export
--clip-pretrained PATH` exports. open_clip's own pieces do the work: ClipLoss, the model's tokenizer, its train/eval
transforms (image_transform_v2 on the model's preprocessing config) and its trainer's learning-rate schedule (a
linear warm-up over the first WARMUP_SHARE of the steps, then a cosine decay to zero at the last one).

Each step pairs a photo with one of its product's texts: the name, or a random subset of its tags in their order
(so "red dress" or "빨간색 원피스" match as well as the full name). Easy cues crowd out hard ones: trained on
such texts from scratch, a small image tower learns a garment's colour within an epoch and its shape (a dress
against a skirt) not at all, since colour alone already tells most pairs of a batch apart. `focus_tags` /
`focus_epochs` give the hard cue its own start: for the first epochs each photo is paired with its one tag among
`focus_tags` (e.g. the garment kinds) alone, so the image tower learns the shapes before the full texts come in;
after them a share of the texts (`focus_share`) stays that tag alone, so the shapes are not unlearnt.

Held out by product (export/catalog_pairs.py): text→image recall@1/5/10 (each held-out product's name against every
held-out photo) and image→image same-product recall@1 (an augmented view of each held-out photo against the
un-augmented ones), before training and after every epoch (or every `eval_every`). Writes the state dict
(`<output>.pt`), the report (`<output>.json`) and the curves (`<output>.png`).
"""

from __future__ import annotations

import copy
import json
import logging
import random
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import open_clip
import torch
from open_clip.transform import image_transform_v2
from open_clip_train.scheduler import cosine_lr
from PIL import Image
from tqdm.auto import tqdm

from export.catalog_pairs import CatalogPair, read_catalog_pairs, split_by_product
from export.clip_batches import batch_transform, clip_forward
from export.clip_models import load_network

log = logging.getLogger(__name__)

RECALL_AT = (1, 5, 10)
EVAL_BATCH = 64
# photos are decoded once and kept, shrunk to the model's input size, while they fit in this many bytes (RGB)
PHOTO_CACHE_BYTES = 1 << 30
FINE_TUNE_LR = 1e-5  # from trained weights: small steps keep what the model knows
FROM_SCRATCH_LR = 5e-4  # from random weights (a small architecture on a small catalog)
WARMUP_SHARE = 0.05  # of all steps, warming the learning rate up from zero


@dataclass
class HeldOutRecall:
    """On the held-out products: text→image recall@k (k in RECALL_AT) and image→image same-product recall@1."""

    text_to_image: dict[int, float]
    image_to_image: float

    def line(self) -> str:
        recalls = "  ".join(f"R@{k} {value:.3f}" for k, value in self.text_to_image.items())
        return f"text→image {recalls}   image→image R@1 {self.image_to_image:.3f}"


@dataclass
class ClipTrainReport:
    checkpoint: Path
    model: str
    source: str  # what training started from: a pretrained tag, a checkpoint, an hf-hub id or random-init
    epochs: int
    train_products: int
    held_out_products: int
    before: HeldOutRecall
    after: HeldOutRecall
    chance: dict[int, float]  # recall@k of a random ranking
    history: list[dict] = field(default_factory=list)  # per epoch: train_loss + held-out recall
    skipped: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join([
            f"{self.model} from {self.source}: {self.epochs} epochs on {self.train_products} products, "
            f"{self.held_out_products} held out",
            f"  before: {self.before.line()}",
            f"  after:  {self.after.line()}",
            "  chance: " + "  ".join(f"R@{k} {v:.3f}" for k, v in self.chance.items()),
            f"  checkpoint {self.checkpoint}, report {self.checkpoint.with_suffix('.json')}, curves "
            f"{self.checkpoint.with_suffix('.png')}",
        ] + ([f"  skipped {len(self.skipped)} rows, e.g. {self.skipped[0]}"] if self.skipped else []))

    def to_dict(self) -> dict:
        data = asdict(self)
        data["checkpoint"] = str(self.checkpoint)
        return data


def train_clip(csv_path: Path, output: Path, clip_model: str = "tiny", clip_pretrained: str | None = None,
               epochs: int = 5, batch_size: int = 32, lr: float | None = None, weight_decay: float = 0.1,
               held_out_fraction: float = 0.2, seed: int = 0, progress: bool = True,
               focus_tags: Sequence[str] = (), focus_epochs: int = 0, focus_share: float = 0.0,
               eval_every: int = 1) -> ClipTrainReport:
    """Fine-tunes `clip_model` (from `clip_pretrained`, or random weights when None) on the catalog at csv_path.

    output: the checkpoint path (`.pt`), or a folder to write `clip.pt` into. lr: AdamW's peak learning rate
    (warm-up, then cosine decay); by default 1e-5 from trained weights (fine-tuning), 5e-4 from random ones (from
    scratch). Deterministic for a seed on one machine. Raises DatasetError for an unusable catalog, ExportError for
    weights that cannot be loaded.
    focus_tags, focus_epochs: the first `focus_epochs` epochs pair each photo with its first tag among `focus_tags`
    alone (its name when it has none of them), and later epochs a `focus_share` of the pairs; see the module
    docstring. eval_every: held-out recall after every this many epochs (and after the last).
    """
    if epochs < 1 or batch_size < 2 or eval_every < 1:
        raise ValueError(f"epochs and eval_every must be >= 1 and batch_size >= 2 (a contrastive batch), got {epochs}, "
                         f"{eval_every}, {batch_size}")
    if not 0 <= focus_epochs < epochs or not 0.0 <= focus_share < 1.0 or \
            bool(focus_epochs or focus_share) and not focus_tags:
        raise ValueError(f"focus_epochs must be below epochs ({epochs}), focus_share in [0, 1), and either needs "
                         f"focus_tags; got {focus_epochs}, {focus_share} and {len(focus_tags)} tags")
    checkpoint = Path(output) if Path(output).suffix == ".pt" else Path(output) / "clip.pt"
    found = read_catalog_pairs(csv_path)
    train_pairs, held_out = split_by_product(found.pairs, held_out_fraction, seed)
    # weights asked for (a tag, a file, a hub id) must load: fine-tuning a random stand-in would waste the run
    network = load_network(clip_model, clip_pretrained, seed,
                           weights_required=clip_pretrained is not None or clip_model.startswith("hf-hub:"))
    lr = lr if lr is not None else (FROM_SCRATCH_LR if network.source == "random-init" else FINE_TUNE_LR)
    torch.manual_seed(seed)
    model = copy.deepcopy(network.model)  # load_network caches its (eval-mode) model for the exporter
    tokenizer = open_clip.get_tokenizer(network.tokenizer_name, context_length=network.context_length)
    augment = batch_transform(image_transform_v2(network.preprocess, is_train=True))
    plain = batch_transform(image_transform_v2(network.preprocess, is_train=False))
    photos = PhotoCache(network.image_size, PHOTO_CACHE_BYTES)
    focus = frozenset(focus_tags)

    def evaluate() -> HeldOutRecall:
        return held_out_recall(model, held_out, tokenizer, plain, augment, seed, photos)

    before = evaluate()
    log.info("before: %s", before.line())
    history = [{"epoch": 0, "train_loss": None, **_flat(before)}]
    loss_fn = open_clip.ClipLoss()
    # fused: one kernel over all parameters instead of a Python loop over them (27 -> 6 ms a step for tiny-p32;
    # torch.profiler, ad hoc)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr,
                                  weight_decay=weight_decay, fused=True)
    rng = random.Random(seed)
    ahead = not draws_random_numbers(model)  # else the step's draws would interleave with the augmentations'
    steps = max(1, len(train_pairs) // batch_size)
    schedule = cosine_lr(optimizer, lr, warmup_length=int(WARMUP_SHARE * steps * epochs), steps=steps * epochs)
    for epoch in range(1, epochs + 1):
        model.train()
        order = list(range(len(train_pairs)))
        rng.shuffle(order)
        losses = []
        batches = [[train_pairs[i] for i in order[step * batch_size:(step + 1) * batch_size]] for step in range(steps)]
        def make(batch: list[CatalogPair]) -> torch.Tensor:
            return augment([photos.get(pair.image) for pair in batch])

        views = one_ahead(batches, make) if ahead else map(make, batches)
        bar = tqdm(views, total=steps, desc=f"epoch {epoch}/{epochs}", unit="batch", disable=not progress, leave=False)
        for step, images in enumerate(bar):
            schedule((epoch - 1) * steps + step)
            batch = batches[step]
            texts = tokenizer([focus_text(pair, focus) if epoch <= focus_epochs or rng.random() < focus_share
                               else training_text(pair, rng) for pair in batch])
            image_features, text_features, logit_scale = _features(clip_forward(model, images, texts))
            loss = loss_fn(image_features, text_features, logit_scale)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():  # as open_clip's trainer: the temperature stays within 100
                model.logit_scale.clamp_(0, np.log(100))
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses):.3f}")
        if epoch % eval_every and epoch != epochs:
            history.append({"epoch": epoch, "train_loss": float(np.mean(losses))})
            continue
        recall = evaluate()
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), **_flat(recall)})
        log.info("epoch %d/%d: loss %.3f, %s", epoch, epochs, np.mean(losses), recall.line())
    report = ClipTrainReport(checkpoint=checkpoint, model=network.architecture, source=network.source, epochs=epochs,
                             train_products=len(train_pairs), held_out_products=len(held_out), before=before,
                             after=recall, chance={k: min(1.0, k / len(held_out)) for k in RECALL_AT},
                             history=history, skipped=found.skipped)
    _write(model, report, csv_path, seed, lr, batch_size,
           {"tags": sorted(focus), "epochs": focus_epochs, "share": focus_share})
    return report


def one_ahead(items: Sequence, make: Callable) -> Iterator:
    """make(item) for each item in order, the next one made in a background thread while the caller uses this one.

    The augmentations (PIL crops and resizes, which release the GIL) then overlap the model's step: 182 against
    202 ms a step of tiny-p32 on a 2-core Xeon (timed ad hoc, 2026-12-06). One thread makes them one after the
    other, so they draw torch's random numbers in the same order as inline, as long as the caller draws none
    meanwhile (a training step of open_clip's models without dropout draws none); the evaluation between epochs
    runs after the epoch's thread has finished. `draws_random_numbers` tells when the step does draw."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="augment") as pool:
        pending = pool.submit(make, items[0]) if items else None
        for index in range(len(items)):
            made = pending.result()
            pending = pool.submit(make, items[index + 1]) if index + 1 < len(items) else None
            yield made


def draws_random_numbers(model: torch.nn.Module) -> bool:
    """Whether a training step of `model` draws from torch's random generator: dropout of any kind."""
    from open_clip.transformer import PatchDropout

    for module in model.modules():
        if isinstance(module, torch.nn.modules.dropout._DropoutNd) and module.p > 0 or \
                isinstance(module, torch.nn.MultiheadAttention) and module.dropout > 0 or \
                isinstance(module, PatchDropout) and module.prob > 0:
            return True
    return False


def focus_text(pair: CatalogPair, focus: frozenset[str]) -> str:
    """The pair's first tag among `focus`, else its title."""
    return next((tag for tag in pair.tags if tag in focus), pair.title)


def training_text(pair: CatalogPair, rng: random.Random) -> str:
    """The name, or a random non-empty subset of the tags in their order."""
    if not pair.tags or (pair.name and rng.random() < 0.3):
        return pair.title
    chosen = [tag for tag in pair.tags if rng.random() < 0.5] or [rng.choice(pair.tags)]
    return " ".join(chosen)


@torch.no_grad()
def held_out_recall(model: torch.nn.Module, held_out: list[CatalogPair], tokenizer, plain, augment,
                    seed: int, photos: PhotoCache) -> HeldOutRecall:
    """Recall on `held_out` (see the module docstring); the augmented views are drawn from `seed`. plain, augment:
    photos -> (B, 3, H, W) batches (export.clip_batches.batch_transform of open_clip's eval and train transforms)."""
    model.eval()
    gallery, views, queries = [], [], []
    state = torch.random.get_rng_state()
    torch.manual_seed(seed + 1)  # the same augmented views before and after training
    for start in range(0, len(held_out), EVAL_BATCH):  # embedded one batch at a time; photos from the bounded cache
        chunk = held_out[start:start + EVAL_BATCH]
        decoded = [photos.get(pair.image) for pair in chunk]
        gallery.append(_normalised(model.encode_image(plain(decoded))))
        views.append(_normalised(model.encode_image(augment(decoded))))
        queries.append(_normalised(model.encode_text(tokenizer([pair.title for pair in chunk]))))
    torch.random.set_rng_state(state)
    gallery, views, queries = torch.cat(gallery), torch.cat(views), torch.cat(queries)
    truth = torch.arange(len(held_out))
    text_ranks = _rank_of_truth(queries @ gallery.T, truth)
    image_ranks = _rank_of_truth(views @ gallery.T, truth)
    return HeldOutRecall(text_to_image={k: float((text_ranks < k).float().mean()) for k in RECALL_AT},
                         image_to_image=float((image_ranks < 1).float().mean()))


def _rank_of_truth(scores: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """scores: (Q, G); truth: (Q,) the right gallery column per query -> (Q,) how many columns score higher."""
    right = scores[torch.arange(len(truth)), truth].unsqueeze(1)
    return (scores > right).sum(dim=1)


def _normalised(features: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(features.float(), dim=-1)


def _features(output) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """open_clip's forward answers a tuple or (output_dict models) a dict."""
    if isinstance(output, dict):
        return output["image_features"], output["text_features"], output["logit_scale"]
    return output[0], output[1], output[2]


class PhotoCache:
    """Decoded photos, shrunk (bicubic, as open_clip's resize) so that their shorter side is the model's input
    size, kept while they fit in `budget_bytes`; past it, photos are decoded on every use."""

    def __init__(self, size: int, budget_bytes: int):
        self.size = size
        self.budget_bytes = budget_bytes
        self.used_bytes = 0
        self._photos: dict[Path, Image.Image] = {}

    def get(self, path: Path) -> Image.Image:
        photo = self._photos.get(path)
        if photo is None:
            photo = _photo(path, self.size)
            if self.used_bytes + photo.width * photo.height * 3 <= self.budget_bytes:
                self._photos[path] = photo
                self.used_bytes += photo.width * photo.height * 3
        return photo


def _photo(path: Path, size: int) -> Image.Image:
    with Image.open(path) as image:
        photo = image.convert("RGB")
    scale = size / min(photo.size)
    if scale < 1:
        photo = photo.resize((max(size, round(photo.width * scale)), max(size, round(photo.height * scale))),
                             Image.Resampling.BICUBIC)
    return photo


def _flat(recall: HeldOutRecall) -> dict:
    return {**{f"text_to_image_r{k}": v for k, v in recall.text_to_image.items()},
            "image_to_image_r1": recall.image_to_image}


def _write(model: torch.nn.Module, report: ClipTrainReport, csv_path: Path, seed: int, lr: float,
           batch_size: int, focus: dict) -> None:
    checkpoint = report.checkpoint
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), checkpoint)
    metadata = {**report.to_dict(), "catalog": str(csv_path), "seed": seed, "lr": lr, "batch_size": batch_size,
                "focus": focus,
                "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    checkpoint.with_suffix(".json").write_text(json.dumps(metadata, indent=2, ensure_ascii=False) + "\n")
    plot_curves(report, checkpoint.with_suffix(".png"))


def plot_curves(report: ClipTrainReport, path: Path) -> None:
    """Held-out recall per epoch (epoch 0: before training) beside the training loss."""
    from matplotlib.figure import Figure  # a bare Figure renders with Agg, never touching pyplot's state

    measured = [entry for entry in report.history if "image_to_image_r1" in entry]
    epochs = [entry["epoch"] for entry in measured]
    figure = Figure(figsize=(9, 3.6), layout="constrained")
    recall_axes, loss_axes = figure.subplots(1, 2)
    for k in RECALL_AT:
        recall_axes.plot(epochs, [e[f"text_to_image_r{k}"] for e in measured], marker="o",
                         label=f"text→image R@{k}")
        recall_axes.axhline(report.chance[k], linestyle=":", linewidth=0.8, color=recall_axes.lines[-1].get_color())
    recall_axes.plot(epochs, [e["image_to_image_r1"] for e in measured], marker="s", label="image→image R@1")
    recall_axes.set(xlabel="epoch (0 = before)", ylabel="held-out recall", ylim=(0, 1.02),
                    title=f"{report.held_out_products} held-out products (dotted: chance)")
    recall_axes.legend(fontsize=7)
    trained = [e for e in report.history if e["train_loss"] is not None]
    loss_axes.plot([e["epoch"] for e in trained], [e["train_loss"] for e in trained], marker="o")
    loss_axes.set(xlabel="epoch", ylabel="contrastive loss", title="training loss")
    figure.suptitle(f"snapfit train-clip: {report.model} from {report.source}", fontsize=9)
    figure.savefig(path, dpi=110)

