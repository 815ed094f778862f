"""Benchmark results as files: results.json (raw), report.md (machine, targets, one table per section) and PNG plots.

    results = {"machine": machine_info(), "profiles": {"cpu": {"sections": {"faiss_scale": [row, ...], ...}},
                                                       "base": {"sections": {...}}}}
    write_report(results, Path("benchmarks/results/intel-xeon-2.50ghz-2c-cpu"))

Runs of different model profiles (`snapfit bench --profile cpu`, then `--profile base`) share one machine folder,
each under its own key; the report shows issue 12's targets with one column per profile first (benchmarks.targets),
then every section per profile. A results.json from before profiles ({"machine", "sections"}) loads as the "base"
profile. With more than one profile, each profile's plots go to a subfolder named after it.

A section is a list of flat dict rows. A section with a registered renderer gets its own table and plots; any other
section is rendered as a table of all its fields. To add one:

    @register_section("model_latency", "Model latency vs batch size")
    def _render_model_latency(rows: list[dict], out_dir: Path) -> str:
        plot = line_plot(...)                      # writes out_dir / "model_latency.png"
        return markdown_table(rows, [...]) + f"\n\n![latency]({plot.name})\n"
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

RESULTS_FILE = "results.json"
REPORT_FILE = "report.md"
DEFAULT_PROFILE = "base"  # what a results.json written before profiles measured

# (header, row key, formatter); the formatter gets the raw value, which may be missing (None)
Column = tuple[str, str, Callable[[object], str]]
# rows of one section, the report folder to write plots into -> Markdown body of the section
Renderer = Callable[[list[dict], Path], str]


@dataclass(frozen=True)
class Section:
    title: str
    render: Renderer
    names_its_profile: bool = False  # the title says which profile it measured: a report of several adds nothing


SECTIONS: dict[str, Section] = {}


def register_section(name: str, title: str, names_its_profile: bool = False) -> Callable[[Renderer], Renderer]:
    """Decorator: `render(rows, out_dir) -> markdown` becomes the renderer of section `name` under `title`."""
    def register(render: Renderer) -> Renderer:
        SECTIONS[name] = Section(title, render, names_its_profile)
        return render
    return register


def normalize_results(results: dict) -> dict:
    """{"machine", "profiles": {profile: {"sections": {...}}}}; the pre-profile {"machine", "sections"} layout
    becomes the "base" profile."""
    profiles = {name: {"sections": dict(body.get("sections", {}))}
                for name, body in results.get("profiles", {}).items()}
    if "sections" in results:
        profiles.setdefault(DEFAULT_PROFILE, {"sections": {}})["sections"] = {
            **results["sections"], **profiles.get(DEFAULT_PROFILE, {}).get("sections", {})}
    return {"machine": results.get("machine", {}), "profiles": profiles}


def profile_sections(results: dict, profile: str = DEFAULT_PROFILE) -> dict[str, list[dict]]:
    """The sections of one profile (empty when the results have none of it)."""
    return normalize_results(results)["profiles"].get(profile, {}).get("sections", {})


def load_results(out_dir: Path) -> dict:
    """The results.json already in `out_dir` (so a run adds its section to the others), normalised (see
    `normalize_results`), else an empty result."""
    path = Path(out_dir) / RESULTS_FILE
    return normalize_results(json.loads(path.read_text()) if path.exists() else {})


def save_section(section: str, rows: list[dict], out_dir: Path | None = None, profile: str = DEFAULT_PROFILE) -> Path:
    """Adds one benchmark's rows to the machine's results under `profile` (keeping the other sections and profiles)
    and re-renders the report.

    out_dir: default benchmarks/results/<machine-id>. Returns the report.md path.
    """
    from benchmarks.machine import machine_id, machine_info

    info = machine_info()
    out_dir = Path(out_dir) if out_dir else Path(__file__).parent / "results" / machine_id(info)
    results = load_results(out_dir)
    results["machine"] = info
    results["profiles"].setdefault(profile, {"sections": {}})["sections"][section] = rows
    return write_report(results, out_dir)


# Summaries shown before the sections, each {profile: {section: rows}} -> markdown lines (benchmarks.targets
# registers the targets table when imported; a registry, so this module imports none of its renderers)
SUMMARIES: list[Callable[[dict[str, dict[str, list[dict]]]], list[str]]] = []


def register_summary(render: Callable[[dict[str, dict[str, list[dict]]]], list[str]]):
    SUMMARIES.append(render)
    return render


def write_report(results: dict, out_dir: Path) -> Path:
    """Writes results.json, report.md and each section's PNGs into `out_dir`; returns the report.md path.

    results: {"machine": dict from machine_info(), "profiles": {profile: {"sections": {section name: list of flat
    dict rows}}}}, or the pre-profile {"machine", "sections"} (the "base" profile).
    """
    results = normalize_results(results)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / RESULTS_FILE).write_text(json.dumps(results, indent=2) + "\n")
    profiles = {name: body["sections"] for name, body in results["profiles"].items()}
    parts = ["# Benchmark report", "", machine_markdown(results.get("machine", {}))]
    for summary in SUMMARIES:
        parts += summary(profiles)
    several = len(profiles) > 1
    for profile, sections in profiles.items():
        plots = out_dir / profile if several else out_dir
        plots.mkdir(parents=True, exist_ok=True)
        for name, rows in sections.items():
            section = SECTIONS.get(name, Section(name.replace("_", " ").capitalize(), render_generic))
            body = section.render(rows, plots)
            if several:  # the renderers link their plots by file name, relative to the folder they wrote them in
                body = re.sub(r"(!\[[^\]]*\]\()([^)/]+\))", rf"\g<1>{profile}/\g<2>", body)
            suffix = f" ({profile} profile)" if several and not section.names_its_profile else ""
            parts += ["", f"## {section.title}{suffix}", "", body]
    report = out_dir / REPORT_FILE
    report.write_text("\n".join(parts).rstrip() + "\n")
    return report


def format_value(value: object) -> str:
    """Compact table cell: ints with thousands separators, floats to 4 significant digits, None as a dash."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 10_000 else f"{value:.4g}"
    return str(value).replace("|", "\\|")


def short_count(value: float) -> str:
    """1000 -> "1k", 50_000 -> "50k", 1_000_000 -> "1M", 128 -> "128"."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:g}{suffix}"
    return f"{value:g}"


def mebibytes(value: object) -> str:
    return "—" if value is None else f"{value / 2**20:.4g}"


def markdown_table(rows: Sequence[dict], columns: Sequence[Column] | None = None) -> str:
    """A Markdown table of `rows`; columns default to every key seen, in first-seen order, formatted as-is."""
    if columns is None:
        keys = list(dict.fromkeys(key for row in rows for key in row))
        columns = [(key, key, format_value) for key in keys]
    lines = ["| " + " | ".join(header for header, _, _ in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(fmt(row.get(key)) for _, key, fmt in columns) + " |" for row in rows]
    return "\n".join(lines)


def machine_markdown(info: dict) -> str:
    """The machine as a two-column table; nested dicts (versions) flatten to `versions.torch`."""
    flat: dict[str, object] = {}
    for key, value in info.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{inner}": v for inner, v in value.items()})
        else:
            flat[key] = value
    return markdown_table([{"field": k, "value": v} for k, v in flat.items()])


def render_generic(rows: list[dict], out_dir: Path) -> str:
    """Fallback renderer: every field of every row in one table, no plots."""
    return markdown_table(rows) if rows else "_no rows_"


def line_plot(series: dict[str, tuple[Sequence[float], Sequence[float]]], path: Path, title: str, xlabel: str,
              ylabel: str, log_x: bool = False, log_y: bool = False) -> Path:
    """Writes a PNG with one marked line per series ({label: (xs, ys)}) and returns its path."""
    from matplotlib.figure import Figure  # a bare Figure renders with Agg and never touches pyplot's global state

    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.subplots()
    for label, (xs, ys) in series.items():
        ax.plot(xs, ys, marker="o", label=label)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if log_x:
        ax.set_xscale("log")
        # label the measured sizes themselves ("10k", "1M"), not powers of ten between them
        ticks = sorted({x for xs, _ in series.values() for x in xs})
        ax.set_xticks(ticks, [short_count(x) for x in ticks])
        ax.xaxis.set_minor_formatter("")
    if log_y:
        ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=120)
    return path


def _series_by(rows: list[dict], label_key: str, x_key: str, y_key: str) -> dict[str, tuple[list, list]]:
    series: dict[str, tuple[list, list]] = {}
    for row in sorted(rows, key=lambda r: r[x_key]):
        xs, ys = series.setdefault(str(row[label_key]), ([], []))
        xs.append(row[x_key])
        ys.append(row[y_key])
    return series


@register_section("faiss_scale", "FAISS search vs catalog size")
def render_faiss_scale(rows: list[dict], out_dir: Path) -> str:
    """Table plus two plots: batch-1 search p50 latency vs N, and recall@k vs N, one line per index."""
    if not rows:
        return "_no rows_"
    k = rows[0]["k"]
    columns: list[Column] = [
        ("index", "index", format_value), ("built as", "factory", format_value),
        ("search params", "search_params", format_value), ("N", "n_vectors", format_value),
        ("build s", "build_s", format_value), ("p50 ms", "search_p50_ms", format_value),
        ("p95 ms", "search_p95_ms", format_value), ("p99 ms", "search_p99_ms", format_value),
        ("queries/s", "search_items_per_s", format_value), ("MiB", "memory_bytes", mebibytes),
        (f"recall@{k}", "recall_at_k", format_value)]
    latency = line_plot(_series_by(rows, "index", "n_vectors", "search_p50_ms"), out_dir / "faiss_latency.png",
                        f"FAISS search p50, 1 query, k={k}", "vectors in index (N)", "p50 latency (ms)",
                        log_x=True, log_y=True)
    recall = line_plot(_series_by(rows, "index", "n_vectors", "recall_at_k"), out_dir / "faiss_recall.png",
                       f"FAISS recall@{k} against exact search", "vectors in index (N)", f"recall@{k}", log_x=True)
    note = (f"Synthetic clustered unit vectors, dimension {rows[0]['dim']}, {rows[0]['queries']} queries, "
            f"{rows[0]['faiss_threads']} FAISS threads; latency is one query per search call; "
            "MiB is the serialized index; \"built as\" is the factory after scaling IVF lists to the catalog.")
    return "\n".join([note, "", markdown_table(rows, columns), "",
                      f"![search latency]({latency.name})", "", f"![recall]({recall.name})"])


def register_renderers() -> None:
    """Imports every step's module (and the targets summary) so that each section renders with its own tables and
    plots, also the sections another run (or profile) left in the folder; a module whose libraries this machine
    lacks renders generically. By name, at run time: those modules import this one."""
    import contextlib
    import importlib

    for module in ("faiss_scale", "flops", "http_load", "import_throughput", "int8_recipes", "model_latency",
                   "original", "perf_analyzer", "search_models", "search_overhead", "targets"):
        with contextlib.suppress(ImportError):
            importlib.import_module(f"benchmarks.{module}")


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m benchmarks.report FOLDER`: renders FOLDER/report.md and its plots again from FOLDER/results.json."""
    import argparse


    parser = argparse.ArgumentParser(
        description="Render report.md and its plots again from a folder's results.json (e.g. after restoring "
                    "results.previous.json, which a full `snapfit bench` run leaves there before it replaces a "
                    "profile's results).")
    parser.add_argument("folder", type=Path, help="a results folder, e.g. benchmarks/results/<machine-id>")
    args = parser.parse_args(argv)
    if not (args.folder / RESULTS_FILE).exists():
        parser.error(f"{args.folder / RESULTS_FILE} does not exist")
    # run as `python -m benchmarks.report` this file is `__main__`, a module apart from the `benchmarks.report` that
    # the steps register their sections and the targets summary with: render through that one
    from benchmarks import report

    report.register_renderers()
    print(report.write_report(report.load_results(args.folder), args.folder))


if __name__ == "__main__":
    main()
