"""Our end-to-end latencies next to the original project's torch -> ONNX table (its web demo, after model load).

The original deck's table (section 3.4, "Model - 경량화"), per request of its web demo:

| scenario                     | torch          | ONNX, models loaded |
| SAM                          | < 1 s          | < 0.5 s (about -50 %) |
| CLIP text-only or image-only | 4-6 s (avg 5)  | < 1 s (about -80 %)   |
| CLIP text & image            | 10-12 s (avg 11) | < 1.5 s (about -86 %) |

Each of our HTTP load scenarios is matched to the row it corresponds to and compared at concurrency 1 (one shopper
at a time, as the original measured), on p50 and p95.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from benchmarks.report import Column, format_value, markdown_table, register_section

SECTION = "original_comparison"


@dataclass(frozen=True)
class OriginalRow:
    name: str
    torch_s: str  # as the deck states it
    onnx_s: str
    onnx_target_s: float  # the ONNX bound, in seconds


ORIGINAL = {
    "sam": OriginalRow("SAM", "< 1", "< 0.5", 0.5),
    "single_search": OriginalRow("CLIP text-only or image-only search", "4-6 (avg 5)", "< 1", 1.0),
    "text_image_search": OriginalRow("CLIP text & image search", "10-12 (avg 11)", "< 1.5", 1.5),
}
# our HTTP load scenario -> the original row it is compared with
SCENARIO_ROWS = {
    "sam_click_new_image": "sam",
    "sam_click_cached_image": "sam",
    "search_text": "single_search",
    "search_image": "single_search",
    "search_text_image": "text_image_search",
}


def compare(http_rows: list[dict], concurrency: int = 1) -> list[dict]:
    """One row per scenario measured at `concurrency`: the original's torch and ONNX figures, our p50/p95 in
    seconds, whether our p95 is within the original's ONNX bound, and original bound / our p50."""
    rows = []
    for row in http_rows:
        key = SCENARIO_ROWS.get(row.get("scenario"))
        if key is None or row.get("concurrency") != concurrency:
            continue
        original = ORIGINAL[key]
        p50 = row.get("p50_ms") / 1000 if row.get("p50_ms") else None
        p95 = row.get("p95_ms") / 1000 if row.get("p95_ms") else None
        rows.append({"scenario": row["scenario"], "original": original.name, "original_torch_s": original.torch_s,
                     "original_onnx_s": original.onnx_s, "ours_p50_s": p50, "ours_p95_s": p95,
                     "within_original_onnx_bound": None if p95 is None else p95 < original.onnx_target_s,
                     "original_bound_over_ours_p50": original.onnx_target_s / p50 if p50 else None,
                     "errors": row.get("errors")})
    return rows


def _yes_no(value: object) -> str:
    return "—" if value is None else ("yes" if value else "**no**")


def _times(value: object) -> str:
    return "—" if value is None else f"{value:.2f}×"


COLUMNS: list[Column] = [
    ("our scenario", "scenario", format_value), ("original row", "original", format_value),
    ("original torch s", "original_torch_s", format_value), ("original ONNX s", "original_onnx_s", format_value),
    ("ours p50 s", "ours_p50_s", format_value), ("ours p95 s", "ours_p95_s", format_value),
    ("p95 within original ONNX bound", "within_original_onnx_bound", _yes_no),
    ("original bound / our p50", "original_bound_over_ours_p50", _times), ("errors", "errors", format_value)]


@register_section(SECTION, "Against the original project's table")
def render(rows: list[dict], out_dir: Path) -> str:
    if not rows:
        return "_no rows: the HTTP load section did not run at concurrency 1_"
    note = ("The original deck's figures are per request of its web demo after the models were loaded, hardware "
            "unstated; ours are the HTTP load section's concurrency-1 rows on this machine (whole request through "
            "the API: decode, Triton, FAISS, store).")
    return note + "\n\n" + markdown_table(rows, COLUMNS)
