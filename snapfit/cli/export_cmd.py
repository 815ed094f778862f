"""`snapfit export` and `snapfit train-classifier`: building the models Triton serves."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from snapfit.cli.app import DEFAULT_REPOSITORY, app, console, setup_logging


@app.command()
def export(
    profile: Annotated[str, typer.Option(help="tiny (small random models, for tests), base (full-size architectures) or cpu (base with MobileSAM's light SAM image encoder, for machines without a GPU)")] = "base",
    repository: Annotated[Path, typer.Option(help="model repository to write into; configs are copied there if missing")] = DEFAULT_REPOSITORY,
    only: Annotated[Optional[list[str]], typer.Option(help="export just these Triton models (repeatable)")] = None,
    precision: Annotated[Optional[str], typer.Option(help="auto (export fp32 and int8, serve int8 for each model whose int8 export passes the quality gate on the demo catalog, fp32 otherwise; the cpu profile's default), fp32 (the default of tiny and base), fp16 (GPU serving) or int8 (CPU serving, no gate; portable across x86 CPUs); see docs/models.md")] = None,
    sam_variant: Annotated[Optional[str], typer.Option(help="tiny, vit_b, vit_l, vit_h, mobile_sam (MobileSAM's TinyViT encoder) or tiny_mobile_sam")] = None,
    sam_checkpoint: Annotated[Optional[Path], typer.Option(help="segment-anything checkpoint (.pth), or MobileSAM's mobile_sam.pt for mobile_sam")] = None,
    clip_model: Annotated[Optional[str], typer.Option(help="tiny, tiny-p32 (small, for tests and the demo), an open_clip model name or hf-hub:ORG/NAME")] = None,
    clip_pretrained: Annotated[Optional[str], typer.Option(help="open_clip pretrained tag or a local checkpoint file")] = None,
    classifier_variant: Annotated[Optional[str], typer.Option(help="tiny or efficientnet_v2_s")] = None,
    classifier_checkpoint: Annotated[Optional[Path], typer.Option(help="checkpoint written by `snapfit train-classifier`")] = None,
    seed: Annotated[int, typer.Option(help="seed for random-init weights")] = 0,
    emulated_cpu: Annotated[Optional[list[str]], typer.Option(help="also check parity with ONNX Runtime on this QEMU CPU model (repeatable; Haswell = AVX2 without AVX-512/VNNI); needs qemu-user and is slow: tiny models, or patience")] = None,
    verbose: bool = False,
) -> None:
    """Export SAM, CLIP and the classifier to ONNX, check parity against torch, write model.onnx + parity.json."""
    setup_logging(verbose)
    from export.errors import ExportError
    from export.runner import export_models

    try:
        reports = export_models(
            profile=profile, repository=repository, only=only, precision=precision, seed=seed,
            sam_variant=sam_variant, sam_checkpoint=sam_checkpoint, clip_model=clip_model,
            clip_pretrained=clip_pretrained, classifier_variant=classifier_variant,
            classifier_checkpoint=classifier_checkpoint, console=console,
            emulated_cpus=tuple(emulated_cpu or ()),
        )
    except ExportError as error:
        console.print(f"[bold red]export failed:[/] {error}")
        raise typer.Exit(1)
    from export.runner import summary_table

    console.print(summary_table(reports))



@app.command("train-classifier")
def train_classifier(
    data: Annotated[Path, typer.Argument(help="folder with usable/ and unusable/ subfolders, or a CSV with image,label columns")],
    output: Annotated[Path, typer.Option(help="where to write the checkpoint (.pt) and its metrics (.json)")] = Path("runs/tryon_classifier.pt"),
    variant: Annotated[str, typer.Option(help="efficientnet_v2_s or tiny")] = "efficientnet_v2_s",
    epochs: int = 5,
    batch_size: int = 16,
    lr: Annotated[float, typer.Option(help="AdamW learning rate")] = 3e-4,
    val_fraction: Annotated[float, typer.Option(help="held-out fraction for accuracy/precision")] = 0.2,
    init_checkpoint: Annotated[Optional[Path], typer.Option(help="start from these weights (e.g. ImageNet EfficientNetV2-S)")] = None,
    seed: int = 0,
) -> None:
    """Fine-tune the try-on-readiness classifier on labelled product photos; report held-out accuracy and precision."""
    setup_logging(False)
    from export.train_classifier import train

    report = train(data=data, output=output, variant=variant, epochs=epochs, batch_size=batch_size, lr=lr,
                   val_fraction=val_fraction, seed=seed, init_checkpoint=init_checkpoint)
    console.print(report)


@app.command("train-clip")
def train_clip(
    catalog: Annotated[Path, typer.Argument(help="catalog CSV in the import layout (id, name, image, ..., tags, category); local photos, relative to the CSV")],
    output: Annotated[Path, typer.Option(help="where to write the checkpoint (.pt), its report (.json) and curves (.png)")] = Path("runs/clip/clip.pt"),
    clip_model: Annotated[str, typer.Option(help="tiny, tiny-p32, an open_clip model name, or hf-hub:ORG/NAME (as for snapfit export)")] = "tiny",
    clip_pretrained: Annotated[Optional[str], typer.Option(help="start from this open_clip pretrained tag or checkpoint file; without it, random weights (from scratch)")] = None,
    epochs: int = 5,
    batch_size: Annotated[int, typer.Option(help="photo-text pairs per contrastive batch")] = 32,
    lr: Annotated[Optional[float], typer.Option(help="AdamW peak learning rate, warmed up over the first 5 percent of the steps, then decayed (cosine) to zero (default 1e-5 from weights, 5e-4 from scratch)")] = None,
    held_out: Annotated[float, typer.Option(help="fraction of products held out for recall")] = 0.2,
    focus_tag: Annotated[Optional[list[str]], typer.Option(help="with --focus-epochs: a tag the first epochs train on alone (repeatable; e.g. each garment kind), so the image tower learns that cue before easier ones (colour) dominate")] = None,
    focus_epochs: Annotated[int, typer.Option(help="epochs, from the first, that pair each photo with its --focus-tag alone")] = 0,
    focus_share: Annotated[float, typer.Option(help="after the focus epochs, the share of pairs that still get the --focus-tag alone")] = 0.0,
    seed: int = 0,
) -> None:
    """Fine-tune CLIP on a catalog CSV; report held-out text->image and image->image recall before and after.

    Export the result with `snapfit export --clip-model MODEL --clip-pretrained OUTPUT`."""
    setup_logging(False)
    from rich.markup import escape

    from export.errors import ExportError
    from export.train_clip import train_clip as train

    try:
        report = train(catalog, output, clip_model=clip_model, clip_pretrained=clip_pretrained, epochs=epochs,
                       batch_size=batch_size, lr=lr, held_out_fraction=held_out, seed=seed,
                       focus_tags=tuple(focus_tag or ()), focus_epochs=focus_epochs, focus_share=focus_share)
    except (ExportError, ValueError) as error:  # DatasetError is a ValueError
        console.print(f"[bold red]train-clip failed:[/] {escape(str(error))}", highlight=False)
        raise typer.Exit(1) from None
    console.print(str(report), markup=False, highlight=False)
