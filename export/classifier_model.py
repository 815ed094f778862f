"""The try-on-readiness classifier as a torch module: EfficientNetV2 with a 2-class head, uint8 HWC images in.

`TryOnClassifier` holds the in-graph preprocessing (cast, /255, ImageNet mean/std, HWC->CHW) so that the exported
ONNX model, `snapfit train-classifier` and the parity reference all run the same code path.
Checkpoints are the state dict of `TryOnClassifier.network` (torchvision's EfficientNet key names).
"""

from __future__ import annotations

import json
import logging
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvision.models import efficientnet_v2_s
from torchvision.models.efficientnet import EfficientNet, FusedMBConvConfig, MBConvConfig

from export.errors import ExportError
from snapfit.preprocessing.classifier import CLASS_NAMES

log = logging.getLogger(__name__)

VARIANTS = ("tiny", "efficientnet_v2_s")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CHECKPOINT_NAME = "tryon_classifier.pt"  # what train-classifier writes when given a folder
METADATA_SUFFIX = ".json"  # tryon_classifier.pt -> tryon_classifier.json (metrics, variant, class names)


def _tiny_efficientnet_v2(num_classes: int) -> EfficientNet:
    """EfficientNetV2's block types (FusedMBConv, then MBConv with squeeze-excitation), a few narrow stages.

    ~60k parameters; the same operator set as efficientnet_v2_s, so export problems show up in tests.
    """
    setting = [
        FusedMBConvConfig(1, 3, 1, 8, 8, 1),
        FusedMBConvConfig(4, 3, 2, 8, 16, 1),
        MBConvConfig(4, 3, 2, 16, 24, 1),
        MBConvConfig(4, 3, 2, 24, 32, 1),
    ]
    return EfficientNet(setting, dropout=0.2, num_classes=num_classes, last_channel=128,
                        norm_layer=partial(nn.BatchNorm2d, eps=1e-03))


def build_network(variant: str) -> EfficientNet:
    """A randomly initialised EfficientNetV2 with a len(CLASS_NAMES)-way head (seed torch first)."""
    if variant == "tiny":
        return _tiny_efficientnet_v2(len(CLASS_NAMES))
    if variant == "efficientnet_v2_s":
        return efficientnet_v2_s(weights=None, num_classes=len(CLASS_NAMES))
    raise ExportError(f"unknown classifier variant '{variant}' (choose one of {', '.join(VARIANTS)})")


class TryOnClassifier(nn.Module):
    """uint8 RGB images in, class probabilities out.

    forward(image): image BxHxWx3 uint8 (or float in [0, 255]) RGB, H = W = 384 when served.
    Returns Bx2 float32 softmax probabilities; column 1 is P(usable for try-on).
    """

    def __init__(self, network: EfficientNet) -> None:
        super().__init__()
        self.network = network
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0, persistent=False)

    def logits(self, image: torch.Tensor) -> torch.Tensor:
        """image: BxHxWx3 uint8/float in [0, 255]. Returns Bx2 float32 logits."""
        # (x/255 - m)/s == (x - 255m)/(255s): one subtract and one divide in the graph
        pixels = image.to(torch.float32).permute(0, 3, 1, 2)
        return self.network((pixels - self.mean) / self.std)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(image), dim=1)


def metadata_path(checkpoint: Path) -> Path:
    return checkpoint.with_suffix(METADATA_SUFFIX)


def resolve_checkpoint(path: Path) -> Path:
    """Accepts the checkpoint file or the folder train-classifier wrote it into."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise ExportError(f"classifier checkpoint {path} does not exist")
    return path


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Reads a state dict (plain or wrapped as {"state_dict": ...}); ExportError when it cannot."""
    path = resolve_checkpoint(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors all mean "not a usable checkpoint"
        raise ExportError(f"cannot read classifier checkpoint {path}: {exc}") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ExportError(f"{path} is not a state dict of tensors")
    for prefix in ("module.", "network."):  # saved from DataParallel, or from the TryOnClassifier wrapper
        if state and all(key.startswith(prefix) for key in state):
            state = {key[len(prefix):]: value for key, value in state.items()}
    return state


def load_weights(network: EfficientNet, variant: str, path: Path, allow_new_head: bool = False) -> None:
    """Loads a checkpoint into `network`; ExportError naming the mismatch when it does not fit.

    allow_new_head: keep the freshly initialised 2-class head when the checkpoint's head has another shape
    (an ImageNet state dict as a fine-tuning start); the backbone must still match exactly.
    """
    path = resolve_checkpoint(path)
    state = load_state_dict(path)
    own = network.state_dict()
    if allow_new_head:
        for key in [k for k in state if k.startswith("classifier.") and k in own and state[k].shape != own[k].shape]:
            log.warning("%s: %s has shape %s; starting a new %d-class head", path, key, tuple(state[key].shape),
                        len(CLASS_NAMES))
            state[key] = own[key]
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong_shape = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong_shape:
        hint = _checkpoint_variant_hint(path, variant)
        details = "; ".join(f"{what}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                            for what, keys in (("missing", missing), ("unexpected", unexpected),
                                               ("wrong shape", wrong_shape)) if keys)
        raise ExportError(f"{path} does not fit the '{variant}' classifier ({details}).{hint}")
    network.load_state_dict(state)


def _checkpoint_variant_hint(path: Path, variant: str) -> str:
    try:
        trained = json.loads(metadata_path(path).read_text()).get("variant")
    except (OSError, ValueError, AttributeError):
        return ""
    if trained and trained != variant:
        return f" It was trained as '{trained}'; export with classifier_variant='{trained}'."
    return ""


def synthetic_photos(count: int, seed: int, size: int = 384) -> np.ndarray:
    """count x size x size x 3 uint8 RGB images that exercise the network like catalogue photos do.

    Even indices: a flat-coloured garment silhouette (torso + sleeves) on white, letterbox-style;
    odd indices: busy scenes (colour blocks under noise). Deterministic in `seed`.
    """
    rng = np.random.default_rng(seed)
    images = np.full((count, size, size, 3), 255, dtype=np.uint8)
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(count):
        if i % 2 == 0:
            colour = rng.integers(0, 220, size=3)
            cx, top = rng.integers(size // 3, 2 * size // 3), rng.integers(size // 10, size // 4)
            half, height = rng.integers(size // 8, size // 4), rng.integers(size // 3, size // 2)
            torso = (abs(xx - cx) < half) & (yy > top) & (yy < top + height)
            sleeves = (abs(xx - cx) < half * 2) & (yy > top) & (yy < top + height // 3)
            shading = (yy - top).clip(0, None)[..., None] * rng.uniform(0, 0.2)
            images[i][torso | sleeves] = (colour + shading).clip(0, 255).astype(np.uint8)[torso | sleeves]
        else:
            blocks = rng.integers(0, 256, size=(8, 8, 3)).repeat(size // 8, 0).repeat(size // 8, 1)
            noise = rng.normal(0, 40, size=(size, size, 3))
            images[i][: blocks.shape[0], : blocks.shape[1]] = (blocks + noise[: blocks.shape[0], : blocks.shape[1]]
                                                               ).clip(0, 255).astype(np.uint8)
    return images


def calibrate_batchnorm(model: TryOnClassifier, images: np.ndarray, batch_size: int = 8,
                        indices: np.ndarray | None = None) -> None:
    """Re-estimates every BatchNorm's running statistics on `images[indices]` (NxHxWx3 uint8, e.g. a memmap,
    read one batch at a time); leaves `model` in eval mode.

    Used twice. (1) Random-init exports: torchvision starts BatchNorm at mean 0 / variance 1, so in eval mode a
    random EfficientNet's activations vanish through depth and every image scores p(usable) = 0.5000 +- 1e-4,
    which would make the parity check vacuous. (2) After each training epoch ("precise BN"): on small
    datasets the momentum-averaged statistics lag far behind the weights, and the held-out score would
    measure that lag instead of the model.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for module in norms:
        module.reset_running_stats()
        module.momentum = None  # cumulative average over all calibration batches
    device = next(model.parameters()).device
    model.train()
    with torch.no_grad():
        indices = np.arange(len(images)) if indices is None else np.asarray(indices)
        for start in range(0, len(indices), batch_size):
            model(torch.from_numpy(np.asarray(images[indices[start:start + batch_size]])).to(device))
    for module, momentum in zip(norms, momenta):
        module.momentum = momentum
    model.eval()
