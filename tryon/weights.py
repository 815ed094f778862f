"""One on-disk layout for the published weights and the tiny random ones, so tests exercise the real loading path.

    weights_dir/stable-diffusion-2-inpainting/   diffusers folder: tokenizer/, text_encoder/, vae/, scheduler/
                                                 (its unet/ is not used: LaDI's UNet has 31 input channels)
    weights_dir/clip-vit-h-14/                   transformers CLIPVisionModelWithProjection folder
                                                 (laion/CLIP-ViT-H-14-laion2B-s32B-b79K)
    weights_dir/ladi-vton/{unet,emasc,inversion_adapter,warping}_{dataset}.pth
                                                 the published checkpoints; dataset = dresscode | vitonhd
    weights_dir/ladi_config.json                 optional {"profile": ..., "height": ..., "width": ...};
                                                 absent = the full profile
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from diffusers import AutoencoderKL
from torch import nn
from transformers import CLIPTextModel, CLIPTokenizer, CLIPVisionModelWithProjection

from tryon.components import CHECKPOINT_BUILDERS, LadiComponents, build_random_components
from tryon.config import TINY, LadiConfig, profile_config
from tryon.errors import WeightsError
from tryon.schedulers import SD2_SCHEDULER_CONFIG
from tryon.tokenizer import save_clip_tokenizer

SD_DIR = "stable-diffusion-2-inpainting"
CLIP_DIR = "clip-vit-h-14"
LADI_DIR = "ladi-vton"
CONFIG_FILE = "ladi_config.json"
DATASETS = ("dresscode", "vitonhd")
_SHOWN_KEYS = 5


def checkpoint_path(weights_dir: Path, name: str, dataset: str) -> Path:
    """weights_dir/ladi-vton/{name}_{dataset}.pth for name in unet | emasc | inversion_adapter | warping."""
    return Path(weights_dir) / LADI_DIR / f"{name}_{dataset}.pth"


def read_profile(weights_dir: Path) -> LadiConfig:
    """The profile named by ladi_config.json (full when absent); WeightsError if it is unreadable or inconsistent."""
    path = Path(weights_dir) / CONFIG_FILE
    if not path.exists():
        return profile_config("full")
    try:
        stated = json.loads(path.read_text())
        config = profile_config(stated.get("profile", "full"))
    except (ValueError, AttributeError) as error:
        raise WeightsError(f"{path}: {error}") from None
    frame = (stated.get("height", config.height), stated.get("width", config.width))
    if frame != config.frame_hw:
        raise WeightsError(f"{path}: frame {frame[0]}x{frame[1]} does not match the {config.profile} profile's "
                           f"{config.height}x{config.width}")
    return config


def check_state_dict(expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor], source: str) -> None:
    """WeightsError naming `source` and the first offending keys unless names and shapes match exactly."""
    if not isinstance(found, Mapping):
        raise WeightsError(f"{source}: expected a state dict, got {type(found).__name__}")
    problems = []
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    wrong = [f"{k} {list(found[k].shape)} (expected {list(expected[k].shape)})"
             for k in expected if k in found and tuple(found[k].shape) != tuple(expected[k].shape)]
    for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", wrong)):
        if keys:
            more = f" and {len(keys) - _SHOWN_KEYS} more" if len(keys) > _SHOWN_KEYS else ""
            problems.append(f"{label}: {', '.join(keys[:_SHOWN_KEYS])}{more}")
    if problems:
        raise WeightsError(f"{source} does not fit the model: " + "; ".join(problems))


def load_state_dict_strict(build: Callable[[], nn.Module], state_dict: Mapping[str, torch.Tensor],
                           source: str) -> nn.Module:
    """Builds the module on the meta device (no random init, no memory) and assigns the checkpoint's tensors."""
    with torch.device("meta"):
        module = build()
    check_state_dict(module.state_dict(), state_dict, source)
    module.load_state_dict(state_dict, strict=True, assign=True)
    left = [name for name, t in (*module.named_parameters(), *module.named_buffers()) if t.is_meta]
    if left:
        raise WeightsError(f"{source} left tensors uninitialised: {', '.join(left[:_SHOWN_KEYS])}")
    return module.float().eval().requires_grad_(False)


def _read_checkpoint(path: Path) -> object:
    if not path.is_file():
        raise WeightsError(f"missing checkpoint {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # files written before torch's zip format cannot be memory-mapped
        return torch.load(path, map_location="cpu", weights_only=True)


def _require_dir(path: Path) -> Path:
    if not path.is_dir():
        raise WeightsError(f"missing folder {path}")
    return path


def _from_pretrained(loader: Callable[..., object], path: Path) -> object:
    _require_dir(path)
    try:
        return loader(path, local_files_only=True)
    except (OSError, ValueError) as error:
        raise WeightsError(f"cannot load {path}: {error}") from None


def _check_matches_profile(config: LadiConfig, components: LadiComponents, weights_dir: Path) -> None:
    checks = [
        ("VAE block_out_channels", tuple(components.vae.config.block_out_channels), config.vae.block_out_channels),
        ("text encoder hidden_size", components.text_encoder.config.hidden_size, config.text_encoder.hidden_size),
        ("CLIP vision hidden_size", components.vision_encoder.config.hidden_size, config.vision_encoder.hidden_size),
        ("CLIP vision image_size", components.vision_encoder.config.image_size, config.vision_encoder.image_size),
    ]
    for what, found, expected in checks:
        if found != expected:
            raise WeightsError(f"{weights_dir}: {what} is {found}, the {config.profile} profile needs {expected}")


def load_components(weights_dir: Path, dataset: str = "dresscode") -> tuple[LadiComponents, LadiConfig]:
    """Everything a LadiVtonPipeline needs from `weights_dir` (layout above), on CPU in fp32."""
    weights_dir = _require_dir(Path(weights_dir))
    if dataset not in DATASETS:
        raise WeightsError(f"dataset must be one of {list(DATASETS)}, got {dataset!r}")
    config = read_profile(weights_dir)
    sd = weights_dir / SD_DIR
    scheduler_file = sd / "scheduler" / "scheduler_config.json"
    if not scheduler_file.is_file():
        raise WeightsError(f"missing scheduler config {scheduler_file}")

    warping = _read_checkpoint(checkpoint_path(weights_dir, "warping", dataset))
    # the upstream training script saves `epoch` and optimizer states beside the two networks: extra top-level
    # entries are ignored, while each network's state dict is still loaded strictly
    if not isinstance(warping, Mapping) or not {"tps", "refinement"} <= set(warping):
        found = sorted(map(str, warping)) if isinstance(warping, Mapping) else type(warping).__name__
        raise WeightsError(f"{checkpoint_path(weights_dir, 'warping', dataset)} must be a dict with the keys "
                           f"'tps' and 'refinement' (found {found})")

    def trained(name: str, state_dict: object | None = None, file: str | None = None) -> nn.Module:
        path = checkpoint_path(weights_dir, file or name, dataset)
        source = f"{path}" + (f" [{name!r}]" if file else "")
        loaded = _read_checkpoint(path) if state_dict is None else state_dict
        return load_state_dict_strict(lambda: CHECKPOINT_BUILDERS[name](config), loaded, source)

    components = LadiComponents(
        tokenizer=_from_pretrained(CLIPTokenizer.from_pretrained, sd / "tokenizer"),
        text_encoder=_from_pretrained(CLIPTextModel.from_pretrained, sd / "text_encoder"),
        vae=_from_pretrained(AutoencoderKL.from_pretrained, sd / "vae"),
        vision_encoder=_from_pretrained(CLIPVisionModelWithProjection.from_pretrained, weights_dir / CLIP_DIR),
        unet=trained("unet"),
        emasc=trained("emasc"),
        inversion_adapter=trained("inversion_adapter"),
        tps=trained("tps", warping["tps"], "warping"),
        refinement=trained("refinement", warping["refinement"], "warping"),
        scheduler_config=json.loads(scheduler_file.read_text()),
    )
    _check_matches_profile(config, components, weights_dir)
    return components, config


def save_tiny_weights(weights_dir: str | Path, seed: int = 0, dataset: str = "dresscode") -> Path:
    """Writes the tiny profile with random weights from `seed` in the layout above; returns `weights_dir`.

    `LadiVtonPipeline.from_weights(weights_dir, dataset)` then equals `LadiVtonPipeline.tiny(seed)`.
    """
    weights_dir = Path(weights_dir)
    components = build_random_components(TINY, seed)
    sd = weights_dir / SD_DIR
    save_clip_tokenizer(sd / "tokenizer")
    components.text_encoder.save_pretrained(sd / "text_encoder")
    components.vae.save_pretrained(sd / "vae")
    (sd / "scheduler").mkdir(parents=True, exist_ok=True)
    (sd / "scheduler" / "scheduler_config.json").write_text(json.dumps(SD2_SCHEDULER_CONFIG, indent=2))
    components.vision_encoder.save_pretrained(weights_dir / CLIP_DIR)
    (weights_dir / LADI_DIR).mkdir(parents=True, exist_ok=True)
    for name in ("unet", "emasc", "inversion_adapter"):
        torch.save(getattr(components, name).state_dict(), checkpoint_path(weights_dir, name, dataset))
    torch.save({"tps": components.tps.state_dict(), "refinement": components.refinement.state_dict()},
               checkpoint_path(weights_dir, "warping", dataset))
    profile = {"profile": TINY.profile, "height": TINY.height, "width": TINY.width}
    (weights_dir / CONFIG_FILE).write_text(json.dumps(profile, indent=2))
    return weights_dir
