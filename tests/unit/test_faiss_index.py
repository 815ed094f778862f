"""FaissIndex against a brute-force numpy reference: exact search, filters, mutation, persistence, concurrency."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import faiss
import numpy as np
import pytest

from orchestrator.domain import Product, ProductFilter
from orchestrator.errors import InvalidInput
from orchestrator.index import FaissIndex, IndexFileError, faiss_index, huge_pages
from tests.support.pages import anon_huge_kib

DIM = 32
CATEGORIES = ["top", "bottom", "dress", "outer"]
BRANDS = ["무신사 스탠다드", "acme", "zeta", "nova", "orbit"]


def unit_vectors(rng: np.random.Generator, n: int, dim: int = DIM, clusters: int = 0) -> np.ndarray:
    """n x dim float32, L2-normalised; Gaussian blobs around `clusters` centres when clusters > 0."""
    if clusters:
        centres = rng.standard_normal((clusters, dim))
        x = centres[rng.integers(0, clusters, n)] + 0.5 * rng.standard_normal((n, dim))
    else:
        x = rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def catalog(rng: np.random.Generator, vectors: np.ndarray, prefix: str = "p") -> list[Product]:
    """One product per vector with random category, brand, price (10 % without) and try-on flag."""
    products = []
    for i, v in enumerate(vectors):
        price = None if rng.random() < 0.1 else round(float(rng.uniform(5, 200)), 2)
        products.append(Product(
            product_id=f"{prefix}{i:05d}", name=f"item {i}", image=f"{i}.jpg",
            category=CATEGORIES[rng.integers(len(CATEGORIES))], brand=BRANDS[rng.integers(len(BRANDS))],
            price=price, tryon_ready=bool(rng.random() < 0.3), embedding=v,
        ))
    return products


def brute_force_scores(products: list[Product], query: np.ndarray, flt: ProductFilter | None = None) -> dict:
    """product id -> inner product with `query`, over the products passing `flt` (float64 reference)."""
    return {p.product_id: float(np.dot(p.embedding.astype(np.float64), query)) for p in products
            if flt is None or flt.matches(p)}


def assert_top_k(got: list[tuple[str, float]], reference: dict[str, float], k: int) -> None:
    """`got` is a correct top-k of `reference`: its scores are the k best, and each id carries its own score.

    This is exact top-k up to ties: equal scores may come back as any of the tied ids.
    """
    best = sorted(reference.values(), reverse=True)[:k]
    assert len(got) == len(best)
    np.testing.assert_allclose([s for _, s in got], best, atol=1e-5)
    ids = [pid for pid, _ in got]
    assert len(set(ids)) == len(ids)
    for pid, score in got:
        assert pid in reference
        assert abs(reference[pid] - score) < 1e-5


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def products(rng) -> list[Product]:
    return catalog(rng, unit_vectors(rng, 2000))


@pytest.fixture
def index(products) -> FaissIndex:
    ix = FaissIndex(DIM)
    ix.upsert(products)
    return ix


# ---- exact search

@pytest.mark.parametrize("n_queries", [1, 25])  # FAISS scans one by one below 20 queries, with BLAS above
def test_exact_search_equals_a_brute_force_numpy_search(index, products, rng, n_queries):
    queries = unit_vectors(rng, n_queries)
    results = index.search(queries, k=10)
    assert len(results) == n_queries
    for got, q in zip(results, queries):
        reference = brute_force_scores(products, q)
        assert_top_k(got, reference, 10)
        assert [pid for pid, _ in got] == sorted(reference, key=lambda pid: -reference[pid])[:10]


def test_tied_scores_come_back_ordered_by_product_id(rng):
    v = unit_vectors(rng, 1)[0]
    others = unit_vectors(rng, 50)
    ix = FaissIndex(DIM)
    twins = [Product(product_id=pid, name="", image="", embedding=v) for pid in ["d", "b", "e", "a", "c"]]
    ix.upsert(twins + [Product(product_id=f"o{i}", name="", image="", embedding=e) for i, e in enumerate(others)])

    all_twins = ix.search(v[None], k=5)[0]
    some_twins = ix.search(v[None], k=3)[0]

    assert [pid for pid, _ in all_twins] == ["a", "b", "c", "d", "e"]
    np.testing.assert_allclose([s for _, s in all_twins], 1.0, atol=1e-5)
    ids = [pid for pid, _ in some_twins]
    assert ids == sorted(ids) and set(ids) <= {"a", "b", "c", "d", "e"}


def test_search_returns_fewer_than_k_when_the_index_holds_fewer_products(rng):
    ix = FaissIndex(DIM)
    assert ix.search(unit_vectors(rng, 2), k=5) == [[], []]
    ix.upsert(catalog(rng, unit_vectors(rng, 3)))
    assert [len(r) for r in ix.search(unit_vectors(rng, 2), k=5)] == [3, 3]


# ---- filters

FILTERS = {
    "category": ProductFilter(categories=frozenset({"dress"})),
    "two brands": ProductFilter(brands=frozenset({"무신사 스탠다드", "zeta"})),
    "price range": ProductFilter(min_price=40.0, max_price=60.0),
    "min price only (no-price products excluded)": ProductFilter(min_price=150.0),
    "try-on ready": ProductFilter(tryon_ready=True),
    "not try-on ready": ProductFilter(tryon_ready=False),
    "combination": ProductFilter(categories=frozenset({"top", "outer"}), brands=frozenset({"acme"}),
                                 max_price=120.0, tryon_ready=True),
    "unknown category": ProductFilter(categories=frozenset({"shoes"})),
    "empty filter": ProductFilter(),
}


@pytest.mark.parametrize("name", list(FILTERS))
def test_filtered_search_equals_brute_force_over_the_filtered_subset(index, products, rng, name):
    flt = FILTERS[name]
    for q, got in zip(queries := unit_vectors(rng, 5), index.search(queries, k=10, filter=flt)):
        assert_top_k(got, brute_force_scores(products, q, flt), 10)


def test_filtered_search_returns_k_results_even_when_matches_are_rare_and_score_lowest(rng):
    query = unit_vectors(rng, 1)[0]
    common = unit_vectors(rng, 20_000)
    common[common @ query < 0] *= -1  # every common product scores above every rare one
    rare = -(query + 0.05 * unit_vectors(rng, 12)).astype(np.float32)
    rare /= np.linalg.norm(rare, axis=1, keepdims=True)
    products = [Product(product_id=f"c{i}", name="", image="", brand="acme", embedding=v)
                for i, v in enumerate(common)]
    products += [Product(product_id=f"r{i}", name="", image="", brand="rare", embedding=v)
                 for i, v in enumerate(rare)]
    ix = FaissIndex(DIM)
    ix.upsert(products)
    flt = ProductFilter(brands=frozenset({"rare"}))

    got = ix.search(query[None], k=10, filter=flt)[0]

    assert len(got) == 10 and all(pid.startswith("r") for pid, _ in got)
    assert_top_k(got, brute_force_scores(products, query, flt), 10)
    assert len(ix.search(query[None], k=50, filter=flt)[0]) == 12


# ---- mutation

def test_upsert_of_an_existing_product_replaces_its_vector_and_metadata(index, products, rng):
    old = products[7]
    new_vector = unit_vectors(rng, 1)[0]
    index.upsert([Product(product_id=old.product_id, name="new", image="", category="shoes", embedding=new_vector)])

    assert len(index) == len(products)
    top = index.search(new_vector[None], k=1)[0][0]
    assert top[0] == old.product_id and abs(top[1] - 1.0) < 1e-5
    old_category = ProductFilter(categories=frozenset({old.category}))
    hits = index.search(old.embedding[None], k=len(products), filter=old_category)
    assert old.product_id not in {pid for pid, _ in hits[0]}
    assert index.search(new_vector[None], k=5, filter=ProductFilter(categories=frozenset({"shoes"}))) == [[top]]


def test_upsert_keeps_the_last_duplicate_within_one_call(rng):
    a, b = unit_vectors(rng, 2)
    ix = FaissIndex(DIM)
    ix.upsert([Product(product_id="x", name="", image="", embedding=a),
               Product(product_id="x", name="", image="", embedding=b)])
    assert len(ix) == 1 and abs(ix.search(b[None], k=1)[0][0][1] - 1.0) < 1e-5


def test_removed_products_never_come_back(index, products):
    removed = [p.product_id for p in products[:500]]
    assert index.remove(removed + ["unknown"]) == 500
    assert index.remove(removed) == 0
    assert len(index) == 1500 and removed[0] not in index

    queries = np.stack([p.embedding for p in products[:20]])
    for results in (index.search(queries, k=2000), index.search(queries, k=2000, filter=FILTERS["try-on ready"])):
        returned = {pid for hits in results for pid, _ in hits}
        assert returned.isdisjoint(removed)
    assert len(index.search(queries[:1], k=2000)[0]) == 1500


@pytest.mark.parametrize("bad, message", [
    ({"embedding": np.ones(DIM + 1, np.float32) / np.sqrt(DIM + 1)}, "shape"),
    ({"embedding": np.full(DIM, np.nan, np.float32)}, "non-finite"),
    ({"embedding": np.ones(DIM, np.float32)}, "normalised"),
    ({"embedding": None}, "no embedding"),
    ({"product_id": ""}, "non-empty"),
])
def test_upsert_rejects_invalid_products_without_changing_the_index(index, products, rng, bad, message):
    good = Product(product_id="new-good", name="", image="", embedding=unit_vectors(rng, 1)[0])
    broken = Product(**{"product_id": "new-bad", "name": "", "image": "", "embedding": good.embedding, **bad})
    with pytest.raises(InvalidInput, match=message):
        index.upsert([good, broken])
    assert len(index) == len(products) and "new-good" not in index


@pytest.mark.parametrize("queries, k", [
    (np.zeros((2, DIM + 1), np.float32), 5),
    (np.zeros(DIM, np.float32), 5),
    (np.full((1, DIM), np.inf, np.float32), 5),
    (np.zeros((1, DIM), np.float32), 0),
    (np.zeros((1, DIM), np.float32), 2.5),
])
def test_search_rejects_malformed_queries_and_k(index, queries, k):
    with pytest.raises(InvalidInput):
        index.search(queries, k=k)


@pytest.mark.parametrize("factory", ["IDMap2,Flat", "NotAnIndex12"])
def test_an_unusable_factory_string_is_refused_at_construction(factory):
    with pytest.raises(ValueError, match="factory"):
        FaissIndex(DIM, factory)


# ---- approximate indexes and training

@pytest.mark.parametrize("factory, min_recall", [("IVF64,Flat", 0.9), ("HNSW32", 0.9)])
def test_approximate_factory_reaches_recall_at_10_of_0_9_on_5000_vectors(rng, factory, min_recall):
    vectors = unit_vectors(rng, 5000, dim=64, clusters=50)
    products = catalog(rng, vectors)
    queries = unit_vectors(rng, 200, dim=64, clusters=50)
    exact, approx = FaissIndex(64), FaissIndex(64, factory)
    exact.upsert(products)
    for start in range(0, len(products), 1000):
        approx.upsert(products[start:start + 1000])

    assert approx.is_trained and len(approx) == 5000
    truth, found = exact.search(queries, k=10), approx.search(queries, k=10)
    recall = np.mean([len({p for p, _ in a} & {p for p, _ in t}) / 10 for a, t in zip(found, truth)])
    assert recall >= min_recall, f"{factory}: recall@10 {recall:.3f}"  # measured: IVF64,Flat 0.99, HNSW32 0.94
    flt = FILTERS["combination"]
    for q, hits in zip(queries[:5], approx.search(queries[:5], k=10, filter=flt)):
        assert all(flt.matches(products[int(pid[1:])]) for pid, _ in hits)


def test_an_ivf_pq_index_searches_exactly_until_it_has_enough_vectors_to_train(rng):
    ix = FaissIndex(64, "IVF256,PQ32")  # needs 39 x 256 = 9984 vectors before training
    products = catalog(rng, unit_vectors(rng, 3000, dim=64))
    ix.upsert(products)

    assert not ix.is_trained
    q = unit_vectors(rng, 1, dim=64)[0]
    assert_top_k(ix.search(q[None], k=10)[0], brute_force_scores(products, q), 10)


def test_an_ivf_index_trains_once_enough_vectors_arrive_and_keeps_removals_and_filters(rng):
    products = catalog(rng, unit_vectors(rng, 700))
    ix = FaissIndex(DIM, "IVF16,Flat", nprobe=16)  # nprobe = nlist: exhaustive, so results are exact
    ix.upsert(products[:600])
    ix.remove([p.product_id for p in products[:10]])
    assert not ix.is_trained  # 39 x 16 = 624 vectors needed
    ix.upsert(products[600:])
    assert ix.is_trained and len(ix) == 690

    ix.remove([p.product_id for p in products[600:610]])
    live = products[10:600] + products[610:]
    flt = FILTERS["not try-on ready"]
    for q in unit_vectors(rng, 3):
        assert_top_k(ix.search(q[None], k=10)[0], brute_force_scores(live, q), 10)
        assert_top_k(ix.search(q[None], k=10, filter=flt)[0], brute_force_scores(live, q, flt), 10)


def test_hnsw_never_returns_replaced_or_removed_vectors_and_rebuild_compacts_them(rng, tmp_path):
    products = catalog(rng, unit_vectors(rng, 300))
    ix = FaissIndex(DIM, "HNSW32", ef_search=300)
    ix.upsert(products)
    moved = [Product(product_id=p.product_id, name="", image="", embedding=v)
             for p, v in zip(products[:50], unit_vectors(rng, 50))]
    ix.upsert(moved)
    ix.remove([p.product_id for p in products[50:100]])

    live = moved + products[100:]
    for p in products[:100]:  # each old vector's nearest neighbour was itself; now it must not come back
        hits = ix.search(p.embedding[None], k=10)[0]
        assert_top_k(hits, brute_force_scores(live, p.embedding), 10)

    assert ix.rebuild([live[:100], live[100:]]) == 250
    ix.save(tmp_path, generation=1)
    assert FaissIndex.read_manifest(tmp_path).n_tombstones == 0


# ---- persistence

@pytest.mark.parametrize("factory", ["Flat", "HNSW32", "IVF16,Flat", "IVF256,PQ32"])
def test_save_then_load_gives_identical_results_and_the_generation(rng, tmp_path, factory):
    products = catalog(rng, unit_vectors(rng, 800))
    ix = FaissIndex(DIM, factory)
    ix.upsert(products)
    ix.remove([p.product_id for p in products[:40]])
    ix.upsert([Product(product_id="p00100", name="", image="", brand="new", embedding=unit_vectors(rng, 1)[0])])
    queries = unit_vectors(rng, 8)

    ix.save(tmp_path / "idx", generation=42)
    loaded, generation = FaissIndex.load(tmp_path / "idx", dim=DIM)

    assert generation == 42 and len(loaded) == len(ix) and loaded.factory == factory
    assert loaded.is_trained == ix.is_trained
    for flt in (None, FILTERS["combination"], ProductFilter(brands=frozenset({"new"}))):
        assert loaded.search(queries, k=10, filter=flt) == ix.search(queries, k=10, filter=flt)
    loaded.upsert(products[:40])  # the loaded index keeps working
    assert len(loaded) == len(ix) + 40


def test_read_manifest_reports_generation_dimension_and_count_without_loading(index, tmp_path):
    assert FaissIndex.read_manifest(tmp_path) is None
    index.save(tmp_path, generation=7)
    manifest = FaissIndex.read_manifest(tmp_path)
    assert (manifest.generation, manifest.dim, manifest.count, manifest.factory) == (7, DIM, 2000, "Flat")


def test_a_second_save_replaces_the_first_and_leaves_no_stray_files(index, products, tmp_path):
    index.save(tmp_path, generation=1)
    index.remove([products[0].product_id])
    index.save(tmp_path, generation=2)
    assert sorted(p.name.split("-")[0] for p in tmp_path.iterdir()) == ["index", "manifest.json", "metadata"]
    assert FaissIndex.load(tmp_path)[1] == 2


def _corrupt_index_file(path: Path) -> None:
    f = next(path.glob("index-*.faiss"))
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def _flip_a_metadata_byte(path: Path) -> None:
    f = next(path.glob("metadata-*.npz"))
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))


def _edit_manifest(**changes):
    def edit(path: Path) -> None:
        m = json.loads((path / "manifest.json").read_text())
        (path / "manifest.json").write_text(json.dumps({**m, **changes}))
    return edit


@pytest.mark.parametrize("damage, message", [
    (_corrupt_index_file, "corrupt or truncated"),
    (_flip_a_metadata_byte, "corrupt or truncated"),
    (lambda p: (p / "manifest.json").write_text("{not json"), "unreadable index manifest"),
    (_edit_manifest(format_version=99), "format version 99"),
    (_edit_manifest(count=5), "disagree"),
    (lambda p: next(p.glob("index-*.faiss")).unlink(), "missing"),
    (lambda p: (p / "manifest.json").unlink(), "no saved index"),
])
def test_loading_a_damaged_index_raises_a_clear_error(index, tmp_path, damage, message):
    index.save(tmp_path, generation=3)
    damage(tmp_path)
    with pytest.raises(IndexFileError, match=message):
        FaissIndex.load(tmp_path)


def test_loading_with_another_dimension_raises_a_clear_error(index, tmp_path):
    index.save(tmp_path, generation=3)
    with pytest.raises(IndexFileError, match=f"dimension {DIM}, expected 512"):
        FaissIndex.load(tmp_path, dim=512)


def test_a_failed_save_leaves_the_previous_index_loadable(index, products, rng, tmp_path, monkeypatch):
    queries = unit_vectors(rng, 4)
    index.save(tmp_path, generation=1)
    before = index.search(queries, k=10)
    index.remove([p.product_id for p in products[:1000]])

    def disk_full(*args, **kwargs):  # the commit step fails, as on a full or read-only disk
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(IndexFileError, match="No space left"):
        index.save(tmp_path, generation=2)
    monkeypatch.undo()

    loaded, generation = FaissIndex.load(tmp_path)
    assert generation == 1 and len(loaded) == 2000 and loaded.search(queries, k=10) == before
    assert len(list(tmp_path.iterdir())) == 3


# ---- rebuild

def test_rebuild_replaces_the_contents_and_skips_products_without_embeddings(index, rng):
    fresh = catalog(rng, unit_vectors(rng, 30), prefix="f")
    fresh[0].embedding = None
    assert index.rebuild(iter([fresh[:10], fresh[10:]])) == 29
    assert len(index) == 29 and "p00000" not in index and "f00000" not in index


def test_a_failed_rebuild_leaves_the_current_index_and_allows_another(index, rng):
    def batches():
        yield catalog(rng, unit_vectors(rng, 10), prefix="f")
        raise ConnectionError("store went away")

    with pytest.raises(ConnectionError):
        index.rebuild(batches())
    assert len(index) == 2000 and "f00000" not in index
    assert index.rebuild([catalog(rng, unit_vectors(rng, 5), prefix="g")]) == 5


async def test_rebuild_from_an_async_stream_replays_mutations_made_meanwhile(index, products, rng):
    added = Product(product_id="during", name="", image="", embedding=unit_vectors(rng, 1)[0])

    async def store_scan():
        yield products[:1000]
        index.upsert([added])  # an import running alongside the rebuild
        index.remove([products[1500].product_id])
        with pytest.raises(RuntimeError, match="already running"):
            index.rebuild([])
        yield products[1000:]

    assert await index.rebuild_from(store_scan()) == 2000
    assert "during" in index and products[1500].product_id not in index
    assert await index.rebuild_from([products[:3]]) == 3  # a plain iterable works too


# ---- concurrency and the search replica

@pytest.mark.parametrize("factory", ["Flat", "HNSW32", "IVF16,Flat"])  # IVF trains mid-run (624 vectors)
def test_concurrent_searches_during_upserts_and_removes_never_return_removed_products(rng, factory):
    ix = FaissIndex(DIM, factory)
    seed = catalog(rng, unit_vectors(rng, 500), prefix="seed")
    ix.upsert(seed)
    queries = unit_vectors(rng, 8)
    batches = [catalog(rng, unit_vectors(rng, 40), prefix=f"b{i}-") for i in range(80)]
    vector_of = {p.product_id: p.embedding for p in seed + [p for b in batches for p in b]}
    removed: set[str] = set()
    errors: list[BaseException] = []
    writer_done = threading.Event()
    searches = [0]

    def writer():
        try:
            for i, batch in enumerate(batches):
                ix.upsert(batch)
                if i:
                    gone = [p.product_id for p in batches[i - 1][:20]]
                    ix.remove(gone)
                    removed.update(gone)
        except BaseException as e:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(e)
        finally:
            writer_done.set()

    def reader(flt):
        try:
            while not writer_done.is_set():
                gone_before = set(removed)  # removed before this search started: must not come back
                for q, hits in zip(queries, ix.search(queries, k=50, filter=flt)):
                    assert gone_before.isdisjoint(pid for pid, _ in hits)
                    for pid, score in hits:  # a torn read would pair an id with another vector's score
                        assert abs(float(q @ vector_of[pid]) - score) < 1e-4
                searches[0] += 1
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=writer)]
    threads += [threading.Thread(target=reader, args=(f,)) for f in (None, FILTERS["try-on ready"], None)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors[0]
    assert searches[0] > 0 and ix.is_trained and len(ix) == 500 + 80 * 40 - 79 * 20


def test_the_search_replica_is_dropped_on_mutation_and_rebuilt_once_the_index_is_quiet(index, products):
    built = []

    def replicate(cpu_index):  # stands in for faiss.index_cpu_to_all_gpus
        built.append(cpu_index.ntotal)
        return faiss.clone_index(cpu_index)

    ix = FaissIndex(DIM, replicate=replicate, replica_refresh_s=0.0)
    ix.upsert(products)
    q = products[3].embedding[None]
    assert ix.search(q, k=1)[0][0][0] == products[3].product_id
    ix.search(q, k=1, filter=FILTERS["try-on ready"])
    ix.search(q, k=1)
    assert built == [2000]  # built once, reused, and never for filtered searches

    ix.remove([products[3].product_id])
    assert products[3].product_id not in {pid for pid, _ in ix.search(q, k=10)[0]}
    assert built == [2000, 1999]

    ix.replica_refresh_s = 3600.0
    ix.remove([products[4].product_id])
    assert products[4].product_id not in {pid for pid, _ in ix.search(products[4].embedding[None], k=10)[0]}
    assert built == [2000, 1999]  # mutated too recently: served by the CPU index


# ---- where searches run, and the vectors' pages

@pytest.mark.parametrize("factory, inline", [("Flat", True), ("HNSW32", False), ("IVF16,Flat", False)])
def test_only_a_small_exact_index_searches_inline(rng, factory, inline, monkeypatch):
    ix = FaissIndex(DIM, factory)
    ix.upsert(catalog(rng, unit_vectors(rng, 700)))
    assert ix.searches_inline is inline
    monkeypatch.setattr(faiss_index, "INLINE_SEARCH_MAX_BYTES", 699 * DIM * 4)  # one product too many
    assert ix.searches_inline is False


def finish_page_moves() -> None:
    for thread in threading.enumerate():
        if thread.name == "faiss-huge-pages":
            thread.join(timeout=30)


def test_an_exact_index_moves_its_vectors_onto_huge_pages_once_quiet_and_again_after_a_change(rng, monkeypatch):
    moved: list[tuple[int, int]] = []
    monkeypatch.setattr(huge_pages, "collapse", lambda address, nbytes: moved.append((address, nbytes)) or True)
    ix = FaissIndex(DIM, replica_refresh_s=0.0)
    ix.upsert(catalog(rng, unit_vectors(rng, 500)))
    query = unit_vectors(rng, 1)
    ix.search(query, k=5)
    ix.search(query, k=5, filter=FILTERS["try-on ready"])
    finish_page_moves()
    vectors = faiss.rev_swig_ptr(faiss.downcast_index(ix._core.index.index).get_xb(), 500 * DIM)
    assert moved == [(vectors.ctypes.data, 500 * DIM * 4)]  # once, for the index's own float32 vectors

    ix.upsert(catalog(rng, unit_vectors(rng, 300), prefix="more"))  # may reallocate the vectors
    ix.search(query, k=5)
    finish_page_moves()
    assert len(moved) == 2 and moved[1][1] == 800 * DIM * 4

    ix.replica_refresh_s = 3600.0
    ix.remove(["more0"])
    ix.search(query, k=5)
    finish_page_moves()
    assert len(moved) == 2  # changed too recently: left for the search after the next quiet spell


def test_approximate_indexes_leave_their_pages_alone(rng, monkeypatch):
    moved = []
    monkeypatch.setattr(huge_pages, "collapse", lambda address, nbytes: moved.append(nbytes) or True)
    ix = FaissIndex(DIM, "HNSW32", replica_refresh_s=0.0)
    ix.upsert(catalog(rng, unit_vectors(rng, 300)))
    ix.search(unit_vectors(rng, 1), k=5)
    finish_page_moves()
    assert moved == []


def test_an_exact_index_of_512_float_vectors_ends_up_on_huge_pages_where_the_kernel_can(rng, monkeypatch):
    collapse, outcomes = huge_pages.collapse, []
    monkeypatch.setattr(huge_pages, "collapse", lambda address, nbytes: outcomes.append(collapse(address, nbytes)))
    ix = FaissIndex(512, replica_refresh_s=0.0)
    products = catalog(rng, unit_vectors(rng, 4096, dim=512))
    ix.upsert(products)
    assert ix.search(products[7].embedding[None], k=1)[0][0][0] == products[7].product_id
    finish_page_moves()
    if outcomes != [True]:
        pytest.skip(f"the kernel did not collapse the vectors ({outcomes}): no MADV_COLLAPSE (Linux 6.1+) or no "
                    "free huge page")
    address = faiss.rev_swig_ptr(faiss.downcast_index(ix._core.index.index).get_xb(), 1).ctypes.data
    assert anon_huge_kib(address, 4096 * 512 * 4) > 0
    assert ix.search(products[9].embedding[None], k=1)[0][0][0] == products[9].product_id
