"""Per-model latency: eager torch (fp32, bf16 autocast) against the served ONNX graphs (fp32, int8) on CPU.

    python -m benchmarks.model_latency --quick --profile tiny --out /tmp/bench
    python -m benchmarks.model_latency --profile base --models clip_image clip_text

For each model and profile ("tiny", or "base" = SAM vit_b, CLIP ViT-B-16, EfficientNetV2-S, all random-init and
seeded) the exporter itself (`export.runner.export_models`) writes the fp32 and int8 ONNX models into a scratch
repository, and the torch side is the very wrapper module it exported (same builder, same seed), so both sides take
the served inputs: UINT8 HWC images, int64 token ids, SAM prompts. Every (model, variant, batch) is timed until
`iterations` calls or `max_seconds`; `speedup_vs_torch_fp32` is torch_fp32's p50 over the variant's p50 at the same
batch, in the same run. The report goes to `--out` (default benchmarks/results/<machine-id>/).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.report import Column, format_value, line_plot, markdown_table, register_section
from benchmarks.stats import LatencySummary, time_calls

SECTION = "model_latency"
MODELS = ("sam_encoder", "sam_decoder", "clip_image", "clip_text", "tryon_classifier")
VARIANTS = ("torch_fp32", "torch_bf16", "ort_fp32", "ort_int8")
BASELINE = "torch_fp32"
DEFAULT_BATCHES = (1, 8, 32)
QUICK_BATCHES = (1, 8)
# one vit_b encoder call takes seconds on a CPU, and a batch of 32 1024x1024 images needs ~10 GB of activations
SAM_ENCODER_MAX_BATCH = 8
UNBATCHED_MODELS = {"sam_decoder"}  # the decoder's contract has no batch axis
SEED = 0

Feeds = dict[str, np.ndarray]


@dataclass
class Subject:
    """One model under test: the torch wrapper the exporter exported and its two ONNX files (fp32, int8)."""

    model: str
    module: object  # torch.nn.Module, eval mode
    input_names: list[str]
    onnx_paths: dict[str, Path]  # "fp32" / "int8" -> model.onnx
    make_feeds: Callable[[int], Feeds]  # batch size -> served inputs


def model_batches(model: str, batches: Sequence[int], sam_encoder_max_batch: int = SAM_ENCODER_MAX_BATCH) -> list[int]:
    """The batch sizes `model` is timed at: [1] for sam_decoder, `batches` capped for sam_encoder, else `batches`."""
    if model in UNBATCHED_MODELS:
        return [1]
    if model == "sam_encoder":
        return [b for b in batches if b <= sam_encoder_max_batch] or [min(batches)]
    return list(batches)


def export_onnx(model: str, profile: str, workdir: Path) -> dict[str, Path]:
    """Exports `model` at fp32 and int8 into `workdir/<precision>/` with the exporter; returns the model.onnx paths."""
    from rich.console import Console

    from export.runner import export_models

    paths = {}
    for precision in ("fp32", "int8"):
        repository = Path(workdir) / precision
        # a console of its own, silenced: the exporter's progress bar must not clash with ours
        export_models(profile, repository=repository, only=[model], precision=precision,
                      console=Console(quiet=True))
        paths[precision] = repository / model / "1" / "model.onnx"
    return paths


def torch_module(model: str, profile: str, workdir: Path):
    """The eval-mode torch wrapper that `model`'s exporter exports, built by its own builder with its seed."""
    from export import clip, sam
    from export.classifier import torch_classifier
    from export.request import ExportRequest

    request = ExportRequest.for_profile(profile, Path(workdir) / "fp32")
    if model == "sam_encoder":
        return sam.SamEncoderOnnx(sam._build(request)).eval()
    if model == "sam_decoder":
        return sam.SamDecoderOnnx(sam._build(request)).eval()
    if model == "clip_image":
        return clip.ClipImageEncoder(clip._network(request)).eval()
    if model == "clip_text":
        return clip.ClipTextEncoder(clip._network(request)).eval()
    if model == "tryon_classifier":
        choices = request.choices
        return torch_classifier(choices.classifier_variant, choices.classifier_checkpoint, request.seed)
    raise ValueError(f"unknown model {model!r}; choose from {', '.join(MODELS)}")


def feed_maker(model: str, profile: str, workdir: Path) -> Callable[[int], Feeds]:
    """batch -> the served inputs of `model`, synthetic but shaped and preprocessed as clients send them."""
    from export import clip, sam
    from export.preprocessing.classifier import resize_for_classifier
    from export.preprocessing.clip import resize_and_crop
    from export.preprocessing.sam import prompt_arrays, resize_for_encoder
    from export.request import ExportRequest

    request = ExportRequest.for_profile(profile, Path(workdir) / "fp32")
    if model == "sam_encoder":
        rng = np.random.default_rng(SEED)
        image = resize_for_encoder(sam.synthetic_image(rng, 768, 1024))  # 768x1024, a landscape photo
        return lambda batch: {"image": np.repeat(image[None], batch, axis=0)}
    if model == "sam_decoder":
        orig_hw = (1536, 1024)
        h, w = orig_hw
        prompt = prompt_arrays(points=[[0.42 * w, 0.4 * h]], labels=[1], box=[0.18 * w, 0.2 * h, 0.75 * w, 0.75 * h],
                               orig_hw=orig_hw)
        embedding = np.random.default_rng(SEED).standard_normal((1, 256, 64, 64), dtype=np.float32)
        return lambda batch: {"image_embeddings": embedding, **prompt}
    if model in ("clip_image", "tryon_classifier"):
        if model == "clip_image":
            size = clip._network(request).image_size
            prepare = lambda image: resize_and_crop(image, size)  # noqa: E731
        else:
            prepare = resize_for_classifier
        photos = [prepare(image) for image in clip.parity_images(8, SEED)]
        return lambda batch: {"image": np.stack([photos[i % len(photos)] for i in range(batch)])}
    if model == "clip_text":
        ids = clip._tokenize(clip._network(request), clip.PARITY_QUERIES)
        return lambda batch: {"input_ids": ids[np.arange(batch) % len(ids)]}
    raise ValueError(f"unknown model {model!r}; choose from {', '.join(MODELS)}")


INPUT_NAMES = {"sam_encoder": ["image"], "clip_image": ["image"], "tryon_classifier": ["image"],
               "clip_text": ["input_ids"],
               "sam_decoder": ["image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input",
                               "orig_im_size"]}


def prepare_subject(model: str, profile: str, workdir: Path) -> Subject:
    """Exports `model` (fp32 + int8) and builds its torch twin and input maker."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose from {', '.join(MODELS)}")
    paths = export_onnx(model, profile, workdir)
    return Subject(model, torch_module(model, profile, workdir), INPUT_NAMES[model], paths,
                   feed_maker(model, profile, workdir))


def variant_call(subject: Subject, variant: str, feeds: Feeds, sessions: dict) -> Callable[[], object]:
    """A no-argument callable running one inference of `variant` on `feeds`."""
    import torch

    if variant.startswith("ort_"):
        from export.onnx_io import open_session

        precision = variant.removeprefix("ort_")
        if precision not in sessions:
            sessions[precision], _ = open_session(subject.onnx_paths[precision], threads=os.cpu_count())
        session = sessions[precision]
        return lambda: session.run(None, feeds)
    tensors = [torch.from_numpy(np.ascontiguousarray(feeds[name])) for name in subject.input_names]
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if variant == "torch_bf16" \
        else contextlib.nullcontext

    def call() -> object:
        with torch.inference_mode(), autocast():
            return subject.module(*tensors)

    return call


def measure(subject: Subject, variant: str, batch: int, iterations: int, max_seconds: float, sessions: dict,
            profile: str) -> dict:
    """One row: latency of `variant` at `batch`; a variant that cannot run here gets None timings and its error."""
    row: dict = {"model": subject.model, "profile": profile, "variant": variant, "batch": batch}
    try:
        call = variant_call(subject, variant, subject.make_feeds(batch), sessions)
        summary = LatencySummary.from_seconds(time_calls(call, warmup=1, iterations=iterations,
                                                         max_seconds=max_seconds))
    except Exception as error:  # noqa: BLE001 - e.g. an op without a bf16 kernel; the other variants still count
        keys = ("count", "mean_ms", "p50_ms", "p95_ms", "p99_ms", "min_ms", "max_ms", "items_per_s")
        return {**row, **dict.fromkeys(keys), "error": f"{type(error).__name__}: {error}"}
    return {**row, **summary.as_row(batch_size=batch), "error": None}


def add_speedups(rows: list[dict]) -> list[dict]:
    """Sets speedup_vs_torch_fp32 = torch_fp32 p50 / row p50 for rows of the same model and batch (None if missing)."""
    baseline = {(r["model"], r["batch"]): r["p50_ms"] for r in rows if r["variant"] == BASELINE}
    for row in rows:
        base = baseline.get((row["model"], row["batch"]))
        row["speedup_vs_torch_fp32"] = (1.0 if row["variant"] == BASELINE and base else
                                        base / row["p50_ms"] if base and row["p50_ms"] else None)
    return rows


def run(models: Sequence[str] = MODELS, profile: str = "base", batches: Sequence[int] = DEFAULT_BATCHES,
        iterations: int = 50, max_seconds: float = 10.0, show_progress: bool = True,
        sam_encoder_max_batch: int = SAM_ENCODER_MAX_BATCH, workdir: Path | None = None) -> list[dict]:
    """Rows for every model x variant x batch (see `model_batches`), in that order; see `measure` for the fields.

    workdir: where the exported ONNX models go (default: a temporary folder removed afterwards).
    """
    from rich.progress import Progress

    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        raise ValueError(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    if not batches or min(batches) < 1:
        raise ValueError(f"batch sizes must be >= 1, got {list(batches)}")
    plan = {m: model_batches(m, sorted(set(batches)), sam_encoder_max_batch) for m in models}
    rows: list[dict] = []
    with contextlib.ExitStack() as stack:
        root = Path(workdir) if workdir else Path(stack.enter_context(tempfile.TemporaryDirectory(
            prefix="snapfit-model-latency-")))
        progress = stack.enter_context(Progress(disable=not show_progress, transient=True))
        task = progress.add_task("models", total=sum(len(b) for b in plan.values()) * len(VARIANTS))
        for model, model_batch_sizes in plan.items():
            progress.update(task, description=f"{model}: exporting fp32 + int8")
            subject = prepare_subject(model, profile, root / model)
            sessions: dict = {}
            for batch in model_batch_sizes:
                for variant in VARIANTS:
                    progress.update(task, description=f"{model} {variant} batch {batch}")
                    rows.append(measure(subject, variant, batch, iterations, max_seconds, sessions, profile))
                    progress.advance(task)
    return add_speedups(rows)


# ---------------------------------------------------------------- report


def _speedup(value: object) -> str:
    return "—" if value is None else f"{value:.2f}×"


COLUMNS: list[Column] = [
    ("variant", "variant", format_value), ("batch", "batch", format_value), ("p50 ms", "p50_ms", format_value),
    ("p95 ms", "p95_ms", format_value), ("p99 ms", "p99_ms", format_value), ("mean ms", "mean_ms", format_value),
    ("items/s", "items_per_s", format_value), ("vs torch fp32", "speedup_vs_torch_fp32", _speedup),
    ("calls", "count", format_value)]


def speedup_plot(rows: list[dict], path: Path, batch: int = 1) -> Path:
    """Grouped bars: speedup vs torch fp32 at `batch`, one group per model, one bar per variant."""
    from matplotlib.figure import Figure  # Agg, no pyplot state, as report.line_plot

    models = list(dict.fromkeys(r["model"] for r in rows))
    fig = Figure(figsize=(7.0, 4.0), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(VARIANTS)
    for i, variant in enumerate(VARIANTS):
        values = {r["model"]: r["speedup_vs_torch_fp32"] for r in rows
                  if r["variant"] == variant and r["batch"] == batch}
        ax.bar(np.arange(len(models)) + (i - (len(VARIANTS) - 1) / 2) * width,
               [values.get(m) or 0.0 for m in models], width, label=variant)
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_xticks(np.arange(len(models)), models)
    ax.set(title=f"Speedup over eager torch fp32, batch {batch} (p50)", ylabel="× torch fp32")
    ax.legend()
    fig.savefig(path, dpi=120)
    return path


@register_section(SECTION, "Model latency: torch vs ONNX Runtime")
def render_model_latency(rows: list[dict], out_dir: Path) -> str:
    """Per model: a table and a p50-vs-batch plot per variant; then a batch-1 speedup bar chart over models."""
    if not rows:
        return "_no rows_"
    parts = [f"Profile {rows[0].get('profile', '?')}, CPU; torch eager under inference_mode (bf16 = autocast), "
             "ONNX Runtime CPUExecutionProvider with one intra-op thread per core; p50 and speedup per call of "
             "one batch, items/s = batch x calls / total seconds."]
    for model in dict.fromkeys(r["model"] for r in rows):
        model_rows = [r for r in rows if r["model"] == model]
        parts += ["", f"### {model}", "", markdown_table(model_rows, COLUMNS)]
        errors = [f"- {r['variant']} batch {r['batch']}: {r['error']}" for r in model_rows if r.get("error")]
        parts += ["", *errors] if errors else []
        series: dict[str, tuple[list, list]] = {}
        for row in sorted(model_rows, key=lambda r: r["batch"]):
            if row["p50_ms"] is not None:
                xs, ys = series.setdefault(row["variant"], ([], []))
                xs.append(row["batch"])
                ys.append(row["p50_ms"])
        if series:
            plot = line_plot(series, out_dir / f"model_latency_{model}.png", f"{model} p50 latency per call",
                             "batch size", "p50 latency (ms)", log_x=True, log_y=True)
            parts += ["", f"![{model} latency]({plot.name})"]
    if any(r["batch"] == 1 for r in rows):
        bars = speedup_plot(rows, out_dir / "model_latency_speedup.png")
        parts += ["", f"![speedup at batch 1]({bars.name})"]
    return "\n".join(parts)


# ---------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.model_latency", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=("tiny", "base"), default="base",
                        help="model sizes: tiny random networks, or the full-size architectures (default %(default)s)")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS),
                        help="models to time (default all)")
    parser.add_argument("--quick", action="store_true",
                        help=f"batches {' and '.join(map(str, QUICK_BATCHES))}; 5 timed calls or 3 s per measurement")
    parser.add_argument("--batches", type=int, nargs="+",
                        help=f"batch sizes (default {', '.join(map(str, DEFAULT_BATCHES))}); sam_decoder is always 1 "
                             f"and sam_encoder stops at {SAM_ENCODER_MAX_BATCH}")
    parser.add_argument("--iterations", type=int, help="timed calls per model, variant and batch (default 50; 5 quick)")
    parser.add_argument("--max-seconds", type=float,
                        help="time budget per model, variant and batch (default 10; 3 with --quick)")
    parser.add_argument("--out", type=Path, help="results folder (default benchmarks/results/<machine-id>)")
    return parser


def main(argv: list[str] | None = None) -> None:
    from benchmarks.report import save_section

    args = _parser().parse_args(argv)
    batches = args.batches or (QUICK_BATCHES if args.quick else DEFAULT_BATCHES)
    iterations = args.iterations if args.iterations is not None else (5 if args.quick else 50)
    max_seconds = args.max_seconds if args.max_seconds is not None else (3.0 if args.quick else 10.0)
    rows = run(args.models, args.profile, batches, iterations, max_seconds)
    print(save_section(SECTION, rows, args.out).read_text())


if __name__ == "__main__":
    main()
