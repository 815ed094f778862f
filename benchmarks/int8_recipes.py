"""int8 recipes side by side: parity on this CPU and on an emulated AVX2 one, and latency here.

    python -m benchmarks.int8_recipes --profile tiny --emulated-cpu Haswell     # all five models, ~6 minutes
    python -m benchmarks.int8_recipes --profile tiny --only tryon_classifier --seeds 0 1 2 3 4 5 --emulated-cpu Haswell
    python -m benchmarks.int8_recipes --profile base                            # no emulation: ~15 minutes here

The recipes, each a change to export.precision's default (which keeps int8 weights in [-64, 64]):
  7-bit (default)   reduce_range: every uint8 x int8 pair fits int16, exact on every kernel
  8-bit             reduce_range off: what snapfit used before; pairs can saturate without VNNI
  uint8 weights     U8U8, the other remedy ONNX Runtime's guide names (dynamic quantisation only: the static
                    classifier's QDQ graph is not comparable with it)
Each recipe goes through the real exporter (export.registry) with its parity check, on this CPU and, with
--emulated-cpu, under QEMU (export.emulation); an export that fails still reports its metrics. Latency is timed
on this CPU for the same recipe applied to the same fp32 export (batch 1 and 8 where the model batches).
Rows go to the `int8_recipes_<profile>` section of benchmarks/results/<machine-id>/ (or --out).
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path

from benchmarks.machine import machine_id, machine_info
from benchmarks.report import load_results, markdown_table, profile_sections, register_section, save_section
from benchmarks.stats import LatencySummary, time_calls
from snapfit import contract

# name -> changes to the default recipe (export.precision.int8_recipe)
RECIPES: dict[str, dict[str, object]] = {
    "7-bit (default)": {},
    "8-bit": {"reduce_range": False},
    "uint8 weights": {"weight_type": "uint8", "reduce_range": False},
}
STATIC_MODELS = (contract.TRYON_CLASSIFIER,)  # calibrated static QDQ; the others are dynamic
BATCHES = (1, 8)
UNBATCHED = (contract.SAM_DECODER,)
SAM_ENCODER_BATCHES = (1,)  # one full-size image is seconds on a CPU


def section(profile: str) -> str:
    return f"int8_recipes_{profile}"


def recipes_for(model: str) -> dict[str, dict[str, object]]:
    if model in STATIC_MODELS:
        return {name: changes for name, changes in RECIPES.items() if changes.get("weight_type") != "uint8"}
    return RECIPES


def parity_row(model: str, profile: str, seed: int, recipe: str, repository: Path,
               emulated_cpu: str | None) -> dict:
    """Exports `model` with `recipe` (int8) through the real exporter; its metrics, passed or not."""
    from export.errors import ExportParityError
    from export.precision import Precision
    from export.registry import resolve
    from export.repository import copy_configs
    from export.request import ExportRequest

    copy_configs(repository)
    request = ExportRequest.for_profile(profile, repository, precision=Precision.int8, seed=seed,
                                        emulated_cpus=(emulated_cpu,) if emulated_cpu else (),
                                        int8_overrides=tuple(RECIPES[recipe].items()))
    try:
        report = resolve(model)(request)
    except ExportParityError as error:
        if error.report is None:
            raise
        report = error.report
    row = {"model": model, "profile": profile, "seed": seed, "recipe": recipe,
           "cpu": report.exporting_cpu.get("instruction_set"), "passed": _passed(report.metrics),
           "metrics": _summary(report.metrics)}
    for check in report.cpu_checks:
        row.update(emulated=check.instruction_set, emulated_passed=check.passed,
                   emulated_metrics=_summary(check.metrics))
    return row


def latency_rows(model: str, profile: str, workdir: Path, iterations: int, max_seconds: float) -> list[dict]:
    """p50 per recipe (and fp32) on this CPU, from one fp32 export converted with each recipe."""
    from benchmarks.model_latency import feed_maker
    from export import classifier, onnx_io
    from export.precision import Precision, convert
    from export.registry import resolve
    from export.repository import copy_configs
    from export.request import ExportRequest

    request = ExportRequest.for_profile(profile, copy_configs(workdir / "fp32"))
    resolve(model)(request)
    fp32_path = request.version_dir(model) / "model.onnx"
    calibration = (classifier.calibration_feeds(ExportRequest.for_profile(profile, workdir, precision=Precision.int8))
                   if model in STATIC_MODELS else None)
    variants = {"fp32": fp32_path}
    for recipe, changes in recipes_for(model).items():
        variants[recipe] = convert(fp32_path, Precision.int8, workdir / f"{model}.{len(variants)}.onnx", calibration,
                                   changes)
    feeds = feed_maker(model, profile, workdir)
    batches = (1,) if model in UNBATCHED else SAM_ENCODER_BATCHES if model == contract.SAM_ENCODER else BATCHES
    rows = []
    for recipe, path in variants.items():
        session, _ = onnx_io.open_session(path)
        for batch in batches:
            inputs = feeds(batch)
            seconds = time_calls(lambda: session.run(None, inputs), warmup=1, iterations=iterations,
                                 max_seconds=max_seconds)
            rows.append({"model": model, "recipe": recipe, "batch": batch,
                         "p50_ms": round(LatencySummary.from_seconds(seconds).p50_s * 1000, 2),
                         "calls": len(seconds)})
    return rows


def _passed(metrics: dict) -> bool:
    return bool(metrics) and all(metric.passed for metric in metrics.values())


def _summary(metrics: dict) -> str:
    """Each metric's value, and the threshold it missed: "cosine=0.9718 (needs >= 0.99), top10_overlap=0.92"."""
    parts = []
    for name, metric in metrics.items():
        text = f"{name}={metric.value:.4g}"
        if not metric.passed:
            text += f" (needs {'>=' if metric.higher_is_better else '<='} {metric.threshold:g})"
        parts.append(text)
    return ", ".join(parts)


def run(models: Sequence[str] = contract.ONNX_MODELS, profile: str = "tiny", seeds: Sequence[int] = (0,),
        emulated_cpu: str | None = None, iterations: int = 10, max_seconds: float = 20.0,
        workdir: Path | None = None) -> list[dict]:
    """Parity rows for every model x seed x recipe, then latency rows (seed 0) per model x recipe x batch."""
    with tempfile.TemporaryDirectory(prefix="snapfit-int8-recipes-") as scratch:
        root = Path(workdir or scratch)
        rows = [parity_row(model, profile, seed, recipe, root / f"{model}-{seed}-{index}", emulated_cpu)
                for model in models for seed in seeds for index, recipe in enumerate(recipes_for(model))]
        for model in models:
            rows += [{"kind": "latency", **row}
                     for row in latency_rows(model, profile, root / f"{model}-latency", iterations, max_seconds)]
    return [row if "kind" in row else {"kind": "parity", **row} for row in rows]


def _render(rows: list[dict], out_dir: Path) -> str:
    parity = [r for r in rows if r["kind"] == "parity"]
    latency = [r for r in rows if r["kind"] == "latency"]
    parts = ["Parity of each recipe through the exporter (same thresholds for all), on this CPU and, where run, "
             "on the emulated one:", "", markdown_table(parity, [
                 (header, key, lambda v: "—" if v is None else str(v)) for header, key in (
                     ("model", "model"), ("seed", "seed"), ("recipe", "recipe"), ("here", "cpu"),
                     ("passed", "passed"), ("metrics here", "metrics"), ("emulated", "emulated"),
                     ("passed", "emulated_passed"), ("metrics emulated", "emulated_metrics"))])]
    if latency:
        parts += ["", "Latency on this CPU (p50 of up to the given calls, one fp32 export converted per recipe):", "",
                  markdown_table(latency, [(h, k, lambda v: "—" if v is None else str(v)) for h, k in (
                      ("model", "model"), ("recipe", "recipe"), ("batch", "batch"), ("p50 ms", "p50_ms"),
                      ("calls", "calls"))])]
    return "\n".join(parts)


for _profile in ("tiny", "base"):
    register_section(section(_profile), f"int8 recipes ({_profile} profile)", names_its_profile=True)(_render)


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.int8_recipes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=("tiny", "base"), default="tiny")
    parser.add_argument("--only", nargs="+", choices=contract.ONNX_MODELS, help="these models (default: all)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="random-weight seeds (default 0)")
    parser.add_argument("--emulated-cpu", help="also check parity under qemu-x86_64 -cpu NAME (e.g. Haswell)")
    parser.add_argument("--iterations", type=int, default=10, help="timed calls per latency row (default 10)")
    parser.add_argument("--out", type=Path, help="results folder (default benchmarks/results/<machine-id>)")
    args = parser.parse_args(argv)
    rows = run(args.only or contract.ONNX_MODELS, args.profile, args.seeds, args.emulated_cpu, args.iterations)
    out = args.out or Path(__file__).parent / "results" / machine_id(machine_info())
    earlier = profile_sections(load_results(out)).get(section(args.profile), [])
    report = save_section(section(args.profile), merged(earlier, rows), out)
    print(f"wrote {report}")
    return report


def merged(previous: list[dict], rows: list[dict]) -> list[dict]:
    """`previous` rows that `rows` do not replace (same kind, model, seed, recipe and batch), then `rows`: runs for
    other models or seeds add to the section."""
    def key(row: dict) -> tuple:
        return tuple(row.get(k) for k in ("kind", "model", "seed", "recipe", "batch"))

    replaced = {key(row) for row in rows}
    return [row for row in previous if key(row) not in replaced] + rows


if __name__ == "__main__":
    main()
