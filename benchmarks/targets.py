"""Issue 12's targets, judged from the rows a `snapfit bench` run measured (no number here is typed in by hand).

    rows = compute(sections, profile="cpu")      # sections: {"http_load": [...], "model_latency": [...], ...}
    render_targets({"cpu": cpu_sections, "base": base_sections})   # Markdown, one value/met column per profile

Targets (HTTP at concurrency 1, p50 unless said otherwise):
  new_photo_click     upload + first click on a new photo (SAM encoder + decoder)   <= 1.0 s, judged on the cpu profile
  cached_click        a click on an already-encoded photo (decoder only)            <= 40 ms
  search_*            HTTP search p50 / the served models' own p50 for that query   <= 1.15x (text, image, text & image)
                      both timed in alternating pairs (benchmarks.search_overhead)
  serving_overhead    Triton-served / in-process ONNX Runtime p50 at batch 1         <= 1.10x for every model
  p99_over_p50        p99 / p50 at concurrency 1 of every served model               <= 2.0
  import_throughput   catalog import rows/s / the served models' combined items/s    >= 90 %
                      (CLIP image + classifier per product, each at its best batch: 1 / (1/clip + 1/classifier))

A target whose rows the run lacks is "not measured" (met None), never met.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from benchmarks.report import Column, format_value, markdown_table, register_summary
from snapfit import contract

Sections = Mapping[str, list[dict]]

HTTP_SECTION = "http_load"
MODEL_SECTION = "model_latency"
PERF_SECTION = "perf_analyzer"
SEARCH_MODELS_SECTION = "search_models"
SEARCH_OVERHEAD_SECTION = "search_overhead"
IMPORT_SECTION = "import_throughput"
INPUT_SECTIONS = {HTTP_SECTION, MODEL_SECTION, PERF_SECTION, SEARCH_MODELS_SECTION, IMPORT_SECTION}
SERVED_VARIANTS = ("triton_fp32", "triton_int8")  # named after the precision served
LOCAL_VARIANT = "ort_fp32"
# below this many calls a p99 is close to the sample's maximum: the report says so
FEW_CALLS = 100


@dataclass(frozen=True)
class Target:
    """key; path: what is measured; goal: the threshold in words; bound and `at_most` (value <= bound) or at least;
    profiles: the profiles it is judged on (None: every profile); source: where the value comes from."""

    key: str
    path: str
    goal: str
    bound: float
    at_most: bool
    source: str
    profiles: tuple[str, ...] | None = None

    def judge(self, value: float | None, profile: str) -> bool | None:
        if value is None or (self.profiles is not None and profile not in self.profiles):
            return None
        return value <= self.bound if self.at_most else value >= self.bound

    def ratio_text(self, value: float) -> str:
        """`value` with two decimals, or three where two would print the bound itself (1.153 is not "1.15", which
        reads as met against "≤ 1.15×")."""
        text = f"{value:.2f}"
        return f"{value:.3f}" if float(text) == self.bound and value != self.bound else text


SEARCH_SCENARIOS = {"search_text": "text search", "search_image": "image search",
                    "search_text_image": "text & image search"}

TARGETS: dict[str, Target] = {t.key: t for t in (
    Target("new_photo_click", "click on a new photo (upload + SAM encoder + decoder), HTTP p50",
           "≤ 1.0 s (cpu profile)", 1.0, True, "http_load sam_click_new_image, concurrency 1", profiles=("cpu",)),
    Target("cached_click", "click on an already-encoded photo, HTTP p50", "≤ 40 ms", 40.0, True,
           "http_load sam_click_cached_image, concurrency 1"),
    *(Target(scenario, f"{what}: HTTP p50 / the served models' p50 for that query", "≤ 1.15×", 1.15, True,
             f"search_overhead {scenario}: HTTP p50 / the same Triton calls' p50 over gRPC, timed in alternating "
             "pairs at concurrency 1 (runs without that section: http_load p50 / search_models p50)")
      for scenario, what in SEARCH_SCENARIOS.items()),
    Target("serving_overhead", "Triton-served / in-process ONNX Runtime p50, batch 1, every model", "≤ 1.10×", 1.10,
           True, "model_latency serving overhead: the served model (triton_fp32, or triton_int8 where served) / its "
           "in-process ONNX Runtime session at batch 1, timed in alternating blocks (runs without them: the two "
           "rows' p50s; worst model shown)"),
    Target("p99_over_p50", "p99 / p50 at concurrency 1, every served model", "≤ 2.0", 2.0, True,
           "perf_analyzer concurrency 1 where the run has a stable level, else model_latency triton_fp32 batch 1 "
           "(worst model shown; per model below)"),
    Target("import_throughput", "catalog import / the served models' combined throughput", "≥ 90 %", 0.90, False,
           "import_throughput import_rows_per_s / (1 / (1/clip_image + 1/tryon_classifier)), each model alone at its "
           "fastest batch among 1, 8 and the import's, timed right before the import in each round; the median round "
           "(runs without those rows: the batches of model_latency triton_fp32)"),
)}


# ---------------------------------------------------------------- measured values


def http_row(sections: Sections, scenario: str, concurrency: int = 1) -> dict | None:
    """The http_load row of `scenario` at `concurrency` with a p50, else None."""
    for row in sections.get(HTTP_SECTION, []):
        if row.get("scenario") == scenario and row.get("concurrency") == concurrency and row.get("p50_ms"):
            return row
    return None


def search_model_row(sections: Sections, scenario: str) -> dict | None:
    for row in sections.get(SEARCH_MODELS_SECTION, []):
        if row.get("scenario") == scenario and row.get("p50_ms"):
            return row
    return None


def serving_overhead(sections: Sections) -> dict[str, float]:
    """model -> Triton p50 / in-process ONNX Runtime p50 at batch 1 (models with both rows)."""
    from benchmarks.model_latency import serving_overhead as overhead_rows

    return {r["model"]: r["ratio"] for r in overhead_rows(sections.get(MODEL_SECTION, []))}


def tail_ratios(sections: Sections) -> dict[str, dict]:
    """model -> {"ratio": p99/p50, "source": ..., "count": calls or None} at concurrency 1, per served model:
    perf_analyzer's level 1 when the run has it without error, else model_latency's triton_fp32 batch-1 row."""
    result: dict[str, dict] = {}
    for row in sections.get(MODEL_SECTION, []):
        if row.get("variant") in SERVED_VARIANTS and row.get("batch") == 1 and row.get("p50_ms") and row.get("p99_ms"):
            result[row["model"]] = {"ratio": row["p99_ms"] / row["p50_ms"], "count": row.get("count"),
                                    "source": "model_latency triton_fp32 batch 1"}
    for row in sections.get(PERF_SECTION, []):
        if (row.get("concurrency") == 1 and row.get("batch", 1) == 1 and not row.get("error")
                and row.get("p50_ms") and row.get("p99_ms")):
            stability = "" if row.get("stable") else ", not judged for stability"
            result[row["model"]] = {"ratio": row["p99_ms"] / row["p50_ms"], "count": None,
                                    "source": f"perf_analyzer concurrency 1{stability}"}
    return result


def best_items_per_s(sections: Sections, model: str) -> tuple[float, int] | None:
    """(items/s, batch) of `model`'s fastest triton_fp32 batch in model_latency, else None."""
    rows = [r for r in sections.get(MODEL_SECTION, [])
            if r.get("model") == model and r.get("variant") in SERVED_VARIANTS and r.get("items_per_s")]
    best = max(rows, key=lambda r: r["items_per_s"], default=None)
    return (best["items_per_s"], best["batch"]) if best else None


def combined_items_per_s(clip_per_s: float, classifier_per_s: float) -> float:
    """Products/s when every product passes through both models one after the other: 1 / (1/a + 1/b)."""
    return 1.0 / (1.0 / clip_per_s + 1.0 / classifier_per_s)


# ---------------------------------------------------------------- the targets


def _row(target: Target, profile: str, value: float | None, shown: str, detail: str = "") -> dict:
    return {"target": target.key, "path": target.path, "goal": target.goal, "profile": profile, "value": value,
            "shown": shown if value is not None else "not measured", "met": target.judge(value, profile),
            "judged": target.profiles is None or profile in target.profiles, "source": target.source,
            "detail": detail}


def _calls(n: object) -> str:
    return f"{n} calls" if n is not None else "calls not counted"


def _click(target: Target, sections: Sections, profile: str, scenario: str, scale: float, unit: str) -> dict:
    row = http_row(sections, scenario)
    if row is None:
        return _row(target, profile, None, "", f"no {scenario} row at concurrency 1")
    value = row["p50_ms"] * scale
    return _row(target, profile, value, f"{value:.3g} {unit} ({_calls(row.get('ok'))})",
                f"p95 {format_value(row.get('p95_ms'))} ms, p99 {format_value(row.get('p99_ms'))} ms")


def search_overhead_row(sections: Sections, scenario: str) -> dict | None:
    for row in sections.get(SEARCH_OVERHEAD_SECTION, []):
        if row.get("scenario") == scenario and row.get("http_p50_ms") and row.get("models_p50_ms"):
            return row
    return None


def _search(target: Target, sections: Sections, profile: str) -> dict:
    paired = search_overhead_row(sections, target.key)
    if paired is not None:
        ratio = paired["http_p50_ms"] / paired["models_p50_ms"]
        return _row(target, profile, ratio, f"{target.ratio_text(ratio)}× ({paired['http_p50_ms']:.4g} / "
                                            f"{paired['models_p50_ms']:.4g} ms, {paired['pairs']} pairs)",
                    f"models: {paired.get('models', '?')}")
    http, models = http_row(sections, target.key), search_model_row(sections, target.key)
    if http is None or models is None:
        missing = " and ".join(s for s, r in ((HTTP_SECTION, http), (SEARCH_MODELS_SECTION, models)) if r is None)
        return _row(target, profile, None, "", f"no {target.key} row in {missing}")
    ratio = http["p50_ms"] / models["p50_ms"]
    shown = f"{target.ratio_text(ratio)}× ({http['p50_ms']:.4g} / {models['p50_ms']:.4g} ms)"
    return _row(target, profile, ratio, shown, f"models: {models.get('models', '?')}")


def _worst(target: Target, profile: str, ratios: Mapping[str, float], what: str) -> dict:
    if not ratios:
        return _row(target, profile, None, "", f"no {what} rows")
    model = max(ratios, key=ratios.get)
    shown = f"max {target.ratio_text(ratios[model])}× ({model}, {len(ratios)} models)"
    return _row(target, profile, ratios[model], shown)


def _import(target: Target, sections: Sections, profile: str) -> dict:
    rows = [r for r in sections.get(IMPORT_SECTION, []) if r.get("import_rows_per_s")]
    if rows and rows[-1].get("best_combined_per_s"):
        row = rows[-1]
        share = row["import_rows_per_s"] / row["best_combined_per_s"]
        return _row(target, profile, share, f"{100 * share:.0f} % ({row['import_rows_per_s']:.3g} of "
                                            f"{row['best_combined_per_s']:.3g} products/s)",
                    f"clip_image {row['clip_image_best_per_s']:.3g}/s at batch {row['clip_image_best_batch']}, "
                    f"tryon_classifier {row['classifier_best_per_s']:.3g}/s at batch {row['classifier_best_batch']} "
                    f"(import step: the median of {row.get('rounds', 1)} rounds, each timing the models right before "
                    "its import)")
    clip, classifier = (best_items_per_s(sections, m) for m in (contract.CLIP_IMAGE, contract.TRYON_CLASSIFIER))
    if not rows or clip is None or classifier is None:
        return _row(target, profile, None, "", "needs the import step and model_latency triton_fp32 rows of "
                                               "clip_image and tryon_classifier")
    combined = combined_items_per_s(clip[0], classifier[0])
    share = rows[-1]["import_rows_per_s"] / combined
    return _row(target, profile, share, f"{100 * share:.0f} % ({rows[-1]['import_rows_per_s']:.3g} of "
                                        f"{combined:.3g} products/s)",
                f"clip_image {clip[0]:.3g}/s at batch {clip[1]}, tryon_classifier {classifier[0]:.3g}/s at batch "
                f"{classifier[1]}")


def compute(sections: Sections, profile: str = "base") -> list[dict]:
    """One row per target: target, path, goal, profile, value (None: not measured), shown (value as text), met
    (True / False, None when not measured or not judged on this profile), judged, source, detail."""
    t = TARGETS
    rows = [_click(t["new_photo_click"], sections, profile, "sam_click_new_image", 1e-3, "s"),
            _click(t["cached_click"], sections, profile, "sam_click_cached_image", 1.0, "ms")]
    rows += [_search(t[scenario], sections, profile) for scenario in SEARCH_SCENARIOS]
    rows.append(_worst(t["serving_overhead"], profile, serving_overhead(sections), "Triton + ONNX Runtime batch-1"))
    rows.append(_worst(t["p99_over_p50"], profile, {m: v["ratio"] for m, v in tail_ratios(sections).items()},
                       "served concurrency-1"))
    rows.append(_import(t["import_throughput"], sections, profile))
    return rows


def model_details(sections: Sections) -> dict[str, dict]:
    """model -> {"overhead": ratio or None, "tail": tail_ratios entry or None}, for the per-model table."""
    overhead, tails = serving_overhead(sections), tail_ratios(sections)
    return {m: {"overhead": overhead.get(m), "tail": tails.get(m)} for m in dict.fromkeys([*overhead, *tails])}


# ---------------------------------------------------------------- report


def _met(row: dict) -> str:
    if row["value"] is None:
        return "—"
    if not row["judged"]:
        return "not judged"
    return "yes" if row["met"] else "**no**"


def _tail(entry: dict | None) -> str:
    if entry is None:
        return "—"
    few = entry["count"] is not None and entry["count"] < FEW_CALLS
    calls = f", {_calls(entry['count'])}" if entry["count"] is not None else ""
    return f"{entry['ratio']:.2f} ({entry['source']}{calls}{', high-percentile estimate' * few})"


def render_targets(profiles: Mapping[str, Sections]) -> str:
    """Markdown: the targets with one measured / met column pair per profile, then the per-model ratios."""
    judged = {p: compute(sections, p) for p, sections in profiles.items()}
    names = list(judged)
    table = []
    for i, target in enumerate(TARGETS.values()):
        row = {"path": target.path, "goal": target.goal, "source": target.source}
        for profile in names:
            cell = judged[profile][i]
            row[f"{profile}:value"], row[f"{profile}:met"] = cell["shown"], _met(cell)
        table.append(row)
    columns: list[Column] = [("target", "path", format_value), ("goal", "goal", format_value)]
    for profile in names:
        columns += [(f"{profile}: measured", f"{profile}:value", format_value), (f"{profile}: met", f"{profile}:met",
                                                                                  format_value)]
    columns.append(("from", "source", format_value))
    parts = ["Each target is computed from this report's own rows (sections below); HTTP rows at concurrency 1, "
             "p50 unless said otherwise. \"not measured\": the run lacks the rows; \"not judged\": the target is set "
             "for another profile.", "", markdown_table(table, columns)]
    details = {p: model_details(s) for p, s in profiles.items()}
    models = list(dict.fromkeys(m for d in details.values() for m in d))
    if models:
        per_model = []
        for model in models:
            row = {"model": model}
            for profile in names:
                entry = details[profile].get(model, {})
                overhead = entry.get("overhead")
                row[f"{profile}:overhead"] = "—" if overhead is None else f"{overhead:.2f}×"
                row[f"{profile}:tail"] = _tail(entry.get("tail"))
            per_model.append(row)
        model_columns: list[Column] = [("model", "model", format_value)]
        for profile in names:
            model_columns += [(f"{profile}: Triton / in-process", f"{profile}:overhead", format_value),
                              (f"{profile}: p99 / p50 at concurrency 1", f"{profile}:tail", format_value)]
        parts += ["", "Per model:", "", markdown_table(per_model, model_columns), "",
                  f"A p99 of fewer than {FEW_CALLS} calls is a high-percentile estimate: it lies close to the "
                  "sample's maximum, so one slow call moves it."]
    notes = [f"- {p}, {r['target']}: {r['detail']}" for p in names for r in judged[p] if r["detail"]]
    if notes:
        parts += ["", "Details:", "", *notes]
    return "\n".join(parts)


@register_summary
def targets_summary(profiles: Mapping[str, Sections]) -> list[str]:
    """The report's targets section (before every other one), when the run has any row the targets read."""
    if not any(INPUT_SECTIONS & set(sections) for sections in profiles.values()):
        return []
    names = ", ".join(profiles)
    return ["", f"## Targets (issue 12), profile{'s' * (len(profiles) > 1)} {names}", "", render_targets(profiles)]
