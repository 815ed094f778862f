"""`FaissIndex`: the product vector index (FAISS, inner product over L2-normalised CLIP embeddings).

Index kinds, chosen by a FAISS `index_factory` string (always built with METRIC_INNER_PRODUCT):
- "Flat" (default): exact search, `IndexIDMap2(IndexFlat)`.
- IVF family ("IVF256,PQ32", "OPQ16,IVF1024,PQ16", "IVF4096,Flat"): for catalogs over ~1M products.
  FAISS stores our vector ids natively; `nprobe` lists are scanned per query.
- anything else ("HNSW32", "HNSW32,SQ8", "PQ32", "SQ8"): wrapped in `IndexIDMap2`; HNSW searches with
  `efSearch = max(ef_search, k)`.

Ids. Each vector lives in a slot (`filters.SlotTable`): an int64 vector id allocated in increasing order,
mapped to the product id it belongs to. Upserting a product gives its new vector a new slot and retires
the old one; removing retires it. Retired vectors are deleted from FAISS when the index supports it (Flat,
IVF, PQ, SQ); HNSW cannot delete, so its retired vectors stay as tombstones that the selector excludes on
every search, until `rebuild`/`rebuild_from` compacts them.

Filters run inside the search: a `ProductFilter` becomes a bitmap `IDSelector` over the slots, passed in
`SearchParameters`/`SearchParametersIVF`/`SearchParametersHNSW`, so FAISS skips non-matching vectors while
scanning; an exact search returns k results whenever k products match, however rare they are. Approximate
indexes only look where they look (nprobe lists, the HNSW beam): with a very selective filter they may
return fewer than k.

Training rule. An index that needs training (IVF, PQ, SQ) is not usable until it has seen data, so vectors
first go to an exact flat *staging* index that answers searches exactly. Once staging holds
`train_min_vectors` vectors (default: FAISS's rule of thumb of 39 points per centroid, i.e. 39 x nlist for
IVF and at least 39 x 256 when 8-bit PQ codebooks are trained; 1,000 otherwise), a new target index is
trained on a copy of them outside the lock (k-means takes minutes at 1M scale; searches and imports go
on), then every staged vector is moved into it under the write lock and staging is dropped. Training uses
whatever arrived first: feed a representative order (a scan sorted by category trains skewed centroids).

Concurrency. Every public method is thread-safe. A writer-preferring readers-writer lock lets many
searches run at once (FAISS releases the GIL while searching) while `upsert`/`remove` take it
exclusively, so a search sees the index either before or after a mutation, never in between: a removed
product is never returned by a search that started after `remove` returned. `rebuild` builds a fresh
index aside (copy-on-write) while searches and mutations continue on the current one; mutations made
meanwhile are journaled and replayed onto the new index before it is swapped in.

Memory. Once an exact index has been quiet for `replica_refresh_s`, the next search moves its float32
vectors onto 2 MiB pages in a background thread (huge_pages.py: a cold scan then misses the TLB on ~10 pages
instead of ~5,000 for 10,000 products, and no longer depends on where the allocator put them); a mutation
that reallocates them makes the search after the next quiet spell do it again.

GPU. With `faiss-gpu` and a visible GPU, exact ("Flat") indexes keep a read-only replica on all GPUs
(`index_cpu_to_all_gpus`) for unfiltered searches. The CPU index stays authoritative (FAISS GPU indexes
cannot delete vectors or take an IDSelector): a mutation drops the replica at once, and it is rebuilt on
the first unfiltered search after `replica_refresh_s` seconds without mutations, so imports run against
the CPU index. This path is untested on a real GPU here (only faiss-cpu is installed); the replica logic
is tested with a CPU clone standing in for the GPU.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import AsyncIterable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from orchestrator.domain import Product, ProductFilter
from orchestrator.errors import InvalidInput, SnapfitError
from orchestrator.index import huge_pages
from orchestrator.index.filters import SlotTable, bitmap_selector

FORMAT = "snapfit-faiss-index"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
# an exact index up to this many bytes of vectors (~16,000 products of 512 floats) is searched on the caller's
# event loop: ~1 ms after a model call has evicted the caches, short enough to hold the loop for, and it saves the
# hand-off to a worker thread and back (with the vectors on huge pages, -0.25 ms a text search in an A/B)
INLINE_SEARCH_MAX_BYTES = 32 * 1024 * 1024
NORM_TOLERANCE = 1e-2  # fp16 CLIP embeddings normalised in fp16 land within ~1e-3 of unit length

Replicator = Callable[[faiss.Index], faiss.Index]


class IndexFileError(SnapfitError):
    """A persisted index is missing, corrupt, of another format version or dimension, or could not be saved."""

    code = "index_file_error"


@dataclass(frozen=True)
class IndexManifest:
    """What `save` wrote next to the index files; `FaissIndex.read_manifest` reads it without loading."""

    format_version: int
    dim: int
    factory: str
    count: int
    generation: int
    saved_at_s: float
    n_slots: int
    n_tombstones: int
    staging: bool
    train_min_vectors: int
    files: dict[str, dict]


class _ReadWriteLock:
    """Many readers or one writer; a waiting writer blocks new readers so imports are not starved."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if self._readers == 0:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class _Core:
    """FAISS index + slot table + product id map; single-threaded (FaissIndex does the locking).

    index: the target index (our ids inside); staging: exact IndexIDMap2(Flat) used until `index` is trained.
    """

    def __init__(self, dim: int, factory: str, train_min_vectors: int | None):
        self.dim, self.factory = dim, factory
        self.index = _new_index(dim, factory)
        self.removable = _supports_removal(self.index)
        self.train_min_vectors = train_min_vectors or _default_train_min(self.index)
        self.staging = None if self.index.is_trained else _new_index(dim, "Flat")
        self.table = SlotTable()
        self.slot_of: dict[str, int] = {}
        self.n_tombstones = 0

    @property
    def searched(self) -> faiss.Index:
        return self.index if self.staging is None else self.staging

    def upsert(self, products: Sequence[Product], vectors: np.ndarray) -> None:
        """products: N with distinct ids; vectors: NxD float32, validated."""
        self._retire([self.slot_of[p.product_id] for p in products if p.product_id in self.slot_of])
        slots = self.table.append(products)
        self.slot_of.update(zip((p.product_id for p in products), slots.tolist()))
        self.searched.add_with_ids(vectors, slots)

    def remove(self, product_ids: Iterable[str]) -> int:
        slots = [self.slot_of.pop(pid) for pid in set(product_ids) if pid in self.slot_of]
        self._retire(slots)
        return len(slots)

    @property
    def training_due(self) -> bool:
        return self.staging is not None and self.staging.ntotal >= self.train_min_vectors

    def staged_vectors(self) -> np.ndarray:
        """A copy of the staging vectors, NxD float32, to train on."""
        return self.staging.index.reconstruct_n(0, self.staging.ntotal)

    def trained_index(self, vectors: np.ndarray) -> faiss.Index:
        """A new, empty target index trained on `vectors` (touches no shared state)."""
        index = _new_index(self.dim, self.factory)
        index.train(vectors)
        return index

    def adopt(self, index: faiss.Index) -> None:
        """Moves every staged vector into the trained `index`, which becomes the searched index."""
        index.add_with_ids(self.staged_vectors(), faiss.vector_to_array(self.staging.id_map).astype(np.int64))
        self.index, self.staging = index, None

    def train_if_due(self) -> None:
        if self.training_due:
            self.adopt(self.trained_index(self.staged_vectors()))

    def search(self, queries: np.ndarray, k: int, product_filter: ProductFilter | None,
               nprobe: int, ef_search: int, replica: faiss.Index | None) -> list[list[tuple[str, float]]]:
        """queries: QxD float32; returns Q lists of (product id, inner product), best first."""
        # OpenMP's thread count is per calling thread: a request's worker thread starts with one per core,
        # whose spinning costs a single query more than it parallelises
        faiss.omp_set_num_threads(1)
        selector, n_candidates = None, len(self.slot_of)
        if (product_filter is not None and not product_filter.is_empty) or self.n_tombstones:
            mask = self.table.mask(product_filter)
            n_candidates = int(np.count_nonzero(mask))
            selector = bitmap_selector(mask)
        k = min(k, n_candidates)
        if k == 0:
            return [[] for _ in range(len(queries))]
        if replica is not None and selector is None:
            scores, slots = replica.search(queries, k)
        else:
            scores, slots = self.searched.search(queries, k, params=self._params(selector, k, nprobe, ef_search))
        return [self._hits(row_scores, row_slots) for row_scores, row_slots in zip(scores, slots)]

    def _hits(self, scores: np.ndarray, slots: np.ndarray) -> list[tuple[str, float]]:
        ids = self.table.product_ids
        hits = [(ids[s], float(d)) for d, s in zip(scores.tolist(), slots.tolist()) if s >= 0]
        # FAISS leaves the order of equal scores unspecified; product id order makes ties deterministic
        return sorted(hits, key=lambda hit: (-hit[1], hit[0]))

    def _params(self, selector: faiss.IDSelector | None, k: int, nprobe: int, ef_search: int):
        if self.staging is None and faiss.try_extract_index_ivf(self.index) is not None:
            params = faiss.SearchParametersIVF(nprobe=nprobe)
        elif self.staging is None and _is_hnsw(self.index):
            params = faiss.SearchParametersHNSW(efSearch=max(ef_search, k))
        else:
            params = faiss.SearchParameters()
        if selector is not None:
            params.sel = selector
        return params

    def _retire(self, slots: list[int]) -> None:
        if not slots:
            return
        retired = np.asarray(slots, dtype=np.int64)
        self.table.retire(retired)
        if self.staging is not None or self.removable:
            self.searched.remove_ids(retired)
        else:
            self.n_tombstones += len(slots)


class FaissIndex:
    """Product vector index: upsert/remove products, k-NN search by inner product with filters, persistence.

    dim: embedding size D. factory: FAISS index_factory string (module docstring: kinds and training rule).
    nprobe: IVF lists scanned per query. ef_search: HNSW beam width (at least k is used).
    train_min_vectors: vectors to collect before training (None: FAISS's rule of thumb for the factory).
    replicate: builds a read-only search replica of the CPU index; "auto" = all GPUs for "Flat" when
    faiss-gpu sees a GPU, else none. replica_refresh_s: quiet time after a mutation before re-replicating.
    Thread-safe: searches run concurrently; mutations are exclusive.
    """

    def __init__(self, dim: int, factory: str = "Flat", *, nprobe: int = 16, ef_search: int = 128,
                 train_min_vectors: int | None = None, replicate: Replicator | str | None = "auto",
                 replica_refresh_s: float = 1.0):
        if dim < 1 or nprobe < 1 or ef_search < 1:
            raise ValueError("dim, nprobe and ef_search must be positive")
        self._core = _Core(dim, factory, train_min_vectors)
        self.nprobe, self.ef_search = nprobe, ef_search
        self._replicate = _gpu_replicator(factory) if replicate == "auto" else replicate
        self.replica_refresh_s = replica_refresh_s
        self._replica: faiss.Index | None = None
        self._mutated_at_s = float("-inf")
        self._lock = _ReadWriteLock()
        self._replica_lock = threading.Lock()
        self._save_lock = threading.Lock()
        self._rebuild_lock = threading.Lock()
        self._train_lock = threading.Lock()
        self._journal: list[tuple[str, object]] | None = None
        self._pages_due = True  # the exact vectors changed since they were last moved onto huge pages

    @property
    def dim(self) -> int:
        return self._core.dim

    @property
    def factory(self) -> str:
        return self._core.factory

    @property
    def is_trained(self) -> bool:
        """False while vectors still sit in the exact staging index, waiting for enough to train on."""
        with self._lock.read():
            return self._core.staging is None

    def __len__(self) -> int:
        with self._lock.read():
            return len(self._core.slot_of)

    @property
    def searches_inline(self) -> bool:
        """Whether a search is quick enough for the caller's event loop: an exact index of at most
        INLINE_SEARCH_MAX_BYTES of vectors (a search may still wait for a mutation's write lock, ~1 ms)."""
        core = self._core
        return core.factory == "Flat" and core.index.ntotal * core.dim * 4 <= INLINE_SEARCH_MAX_BYTES

    def __contains__(self, product_id: object) -> bool:
        with self._lock.read():
            return product_id in self._core.slot_of

    def upsert(self, products: Sequence[Product]) -> None:
        """Adds products or replaces their vectors and metadata (the last one wins within a call).

        Each product.embedding: D float32, L2-normalised; raises InvalidInput (nothing changed) when an
        embedding is missing, of another size, non-finite or not of unit length, or a product id is empty.
        """
        products, vectors = _validated(products, self.dim)
        if not products:
            return
        with self._lock.write():
            self._core.upsert(products, vectors)
            self._after_mutation(("upsert", (products, vectors)))
            core = self._core
        self._train_if_due(core)

    def remove(self, product_ids: Iterable[str]) -> int:
        """Removes products (unknown ids are ignored); returns how many were in the index."""
        product_ids = list(product_ids)
        with self._lock.write():
            removed = self._core.remove(product_ids)
            self._after_mutation(("remove", product_ids))
        return removed

    def search(self, queries: np.ndarray, k: int,
               filter: ProductFilter | None = None) -> list[list[tuple[str, float]]]:  # noqa: A002
        """k nearest products of each query by inner product, among those passing `filter`.

        queries: QxD float32 (L2-normalised for cosine scores). Returns Q lists of (product id, score),
        best first, ties by product id; fewer than k when fewer products match.
        """
        queries = _validated_queries(queries, self.dim)
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise InvalidInput(f"k must be a positive integer, got {k!r}")
        with self._lock.read():
            unfiltered = filter is None or filter.is_empty
            replica = self._current_replica() if unfiltered else None
            self._settle_pages()
            return self._core.search(queries, int(k), filter, self.nprobe, self.ef_search, replica)

    def rebuild(self, batches: Iterable[Sequence[Product]]) -> int:
        """Replaces the contents with `batches` (e.g. a store scan), built aside and swapped in at the end.

        Products without an embedding are skipped; an invalid embedding raises InvalidInput and leaves the
        current index untouched. Mutations made during the rebuild are replayed onto the new index.
        Returns the number of products indexed. One rebuild at a time (RuntimeError otherwise).
        """
        core = self._begin_rebuild()
        try:
            for batch in batches:
                self._add_to(core, batch)
        except BaseException:
            self._end_rebuild(None)
            raise
        return self._end_rebuild(core)

    async def rebuild_from(self, batches: Iterable[Sequence[Product]] | AsyncIterable[Sequence[Product]]) -> int:
        """`rebuild` for the event loop: accepts a sync or async iterable; FAISS work runs in worker threads."""
        if not isinstance(batches, AsyncIterable):
            return await asyncio.to_thread(self.rebuild, batches)
        core = self._begin_rebuild()
        try:
            async for batch in batches:
                await asyncio.to_thread(self._add_to, core, batch)
        except BaseException:
            self._end_rebuild(None)
            raise
        return await asyncio.to_thread(self._end_rebuild, core)

    def save(self, path: Path, generation: int) -> None:
        """Persists the index in directory `path`, atomically: data files first, then the manifest.

        generation: the caller's store-generation marker, returned by `load` to decide staleness.
        On failure raises IndexFileError and the previously saved index at `path` stays loadable.
        Holds the read lock while writing (about 1 s per 100k x 512 flat vectors here): searches go on,
        mutations wait, and so do searches that arrive behind a waiting mutation. One process per `path`.
        """
        with self._save_lock, self._lock.read():
            _write(self._core, Path(path), generation)

    @staticmethod
    def read_manifest(path: Path) -> IndexManifest | None:
        """The manifest saved at `path` (cheap, loads no vectors); None when nothing was saved there."""
        return _read_manifest(Path(path))

    @classmethod
    def load(cls, path: Path, *, dim: int | None = None, **options) -> tuple[FaissIndex, int]:
        """Loads what `save` wrote; returns (index, generation). options: as for the constructor.

        Raises IndexFileError when nothing is saved there, the files are corrupt or truncated, the format
        version is unknown, or `dim` is given and differs from the saved dimension.
        """
        path = Path(path)
        manifest = _read_manifest(path)
        if manifest is None:
            raise IndexFileError(f"no saved index at {path} ({MANIFEST_NAME} missing)")
        if dim is not None and manifest.dim != dim:
            raise IndexFileError(f"index at {path} has dimension {manifest.dim}, expected {dim}")
        index = cls(manifest.dim, manifest.factory, train_min_vectors=manifest.train_min_vectors, **options)
        index._core = _read_core(path, manifest)
        return index, manifest.generation

    def _train_if_due(self, core: _Core) -> None:
        """Trains outside the lock (k-means can take minutes at 1M scale), so searches go on meanwhile.

        Vectors staged during training are moved too: `adopt` runs under the write lock on the live state.
        """
        if not self._train_lock.acquire(blocking=False):
            return  # another thread is training this index
        try:
            with self._lock.read():
                if core is not self._core or not core.training_due:
                    return
                vectors = core.staged_vectors()
            trained = core.trained_index(vectors)
            with self._lock.write():
                if core is self._core and core.staging is not None:
                    core.adopt(trained)
                    self._after_mutation(None)
        finally:
            self._train_lock.release()

    def _add_to(self, core: _Core, batch: Sequence[Product]) -> None:
        """Rebuild step on a private core: no lock needed, training inline."""
        products, vectors = _validated([p for p in batch if p.embedding is not None], self.dim)
        if products:
            core.upsert(products, vectors)
            core.train_if_due()

    def _begin_rebuild(self) -> _Core:
        core = _Core(self.dim, self.factory, self._core.train_min_vectors)
        if not self._rebuild_lock.acquire(blocking=False):
            raise RuntimeError("a rebuild of this index is already running")
        with self._lock.write():
            self._journal = []
        return core

    def _end_rebuild(self, core: _Core | None) -> int:
        try:
            with self._lock.write():
                if core is not None:
                    for op, args in self._journal:
                        if op == "upsert":
                            core.upsert(*args)
                        else:
                            core.remove(args)
                    core.train_if_due()
                    self._core = core
                    self._after_mutation(None)
                self._journal = None
                return len(self._core.slot_of)
        finally:
            self._rebuild_lock.release()

    def _after_mutation(self, entry: tuple[str, object] | None) -> None:
        """Under the write lock: journal the mutation for a running rebuild, drop the stale replica."""
        if entry is not None and self._journal is not None:
            self._journal.append(entry)
        self._replica = None
        self._pages_due = True
        self._mutated_at_s = time.monotonic()

    def _settle_pages(self) -> None:
        """Under the read lock: once the index has been quiet long enough, moves an exact index's vectors onto
        huge pages in a background thread (the module docstring's Memory)."""
        if not self._pages_due or time.monotonic() - self._mutated_at_s < self.replica_refresh_s:
            return
        with self._replica_lock:
            if not self._pages_due:
                return
            self._pages_due = False
        region = _flat_vectors(self._core.searched)
        if region is not None:
            threading.Thread(target=huge_pages.collapse, args=region, name="faiss-huge-pages", daemon=True).start()

    def _current_replica(self) -> faiss.Index | None:
        """Under the read lock: the search replica, (re)built once the index has been quiet long enough."""
        if self._replicate is None or self._core.staging is not None or self._core.n_tombstones:
            return None
        if self._replica is None and time.monotonic() - self._mutated_at_s >= self.replica_refresh_s:
            with self._replica_lock:
                if self._replica is None:
                    self._replica = self._replicate(self._core.index)
        return self._replica


def _new_index(dim: int, factory: str) -> faiss.Index:
    if "IDMap" in factory:
        raise ValueError(f"index factory {factory!r}: leave out IDMap, FaissIndex maps ids itself")
    try:
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as e:
        raise ValueError(f"invalid FAISS index factory string {factory!r}: {e}") from e
    # IVF indexes store arbitrary ids themselves; the others number vectors 0..n-1 and need the map
    return index if faiss.try_extract_index_ivf(index) is not None else faiss.IndexIDMap2(index)


def _flat_vectors(index: faiss.Index) -> tuple[int, int] | None:
    """(address, bytes) of an exact `IndexIDMap2(IndexFlat)`'s float32 vectors; None for other kinds of index."""
    flat = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap2) else None
    if not isinstance(flat, faiss.IndexFlat) or flat.ntotal == 0:
        return None
    vectors = faiss.rev_swig_ptr(flat.get_xb(), flat.ntotal * flat.d)
    return vectors.ctypes.data, vectors.nbytes


def _supports_removal(index: faiss.Index) -> bool:
    try:
        index.remove_ids(np.empty(0, dtype=np.int64))
    except RuntimeError:
        return False
    return True


def _is_hnsw(index: faiss.Index) -> bool:
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap2) else index
    return isinstance(inner, faiss.IndexHNSW)


def _default_train_min(index: faiss.Index) -> int:
    if index.is_trained:
        return 0
    ivf = faiss.try_extract_index_ivf(index)
    n = 39 * ivf.nlist if ivf is not None else 1000
    # k-means wants ~39 points per centroid: nlist coarse centroids, ksub per PQ sub-quantiser
    pq = getattr(faiss.downcast_index(ivf if ivf is not None else index.index), "pq", None)
    return max(n, 39 * pq.ksub) if pq is not None else n


def _gpu_replicator(factory: str) -> Replicator | None:
    if factory != "Flat" or not hasattr(faiss, "index_cpu_to_all_gpus") or faiss.get_num_gpus() == 0:
        return None
    return faiss.index_cpu_to_all_gpus


def _validated(products: Sequence[Product], dim: int) -> tuple[list[Product], np.ndarray]:
    """Deduplicated products (last wins) and their embeddings, NxD float32; raises InvalidInput."""
    products = list(products)
    last = {p.product_id: i for i, p in enumerate(products)}
    kept = [products[i] for i in sorted(last.values())]
    vectors = np.empty((len(kept), dim), dtype=np.float32)
    for row, p in enumerate(kept):
        if not isinstance(p.product_id, str) or not p.product_id:
            raise InvalidInput(f"product id must be a non-empty string, got {p.product_id!r}")
        if p.embedding is None:
            raise InvalidInput(f"product {p.product_id!r} has no embedding")
        try:
            e = np.asarray(p.embedding, dtype=np.float32)
        except (TypeError, ValueError) as err:
            raise InvalidInput(f"product {p.product_id!r}: embedding is not numeric ({err})") from err
        if e.shape != (dim,):
            raise InvalidInput(f"product {p.product_id!r}: embedding has shape {e.shape}, expected ({dim},)")
        vectors[row] = e
        if not np.all(np.isfinite(vectors[row])):
            raise InvalidInput(f"product {p.product_id!r}: embedding has non-finite values")
        if abs(float(np.linalg.norm(vectors[row])) - 1.0) > NORM_TOLERANCE:
            raise InvalidInput(f"product {p.product_id!r}: embedding is not L2-normalised")
    return kept, vectors


def _validated_queries(queries: np.ndarray, dim: int) -> np.ndarray:
    try:
        q = np.ascontiguousarray(queries, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise InvalidInput(f"queries are not a numeric array ({e})") from e
    if q.ndim != 2 or q.shape[1] != dim:
        raise InvalidInput(f"queries must have shape (Q, {dim}), got {q.shape}")
    if not np.all(np.isfinite(q)):
        raise InvalidInput("queries have non-finite values")
    return q


# ---- persistence: data files under fresh names, then the manifest replaced atomically (the commit point)

def _write(core: _Core, path: Path, generation: int) -> None:
    token = f"{int(generation)}-{uuid.uuid4().hex[:12]}"
    names = {"index": f"index-{token}.faiss", "metadata": f"metadata-{token}.npz"}
    try:
        path.mkdir(parents=True, exist_ok=True)
        files = {
            "index": _write_file(path / names["index"], lambda f: _write_faiss(core.searched, f)),
            "metadata": _write_file(path / names["metadata"], lambda f: np.savez(f, **core.table.to_arrays())),
        }
        for role, name in names.items():
            files[role]["name"] = name
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "dim": core.dim, "factory": core.factory,
            "count": len(core.slot_of), "generation": int(generation), "saved_at_s": time.time(),
            "n_slots": core.table.n_slots, "n_tombstones": core.n_tombstones, "staging": core.staging is not None,
            "train_min_vectors": core.train_min_vectors, "files": files,
        }
        tmp = path / f"{MANIFEST_NAME}.tmp-{token}"
        _write_file(tmp, lambda f: f.write(json.dumps(manifest, indent=2).encode()))
        os.replace(tmp, path / MANIFEST_NAME)
        _fsync_dir(path)
    except (OSError, RuntimeError, ValueError) as e:
        _remove_quietly(path / n for n in [*names.values(), f"{MANIFEST_NAME}.tmp-{token}"])
        raise IndexFileError(f"could not save the index to {path}: {e}") from e
    _remove_quietly(p for p in path.iterdir() if p.name != MANIFEST_NAME and p.name not in names.values()
                    and p.name.startswith(("index-", "metadata-", f"{MANIFEST_NAME}.tmp-")))


def _write_file(path: Path, write: Callable) -> dict:
    """Writes through `write(file)`, fsyncs; returns {"bytes", "sha256"} of what is on disk."""
    with open(path, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    return {"bytes": path.stat().st_size, "sha256": _sha256(path)}


def _write_faiss(index: faiss.Index, f) -> None:
    writer = faiss.PyCallbackIOWriter(lambda b: f.write(b))
    faiss.write_index(index, writer)
    del writer  # flushes FAISS's buffer into f


def _read_manifest(path: Path) -> IndexManifest | None:
    file = path / MANIFEST_NAME
    if not file.exists():
        return None
    try:
        raw = json.loads(file.read_text())
        if raw.get("format") != FORMAT:
            raise IndexFileError(f"{file} is not a snapfit FAISS index manifest")
        if raw.get("format_version") != FORMAT_VERSION:
            raise IndexFileError(
                f"{file} has format version {raw.get('format_version')}; this build reads {FORMAT_VERSION}")
        return IndexManifest(**{k: raw[k] for k in IndexManifest.__dataclass_fields__})
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise IndexFileError(f"unreadable index manifest {file}: {e}") from e


def _read_core(path: Path, m: IndexManifest) -> _Core:
    for role in ("index", "metadata"):
        file, expected = path / m.files[role]["name"], m.files[role]
        if not file.exists():
            raise IndexFileError(f"index {role} file {file} is missing")
        if file.stat().st_size != expected["bytes"] or _sha256(file) != expected["sha256"]:
            raise IndexFileError(f"index {role} file {file} is corrupt or truncated (size or checksum mismatch)")
    core = _Core(m.dim, m.factory, m.train_min_vectors)
    try:
        index = faiss.read_index(str(path / m.files["index"]["name"]))
        with np.load(path / m.files["metadata"]["name"], allow_pickle=False) as npz:
            core.table = SlotTable.from_arrays({k: npz[k] for k in npz.files})
    except (RuntimeError, ValueError, KeyError, OSError) as e:
        raise IndexFileError(f"cannot read the index at {path}: {e}") from e
    if index.d != m.dim or index.metric_type != faiss.METRIC_INNER_PRODUCT:
        raise IndexFileError(f"index at {path}: FAISS file does not match the manifest (dimension or metric)")
    if m.staging:
        core.staging = index
    else:
        core.index, core.staging = index, None
    core.n_tombstones = m.n_tombstones
    alive = np.flatnonzero(core.table.alive)
    core.slot_of = {core.table.product_ids[s]: s for s in alive.tolist()}
    if (len(core.slot_of) != len(alive) or len(alive) != m.count or core.table.n_slots != m.n_slots
            or index.ntotal != m.count + m.n_tombstones):
        raise IndexFileError(f"index at {path}: vector count, metadata and manifest disagree")
    return core


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_quietly(paths: Iterable[Path]) -> None:
    for p in paths:
        try:
            p.unlink()
        except OSError:
            pass  # a leftover file costs disk space only; the manifest decides what is loaded
