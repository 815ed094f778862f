"""How FAISS search scales with the catalog: exact inner product against one large-catalog index, per catalog size.

    python -m benchmarks.faiss_scale --quick --out /tmp/bench
    python -m benchmarks.faiss_scale --factory "HNSW32,Flat" --search-params efSearch=64

For each size N and each index ("Flat", i.e. IndexFlatIP, and `--factory`, default "IVF1024,SQ8" with nprobe=16)
it builds the index on synthetic CLIP-like embeddings and reports build/train seconds, batch-1 search latency at k,
serialized index bytes and recall@k of the index against exact search. Rows are JSON-ready dicts; the report goes
to `--out` (default benchmarks/results/<machine-id>/), next to the sections other benchmarks wrote there.

The default is the index we recommend for large catalogs (SNAPFIT_SEARCH__INDEX_FACTORY, docs/benchmarks.md):
8-bit scalar quantisation keeps recall@10 near 0.99 at a quarter of Flat's memory. On these 512-d vectors at 100k,
"IVF1024,PQ64" searched as fast but kept only 0.46 recall@10, and "HNSW32,SQ8" reached 0.99 with 1.5x the memory.
FAISS trains polysemous codes for "...,PQ<m>" factories unless they end in "np" ("IVF1024,PQ64np"); that training
dominates their build_s (most of it on 2 cores) and only pays off when polysemous_ht is set at search time.
"""

from __future__ import annotations

import argparse
import itertools
import re
import time
from pathlib import Path
from typing import Iterable

import faiss
import numpy as np

from benchmarks.stats import LatencySummary, time_calls

SECTION = "faiss_scale"
EXACT_FACTORY = "Flat"
DEFAULT_FACTORY = "IVF1024,SQ8"
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (10_000, 50_000)
# faiss warns below 39 training points per centroid: fewer leaves centroids poorly placed
MIN_POINTS_PER_CENTROID = 39


def synthetic_embeddings(count: int, dim: int, seed: int, clusters: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Clustered unit vectors, like image embeddings of a catalog (uniform random ones have no near neighbours).

    Each vector is a random unit centre plus isotropic noise of the same norm, then L2-normalised, so members of
    one cluster have cosine ~0.5. Database and queries share centres but draw noise from separate seeded streams.

    Returns:
        (vectors, centres): count x dim float32 L2-normalised, and clusters x dim float32 centres.
    """
    centres = _normalised(np.random.default_rng(seed).standard_normal((clusters, dim), dtype=np.float32))
    return sample_around(centres, count, seed + 1), centres


def sample_around(centres: np.ndarray, count: int, seed: int, chunk: int = 100_000) -> np.ndarray:
    """count x dim float32, L2-normalised: noisy copies of random rows of `centres` (clusters x dim)."""
    rng = np.random.default_rng(seed)
    dim = centres.shape[1]
    out = np.empty((count, dim), dtype=np.float32)
    for start in range(0, count, chunk):  # chunks keep a 1M x 512 catalog from needing float64 temporaries
        stop = min(start + chunk, count)
        labels = rng.integers(0, len(centres), stop - start)
        noise = rng.standard_normal((stop - start, dim), dtype=np.float32) / np.float32(np.sqrt(dim))
        out[start:stop] = _normalised(centres[labels] + noise)
    return out


def _normalised(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def scaled_factory(factory: str, count: int) -> str:
    """`factory` with its IVF list count lowered so training sees >= 39 points per centroid for `count` vectors.

    e.g. scaled_factory("IVF1024,PQ64", 10_000) == "IVF256,PQ64"; strings without "IVF<n>" come back unchanged.
    """
    max_lists = max(1, count // MIN_POINTS_PER_CENTROID)
    return re.sub(r"IVF(\d+)", lambda m: f"IVF{min(int(m.group(1)), max_lists)}", factory, count=1)


def default_search_params(factory: str) -> str:
    """faiss.ParameterSpace string to search `factory` with: nprobe=16 for IVF indexes, nothing otherwise."""
    return "nprobe=16" if "IVF" in factory else ""


def build_index(factory: str, vectors: np.ndarray, search_params: str = "") -> tuple[faiss.Index, float]:
    """Trains (when needed) and fills an inner-product index; returns it and the seconds train + add took.

    vectors: N x dim float32, L2-normalised (inner product is then cosine similarity).
    """
    index = faiss.index_factory(vectors.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    started = time.perf_counter()
    if not index.is_trained:
        index.train(vectors)
    index.add(vectors)
    build_s = time.perf_counter() - started
    if search_params:
        faiss.ParameterSpace().set_index_parameters(index, search_params)
    return index, build_s


def index_bytes(index: faiss.Index) -> int:
    """Size of the serialized index: what it costs on disk and, close enough, in memory."""
    return int(faiss.serialize_index(index).size)


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of each query's true top-k ids that were found; found, truth: Q x k int64 ids."""
    hits = sum(len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth))
    return hits / truth.size


def search_latency(index: faiss.Index, queries: np.ndarray, k: int, warmup: int, iterations: int,
                   max_seconds: float) -> LatencySummary:
    """Latency of one-query searches (1 x dim each), cycling through `queries` (Q x dim float32)."""
    singles = itertools.cycle([queries[i:i + 1] for i in range(len(queries))])
    return LatencySummary.from_seconds(time_calls(lambda: index.search(next(singles), k), warmup=warmup,
                                                  iterations=iterations, max_seconds=max_seconds))


def measure_index(factory: str, vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray | None, k: int,
                  search_params: str, iterations: int, max_seconds: float) -> tuple[dict, np.ndarray]:
    """One result row for `factory` on `vectors` (N x dim) and the Q x k ids it returns for `queries`.

    truth: Q x k exact ids to score recall against; None means this index is the exact one (recall 1.0).
    """
    effective = scaled_factory(factory, len(vectors))
    index, build_s = build_index(effective, vectors, search_params)
    _, found = index.search(queries, k)
    latency = search_latency(index, queries, k, warmup=min(10, len(queries)), iterations=iterations,
                             max_seconds=max_seconds)
    row = {"index": factory, "factory": effective, "search_params": search_params, "n_vectors": len(vectors),
           "dim": vectors.shape[1], "k": k, "queries": len(queries), "faiss_threads": faiss.omp_get_max_threads(),
           "build_s": build_s, **latency.as_row(prefix="search_"), "memory_bytes": index_bytes(index),
           "recall_at_k": 1.0 if truth is None else recall_at_k(found, truth)}
    return row, found


def run(sizes: Iterable[int] = DEFAULT_SIZES, dim: int = 512, queries: int = 100, factory: str = DEFAULT_FACTORY,
        search_params: str | None = None, k: int = 10, iterations: int = 200, max_seconds: float = 10.0,
        seed: int = 0, show_progress: bool = True) -> list[dict]:
    """Rows for the exact index and `factory` at every size, smallest first; see `measure_index` for the fields.

    search_params: faiss.ParameterSpace string for `factory` ("nprobe=16", "efSearch=64"); None picks a default.
    """
    from rich.progress import Progress

    sizes = sorted(sizes)
    if not sizes or sizes[0] < k:
        raise ValueError(f"every size must hold at least k={k} vectors, got {sizes}")
    params = default_search_params(factory) if search_params is None else search_params
    catalog, centres = synthetic_embeddings(sizes[-1], dim, seed)  # smaller catalogs are prefixes of the largest
    query_vectors = sample_around(centres, queries, seed + 2)
    rows = []
    with Progress(disable=not show_progress, transient=True) as progress:
        task = progress.add_task("faiss", total=2 * len(sizes))
        for n in sizes:
            progress.update(task, description=f"{EXACT_FACTORY} N={n:,}")
            exact, truth = measure_index(EXACT_FACTORY, catalog[:n], query_vectors, None, k, "", iterations,
                                         max_seconds)
            progress.update(task, advance=1, description=f"{factory} N={n:,}")
            approximate, _ = measure_index(factory, catalog[:n], query_vectors, truth, k, params, iterations,
                                           max_seconds)
            progress.advance(task)
            rows += [exact, approximate]
    return rows


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.faiss_scale", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help=f"sizes {', '.join(map(str, QUICK_SIZES))} and fewer timed searches "
                             "(about 5 minutes on 2 busy cores, mostly PQ training)")
    parser.add_argument("--sizes", type=int, nargs="+", help=f"catalog sizes (default {DEFAULT_SIZES})")
    parser.add_argument("--dim", type=int, default=512, help="embedding dimension (default %(default)s)")
    parser.add_argument("--queries", type=int, default=100,
                        help="query vectors for recall and latency (default %(default)s)")
    parser.add_argument("--factory", default=DEFAULT_FACTORY,
                        help="faiss.index_factory string of the large-catalog index, e.g. 'HNSW32,Flat' "
                             "(default %(default)s)")
    parser.add_argument("--search-params", help="faiss.ParameterSpace string, e.g. 'nprobe=32' "
                                                "(default: nprobe=16 for IVF indexes)")
    parser.add_argument("--k", type=int, default=10, help="neighbours per search, recall@k (default %(default)s)")
    parser.add_argument("--iterations", type=int, help="timed single-query searches per index and size "
                                                       "(default 200; 50 with --quick)")
    parser.add_argument("--max-seconds", type=float, help="time budget per index and size for the timed searches "
                                                          "(default 10; 2 with --quick)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic vectors (default %(default)s)")
    parser.add_argument("--out", type=Path, help="results folder (default benchmarks/results/<machine-id>)")
    return parser


def main(argv: list[str] | None = None) -> None:
    from benchmarks.report import save_section

    args = _parser().parse_args(argv)
    sizes = args.sizes or (QUICK_SIZES if args.quick else DEFAULT_SIZES)
    iterations = args.iterations if args.iterations is not None else (50 if args.quick else 200)
    max_seconds = args.max_seconds if args.max_seconds is not None else (2.0 if args.quick else 10.0)
    rows = run(sizes, dim=args.dim, queries=args.queries, factory=args.factory, search_params=args.search_params,
               k=args.k, iterations=iterations, max_seconds=max_seconds, seed=args.seed)
    print(save_section(SECTION, rows, args.out).read_text())


if __name__ == "__main__":
    main()
