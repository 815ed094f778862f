"""What one `snapfit export` run was asked to build: profile, model choices, precision and destination."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from export.precision import Precision

PROFILES = ("tiny", "base", "cpu")


@dataclass(frozen=True)
class ModelChoices:
    """Which architecture and weights each network uses.

    sam_variant: "tiny" | "vit_b" | "vit_l" | "vit_h" | "mobile_sam" | "tiny_mobile_sam" (export.sam_models);
    sam_checkpoint: a segment-anything .pth, or MobileSAM's mobile_sam.pt for mobile_sam.
    clip_model: "tiny", an open_clip model name ("ViT-B-16"), or "hf-hub:ORG/NAME";
    clip_pretrained: an open_clip pretrained tag or a local checkpoint file.
    clip_weights_required: the CLIP weights were asked for explicitly, so failing to load them is an error
    (a profile's default falls back to random weights with a warning).
    classifier_variant: "tiny" | "efficientnet_v2_s"; classifier_checkpoint: a state dict saved by
    `snapfit train-classifier`.
    """

    sam_variant: str
    clip_model: str
    classifier_variant: str
    sam_checkpoint: Path | None = None
    clip_pretrained: str | None = None
    classifier_checkpoint: Path | None = None
    clip_weights_required: bool = False


PROFILE_DEFAULTS = {
    "tiny": ModelChoices(sam_variant="tiny", clip_model="tiny", classifier_variant="tiny"),
    # Full-size architectures. The production CLIP is hf-hub:Marqo/marqo-fashionCLIP (ViT-B-16);
    # without hub access the same architecture is built with random weights (and a loud warning).
    "base": ModelChoices(sam_variant="vit_b", clip_model="hf-hub:Marqo/marqo-fashionCLIP",
                         classifier_variant="efficientnet_v2_s"),
    # base with MobileSAM's TinyViT image encoder (77.5 GFLOP against ViT-B's 972 at 1024x1024), for machines
    # without a GPU; the decoder, CLIP and the classifier are base's: cheap next to a ViT-B encoder (docs/models.md)
    "cpu": ModelChoices(sam_variant="mobile_sam", clip_model="hf-hub:Marqo/marqo-fashionCLIP",
                        classifier_variant="efficientnet_v2_s"),
}


@dataclass(frozen=True)
class ExportRequest:
    repository: Path
    choices: ModelChoices
    profile: str = "custom"  # recorded in parity.json; `snapfit up --profile P` re-exports models of another one
    precision: Precision = Precision.fp32
    opset: int = 17
    seed: int = 0  # random-init weights are seeded so encoder/decoder (or towers) of one run match
    # QEMU CPU models (export.emulation.EMULATED_CPUS) the candidate must also pass parity on, e.g. ("Haswell",)
    emulated_cpus: tuple[str, ...] = ()
    # changes to the int8 recipe (export.precision.int8_recipe), for comparing recipes; () = the default one
    int8_overrides: tuple[tuple[str, object], ...] = ()
    # the cache key of demo weights (export.demo_models) being exported; recorded so that serving swaps them out
    demo_weights: str | None = None

    @classmethod
    def for_profile(cls, profile: str, repository: Path, **overrides) -> "ExportRequest":
        choice_fields = {k: v for k, v in overrides.items() if k in ModelChoices.__dataclass_fields__ and v is not None}
        if choice_fields.get("clip_model") or choice_fields.get("clip_pretrained"):
            choice_fields.setdefault("clip_weights_required", True)
        rest = {k: v for k, v in overrides.items() if k not in ModelChoices.__dataclass_fields__ and v is not None}
        choices = replace(PROFILE_DEFAULTS[profile], **choice_fields)
        return cls(repository=Path(repository), choices=choices, profile=profile, **rest)

    def version_dir(self, model: str) -> Path:
        """Where Triton looks for version 1 of `model`."""
        return self.repository / model / "1"
