"""Building the open_clip network that `clip_image` and `clip_text` are exported from.

`ModelChoices.clip_model` / `clip_pretrained` select it:
- "tiny": a small ViT + text transformer built from TINY_CONFIG with random weights (tests);
- "tiny-p32": the same with 32-pixel patches (49 image tokens instead of 196, a cheaper image tower): the demo's
  CLIP (export.demo_models);
- an open_clip model name ("ViT-B-16") with a pretrained tag ("laion2b_s34b_b88k"), a local
  checkpoint file, or nothing (random weights);
- "hf-hub:ORG/NAME" (production: hf-hub:Marqo/marqo-fashionCLIP), or that plus a local checkpoint file.
When the hub cannot be reached the same architecture is built with random weights and a loud warning;
a checkpoint file that is missing or does not fit the architecture raises ExportError.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse

import open_clip
import torch
from open_clip.model import set_model_preprocess_cfg
from open_clip.transform import PreprocessCfg

from export.errors import ExportError

log = logging.getLogger(__name__)

TINY = "tiny"
# The tiny model keeps the production tensor interface (224x224 images, 77 tokens of the CLIP BPE
# vocabulary, 512-d embeddings) so configs and clients are identical; only widths and depths shrink.
TINY_CONFIG = {
    "embed_dim": 512,
    "vision_cfg": {"image_size": 224, "patch_size": 16, "width": 128, "layers": 2, "head_width": 64},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
TINY_P32 = "tiny-p32"
SMALL_CONFIGS = {TINY: TINY_CONFIG,
                 TINY_P32: {**TINY_CONFIG, "vision_cfg": {**TINY_CONFIG["vision_cfg"], "patch_size": 32}}}
# A built-in name whose tokenizer is open_clip's plain SimpleTokenizer: get_tokenizer() builds it offline.
SIMPLE_TOKENIZER = "ViT-B-16"

# hf-hub repositories that open_clip's pretrained registry does not list, by architecture, so an
# offline export still builds the right network (random weights) and tokenizer.
KNOWN_HF_ARCHITECTURES = {
    "Marqo/marqo-fashionCLIP": "ViT-B-16",
    "Marqo/marqo-fashionSigLIP": "ViT-B-16-SigLIP",
}

HUB_PROBE_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class ClipNetwork:
    """An eval-mode open_clip model plus what clients need to feed it exactly as open_clip does."""

    model: torch.nn.Module
    architecture: str  # "tiny", "ViT-B-16", ...
    source: str  # pretrained tag, checkpoint path, hf-hub id, or "random-init"
    tokenizer_name: str  # argument for open_clip.get_tokenizer that reproduces this model's tokenizer
    context_length: int
    preprocess: PreprocessCfg  # size, mean, std, interpolation, resize_mode

    @property
    def image_size(self) -> int:
        size = self.preprocess.size
        if isinstance(size, int):
            return size
        if size[0] != size[1]:
            raise ExportError(f"{self.architecture}: non-square image size {tuple(size)} is not supported")
        return int(size[0])


def load_network(clip_model: str, clip_pretrained: str | None, seed: int, *,
                 weights_required: bool = False) -> ClipNetwork:
    """Builds (once per process and arguments) the CLIP network both towers are exported from.

    weights_required: the weights were asked for explicitly (`--clip-model hf-hub:...`, `--clip-pretrained TAG`),
    so failing to load them raises ExportError; otherwise (a profile's default) the architecture is built with
    random weights and a loud warning.
    """
    return _load_network(clip_model, None if clip_pretrained is None else str(clip_pretrained), seed,
                         weights_required)


@functools.lru_cache(maxsize=4)
def _load_network(clip_model: str, clip_pretrained: str | None, seed: int, weights_required: bool) -> ClipNetwork:
    torch.manual_seed(seed)
    if clip_model in SMALL_CONFIGS:
        network = _small(clip_model, clip_pretrained)
    elif clip_model.startswith("hf-hub:"):
        network = _from_hub(clip_model, clip_pretrained, weights_required)
    else:
        network = _from_name(clip_model, clip_pretrained, weights_required)
    network.model.eval()
    return network


def _small(name: str, checkpoint: str | None) -> ClipNetwork:
    config = SMALL_CONFIGS[name]
    model = open_clip.CLIP(**config)
    preprocess = PreprocessCfg(size=config["vision_cfg"]["image_size"])
    set_model_preprocess_cfg(model, asdict(preprocess))
    source = _load_checkpoint(model, checkpoint, name) if checkpoint else "random-init"
    return ClipNetwork(model, name, source, SIMPLE_TOKENIZER, model.context_length, preprocess)


def _from_name(name: str, pretrained: str | None, weights_required: bool) -> ClipNetwork:
    if name not in open_clip.list_models():
        raise ExportError(f"unknown open_clip model '{name}'; use 'tiny', 'tiny-p32', 'hf-hub:ORG/NAME' or one of "
                          f"open_clip.list_models()")
    if pretrained and open_clip.get_pretrained_cfg(name, pretrained):
        tag_cfg = open_clip.get_pretrained_cfg(name, pretrained)
        try:
            with hub_access():
                model = open_clip.create_model(name, pretrained=pretrained, require_pretrained=True)
            return _network(model, name, f"{name}:{pretrained}", name)
        except Exception as error:  # noqa: BLE001 - any download failure means the same fallback
            _fall_back_to_random(f"{name} pretrained '{pretrained}'", error, weights_required)
            # keep the tag's normalisation so the served graph matches what the real weights expect
            model = _random(name, force_preprocess_cfg=_preprocess_overrides(tag_cfg))
            return _network(model, name, "random-init", name)
    if pretrained:
        _require_file(pretrained, name, known_tags=open_clip.list_pretrained_tags_by_model(name))
    model = _random(name)
    if pretrained:
        source = _load_checkpoint(model, pretrained, name)
    else:
        _warn_random(name, "no pretrained tag or checkpoint was given")
        source = "random-init"
    return _network(model, name, source, name)


def _from_hub(hub_id: str, checkpoint: str | None, weights_required: bool) -> ClipNetwork:
    if not checkpoint:
        try:
            with hub_access():
                model = open_clip.create_model(hub_id, require_pretrained=True, pretrained_text=False)
                tokenizer_name = hub_tokenizer_name(hub_id)
            return _network(model, hub_id, hub_id, tokenizer_name)
        except Exception as error:  # noqa: BLE001 - config or weights unreachable: build the architecture
            _fall_back_to_random(hub_id, error, weights_required)
    if checkpoint:
        _require_file(checkpoint, hub_id)
    architecture = hub_architecture(hub_id)
    model = _random(architecture)
    source = _load_checkpoint(model, checkpoint, hub_id) if checkpoint else "random-init"
    # the hub's tokenizer config may be unreachable at serving time too; the architecture's is local
    return _network(model, architecture, source, architecture)


def hub_tokenizer_name(hub_id: str) -> str:
    """What clip_tokenizer should pass to get_tokenizer for an hf-hub model.

    get_tokenizer("hf-hub:...") re-reads the hub config at serving time and, failing that, needs
    `transformers` and the hub; a plain SimpleTokenizer config is served by a built-in name instead.
    """
    text_cfg = (open_clip.get_model_config(hub_id) or {}).get("text_cfg", {})
    if text_cfg.get("hf_tokenizer_name") or text_cfg.get("tokenizer_kwargs"):
        return hub_id
    return SIMPLE_TOKENIZER


def hub_architecture(hub_id: str) -> str:
    """The built-in open_clip architecture of an hf-hub model, found without the network."""
    repo = hub_id.removeprefix("hf-hub:").strip("/")
    for name, tag in open_clip.list_pretrained():
        if open_clip.get_pretrained_cfg(name, tag).get("hf_hub", "").strip("/") == repo:
            return name
    if repo in KNOWN_HF_ARCHITECTURES:
        return KNOWN_HF_ARCHITECTURES[repo]
    raise ExportError(f"cannot tell the architecture of {hub_id} without the hub; pass an open_clip model "
                      f"name as clip_model and the downloaded checkpoint file as clip_pretrained")


def _random(name: str, **kwargs) -> torch.nn.Module:
    # pretrained_text=False: towers with an HF text model would otherwise try to download its weights
    return open_clip.create_model(name, pretrained_text=False, **kwargs)


def _network(model: torch.nn.Module, architecture: str, source: str, tokenizer_name: str) -> ClipNetwork:
    preprocess = PreprocessCfg(**open_clip.get_model_preprocess_cfg(model))
    context_length = int(getattr(model, "context_length", 0) or getattr(model.text, "context_length"))
    return ClipNetwork(model, architecture, source, tokenizer_name, context_length, preprocess)


def _preprocess_overrides(tag_cfg: dict) -> dict:
    return {k: tag_cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in tag_cfg}


def _require_file(checkpoint: str, architecture: str, known_tags: list[str] | None = None) -> Path:
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        tags = f" (known pretrained tags: {', '.join(known_tags)})" if known_tags else ""
        raise ExportError(f"CLIP checkpoint '{checkpoint}' is neither a file nor a pretrained tag of "
                          f"{architecture}{tags}")
    return path


def _load_checkpoint(model: torch.nn.Module, checkpoint: str, architecture: str) -> str:
    path = _require_file(checkpoint, architecture)
    try:
        open_clip.load_checkpoint(model, str(path), strict=True)
    except Exception as error:  # noqa: BLE001 - unpickling and key/shape mismatches all mean "does not fit"
        raise ExportError(f"CLIP checkpoint {path} does not fit {architecture}: {_first_line(error)}") from error
    return str(path)


def _fall_back_to_random(what: str, reason: object, weights_required: bool) -> None:
    """Raises ExportError when the weights were asked for explicitly; warns loudly otherwise."""
    if weights_required:
        raise ExportError(f"the requested CLIP weights {what} could not be loaded: {_first_line(reason)}. Without "
                          "network access, download the checkpoint elsewhere and pass it with --clip-pretrained FILE "
                          "(and --clip-model NAME); leave both out to export random weights")
    _warn_random(what, reason)


def _warn_random(what: str, reason: object) -> None:
    logging.warning(
        "!!! %s: weights could not be loaded (%s). Exporting the same architecture with RANDOM weights: "
        "embeddings will be meaningless and search results random. !!!", what, _first_line(reason))


def _first_line(error: object) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


@contextlib.contextmanager
def hub_access() -> Iterator[None]:
    """Makes huggingface_hub fail in milliseconds, not after ~25 s of retries, when the hub is unreachable.

    Offline mode still serves files already in the local HF cache, so air-gapped machines with a
    pre-populated cache load real weights.
    """
    from huggingface_hub import constants

    previous = constants.HF_HUB_OFFLINE
    if not previous and not _hub_reachable(constants.ENDPOINT):
        log.info("huggingface hub unreachable; using only the local cache")
        constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = previous


def _hub_reachable(endpoint: str) -> bool:
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True  # a proxy decides; a direct probe would say nothing
    url = urlparse(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=HUB_PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False
