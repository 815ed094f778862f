"""The served models' own latency for each search query: the Triton calls a search makes, straight over gRPC.

    python -m benchmarks.search_models --grpc-url 127.0.0.1:8001 --calls 40

The orchestrator's SearchService (orchestrator/services/search.py) runs, per query:
    search_text         clip_text_embed (the tokenizer + clip_text ensemble), one BYTES text of shape 1x1
    search_image        clip_image on the garment cut-out, resized and cropped client-side: 1xSxSx3 uint8
    search_text_image   clip_text_embed, then clip_image (one after the other, as `query_vector` awaits them; it
                        cuts the garment out while the text call runs)
No SAM model: an image search reuses the uploaded photo and the mask the shopper picked. Each query is timed
sequentially (concurrency 1) with the same inputs the orchestrator sends, every text unique (Triton's response
cache on clip_text_embed never answers). The HTTP search p50 over this p50 is the orchestrator's share
(benchmarks.targets).
"""

from __future__ import annotations

import argparse
import itertools
import secrets
from collections.abc import Callable, Sequence

import numpy as np

from benchmarks.report import Column, format_value, markdown_table, register_section
from benchmarks.stats import LatencySummary, time_calls
from snapfit import contract

SECTION = "search_models"
QUERIES: dict[str, tuple[str, ...]] = {
    "search_text": (contract.CLIP_TEXT_EMBED,),
    "search_image": (contract.CLIP_IMAGE,),
    "search_text_image": (contract.CLIP_TEXT_EMBED, contract.CLIP_IMAGE),
}


def garment_crop(size: int = contract.CLIP_IMAGE_SIZE, seed: int = 0) -> np.ndarray:
    """SxSx3 uint8: the HTTP benchmark's garment photo cut out by the garment's mask (the one its search sends)
    and prepared as the orchestrator does."""
    from benchmarks.http_load import garment_mask, garment_photo
    from orchestrator.cutout import cut_out
    from snapfit.preprocessing.clip import resize_and_crop

    photo, _ = garment_photo(seed)
    return resize_and_crop(cut_out(photo, garment_mask(*photo.shape[:2])), size)


def query_call(grpc_url: str, models: Sequence[str], crop: np.ndarray) -> Callable[[], object]:
    """A no-argument callable making the query's Triton calls in order, each text new (run tag + counter)."""
    import tritonclient.grpc as grpcclient

    from benchmarks.perf_analyzer import loopback_address

    client = grpcclient.InferenceServerClient(loopback_address(grpc_url))
    image = grpcclient.InferInput("image", [1, *crop.shape], "UINT8")
    image.set_data_from_numpy(crop[None])
    outputs = [grpcclient.InferRequestedOutput("embeddings")]
    tag, numbers = secrets.token_hex(4), itertools.count()

    def text_input():
        text = grpcclient.InferInput("text", [1, 1], "BYTES")
        text.set_data_from_numpy(np.array([[f"red summer dress #{tag}-{next(numbers)}".encode()]], dtype=np.object_))
        return [text]

    def call() -> None:
        for model in models:
            inputs = text_input() if model == contract.CLIP_TEXT_EMBED else [image]
            client.infer(model, inputs, outputs=outputs, client_timeout=600)

    return call


def run(grpc_url: str, calls: int = 40, max_seconds: float = 30.0, warmup: int = 2,
        queries: Sequence[str] = tuple(QUERIES)) -> list[dict]:
    """One row per query: scenario, models (in call order), count and mean/p50/p95/p99/min/max_ms; a query that
    fails gets None timings and its error."""
    crop = garment_crop()
    rows = []
    for scenario in queries:
        row = {"scenario": scenario, "models": " + ".join(QUERIES[scenario]), "concurrency": 1}
        try:
            seconds = time_calls(query_call(grpc_url, QUERIES[scenario], crop), warmup=warmup, iterations=calls,
                                 max_seconds=max_seconds)
        except Exception as error:  # noqa: BLE001 - one failing query leaves the others' rows
            rows.append({**row, "count": None, "p50_ms": None, "error": f"{type(error).__name__}: {error}"})
            continue
        summary = LatencySummary.from_seconds(seconds).as_row()
        summary.pop("items_per_s")
        rows.append({**row, **summary, "error": None})
    return rows


COLUMNS: list[Column] = [
    ("query", "scenario", format_value), ("Triton calls", "models", format_value), ("calls", "count", format_value),
    ("p50 ms", "p50_ms", format_value), ("p95 ms", "p95_ms", format_value), ("p99 ms", "p99_ms", format_value),
    ("mean ms", "mean_ms", format_value), ("error", "error", format_value)]


@register_section(SECTION, "Search queries: the served models alone (Triton gRPC, concurrency 1)")
def render_search_models(rows: list[dict], out_dir) -> str:
    if not rows:
        return "_no rows_"
    return ("The Triton calls each HTTP search makes, sent straight over gRPC one query at a time with the inputs the "
            "orchestrator sends (the garment crop, a unique text); the targets divide the HTTP p50 by this p50.\n\n"
            + markdown_table(rows, COLUMNS))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.search_models", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grpc-url", default=f"127.0.0.1:{contract.TRITON_GRPC_PORT}", help="a loopback Triton")
    parser.add_argument("--calls", type=int, default=40, help="timed calls per query (default %(default)s)")
    parser.add_argument("--max-seconds", type=float, default=30.0, help="time budget per query (default %(default)s)")
    args = parser.parse_args(argv)
    print(markdown_table(run(args.grpc_url, args.calls, args.max_seconds), COLUMNS))


if __name__ == "__main__":
    main()
