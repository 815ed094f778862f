"""ImportPipeline and ImportJobs on fakes (models, image loader) over a real in-memory store and FAISS index:
every row's outcome is counted, bad rows never stop an import, unchanged rows are not embedded again."""

from __future__ import annotations

import asyncio
import io
import sqlite3
import time
from contextlib import closing

import numpy as np
import pytest
from PIL import Image

from orchestrator.errors import BadRequest, Conflict, ModelDeadlineExceeded, ModelUnavailable, NotFound, Overloaded
from orchestrator.ingest import parse_catalog_csv
from orchestrator.services.imports import ImportJob, ImportJobs, ImportPipeline
from orchestrator.services.patient_calls import ChunkSizer, RetryPolicy
from orchestrator.services.products import ProductService
from orchestrator.settings import CatalogSettings, SearchSettings, Settings
from orchestrator.stores.catalog_store import ImportRecord
from orchestrator.stores.factory import open_catalog_store
from tests.support.fakes import DIM, FakeModels
from tests.support.mongomock_store import mongomock_catalog_store

CSV_HEADER = "id,name,image,link,brand,price,tags,category\n"


def png(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((20, 16, 3), value, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


class FakeLoader:
    """ImageLoader: bytes by image name; a name missing from `images` fails like an unreachable URL."""

    def __init__(self, images: dict[str, bytes]):
        self.images = images
        self.requests: list[str] = []

    async def load(self, image: str) -> bytes:
        self.requests.append(image)
        if image not in self.images:
            raise BadRequest(f"cannot fetch {image}")
        return self.images[image]


def csv_rows(*rows: str):
    return parse_catalog_csv((CSV_HEADER + "".join(r + "\n" for r in rows)).encode())


@pytest.fixture
async def products(tmp_path):
    store = await open_catalog_store("sqlite:///:memory:")
    settings = Settings(catalog=CatalogSettings(index_path=tmp_path / "index"), search=SearchSettings())
    service = await ProductService.open(store, settings, embedding_dim=DIM)
    yield service
    await store.close()


# a model that fails fails the job at once, unless a test gives a retry budget
NO_RETRIES = RetryPolicy(budget_s=0.0)


def pipeline(products, models=None, threshold=0.5, retry: RetryPolicy = NO_RETRIES) -> ImportPipeline:
    return ImportPipeline(products, models or FakeModels(probability=0.8), batch_size=2, tryon_threshold=threshold,
                          max_image_pixels=10_000_000, fetch_max_bytes=1_000_000, retry=retry)


async def run(pipe: ImportPipeline, loader: FakeLoader, *rows: str):
    parsed, errors = csv_rows(*rows)
    job = pipe.new_job(parsed, errors)
    return await pipe.run(job, parsed, loader)


async def test_rows_are_classified_embedded_stored_and_indexed(products):
    models = FakeModels(probability=0.8)
    job = await run(pipeline(products, models), FakeLoader({"a.png": png(10), "b.png": png(20), "c.png": png(30)}),
                    "A,Shirt,a.png,,Acme,10,,top", "B,Skirt,b.png,,Acme,20,,bottom", "C,Dress,c.png,,Acme,30,,dress")
    assert (job.status, job.inserted, job.failed, job.processed_rows, job.total_rows) == ("succeeded", 3, 0, 3, 3)
    stored = await products.store.get("B")
    assert stored.tryon_ready and stored.tryon_probability == pytest.approx(0.8) and stored.embedding.shape == (DIM,)
    assert len(products.index) == 3
    # batches of 2: both models see every image once
    assert [c[1] for c in models.calls if c[0] == "clip_image"] == [2, 1]


async def test_the_threshold_decides_try_on_readiness(products):
    await run(pipeline(products, FakeModels(probability=0.4), threshold=0.5), FakeLoader({"a.png": png(1)}),
              "A,Shirt,a.png,,,,,top")
    assert (await products.store.get("A")).tryon_ready is False


async def test_a_bad_row_or_image_is_reported_and_the_rest_imported(products):
    job = await run(pipeline(products), FakeLoader({"a.png": png(1), "junk.png": b"not an image"}),
                    "A,Shirt,a.png,,,,,top", ",Nameless,x.png,,,,,top", "B,Lost,missing.png,,,,,top",
                    "C,Broken,junk.png,,,,,top")
    assert (job.status, job.inserted, job.failed, job.processed_rows) == ("succeeded", 1, 3, 4)
    assert sorted(e.line for e in job.errors) == [3, 4, 5]
    assert any("missing.png" in e.message for e in job.errors)


async def test_reimporting_unchanged_rows_embeds_nothing(products):
    images = FakeLoader({"a.png": png(1), "b.png": png(2)})
    await run(pipeline(products), images, "A,Shirt,a.png,,,,,top", "B,Skirt,b.png,,,,,bottom")
    models = FakeModels()
    again = await run(pipeline(products, models), images, "A,Shirt,a.png,,,,,top", "B,Skirt,b.png,,,,,bottom")
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)
    assert models.calls == []


async def test_a_reembedding_import_runs_the_models_on_unchanged_rows_and_stores_what_changed(products):
    """After another classifier (or CLIP) is served, `reembed` re-runs the models; an unchanged source alone
    would have skipped every row."""
    images = FakeLoader({"a.png": png(1), "b.png": png(2)})
    rows = ("A,Shirt,a.png,,,,,top", "B,Skirt,b.png,,,,,bottom")
    await run(pipeline(products, FakeModels(probability=0.8)), images, *rows)
    models = FakeModels(probability=0.3)
    parsed, errors = csv_rows(*rows)
    job = pipeline(products, models).new_job(parsed, errors)
    job.reembed = True
    again = await pipeline(products, models).run(job, parsed, images)
    assert (again.status, again.inserted, again.updated, again.unchanged) == ("succeeded", 0, 2, 0)
    assert {c[0] for c in models.calls} == {"clip_image", "tryon_probability"}
    assert (await products.store.get("A")).tryon_probability == pytest.approx(0.3)
    assert ImportJob.from_state(job.job_id, job.status, job.to_state()).reembed  # a resumed job keeps it


async def test_a_changed_image_updates_the_product(products):
    await run(pipeline(products), FakeLoader({"a.png": png(1)}), "A,Shirt,a.png,,,,,top")
    again = await run(pipeline(products), FakeLoader({"a.png": png(99)}), "A,Shirt,a.png,,,,,top")
    assert (again.inserted, again.updated) == (0, 1)


async def test_an_import_stores_a_bounded_thumbnail_of_each_imported_rows_photo(products):
    wide = io.BytesIO()
    Image.fromarray(np.full((400, 800, 3), 50, np.uint8)).save(wide, format="PNG")
    await run(pipeline(products), FakeLoader({"a.png": wide.getvalue(), "b.png": png(2)}),
              "A,Shirt,a.png,,,,,top", "B,Skirt,b.png,,,,,bottom", "C,Lost,missing.png,,,,,top")

    assert await products.store.thumbnail_ids(["A", "B", "C"]) == {"A", "B"}
    thumbnail = Image.open(io.BytesIO((await products.store.get_thumbnail("A")).data))
    assert (thumbnail.format, thumbnail.size) == ("JPEG", (384, 192))  # catalog.thumbnail_max_side_px


async def test_reimporting_an_unchanged_row_makes_its_missing_thumbnail_without_embedding_it_again(tmp_path):
    path = tmp_path / "catalog.db"
    store = await open_catalog_store(f"sqlite:///{path}")
    service = await ProductService.open(store, Settings(catalog=CatalogSettings(index_path=tmp_path / "index")),
                                        embedding_dim=DIM)
    try:
        images = FakeLoader({"a.png": png(1), "b.png": png(2)})
        rows = ("A,Shirt,a.png,,,,,top", "B,Skirt,b.png,,,,,bottom")
        await run(pipeline(service), images, *rows)
        with closing(sqlite3.connect(path)) as catalog:  # as if imported before thumbnails existed
            catalog.execute("DELETE FROM thumbnails")
            catalog.commit()
        assert await store.thumbnail_ids(["A", "B"]) == set()

        models = FakeModels()
        again = await run(pipeline(service, models), images, *rows)

        assert (again.inserted, again.updated, again.unchanged, again.failed) == (0, 0, 2, 0)
        assert models.calls == []
        assert await store.thumbnail_ids(["A", "B"]) == {"A", "B"}
    finally:
        await store.close()


async def test_an_unchanged_row_makes_no_thumbnail_for_a_product_since_pointed_at_another_photo(products):
    images = FakeLoader({"a.png": png(1)})
    await run(pipeline(products), images, "A,Shirt,a.png,,,,,top")
    await products.store.update("A", {"image": "other.png"})  # drops the thumbnail of a.png

    again = await run(pipeline(products), images, "A,Shirt,a.png,,,,,top")

    assert again.unchanged == 1
    assert await products.store.get_thumbnail("A") is None


async def test_models_going_down_fail_the_job_with_their_message_and_keep_what_was_stored(products):
    class DownAfterFirstBatch(FakeModels):
        async def clip_image(self, images):
            if any(c[0] == "clip_image" for c in self.calls):
                raise ModelUnavailable("Triton is unavailable for clip_image")
            return await super().clip_image(images)

    images = FakeLoader({f"{i}.png": png(i) for i in range(4)})
    job = await run(pipeline(products, DownAfterFirstBatch()), images,
                    *(f"P{i},Item,{i}.png,,,,,top" for i in range(4)))
    assert job.status == "failed" and "Triton is unavailable" in job.message
    assert await products.store.count() == 2 == len(products.index)


class FlakyClip(FakeModels):
    """clip_image fails like a restarting Triton (or a missed deadline) on its calls number `failing`."""

    def __init__(self, failing: set[int], error=ModelUnavailable("Triton is unavailable for clip_image")):
        super().__init__(probability=0.8)
        self.failing, self.error, self.clip_calls = failing, error, 0

    async def clip_image(self, images):
        self.clip_calls += 1
        if self.clip_calls in self.failing:
            raise self.error
        return await super().clip_image(images)


QUICK_RETRIES = RetryPolicy(budget_s=30.0, first_backoff_s=0.001, max_backoff_s=0.002)


@pytest.mark.parametrize("error", [ModelUnavailable("Triton is unavailable for clip_image"),
                                   ModelDeadlineExceeded("clip_image did not answer before the deadline"),
                                   Overloaded("clip_image is busy (its queue is full); retry shortly")],
                         ids=["unavailable", "deadline", "queue-full"])
async def test_a_model_failing_for_a_while_is_retried_and_the_import_completes(products, error):
    models = FlakyClip(failing={2, 3}, error=error)
    images = FakeLoader({f"{i}.png": png(i) for i in range(6)})
    job = await run(pipeline(products, models, retry=QUICK_RETRIES), images,
                    *(f"P{i},Item,{i}.png,,,,,top" for i in range(6)))
    assert job.status == "succeeded" and job.message == "", job.message
    assert job.inserted == 6 and await products.store.count() == 6 == len(products.index)


async def test_a_model_failing_past_the_budget_stops_the_import_with_how_to_resume(products):
    models = FlakyClip(failing=set(range(2, 1000)))
    images = FakeLoader({f"{i}.png": png(i) for i in range(4)})
    job = await run(pipeline(products, models, retry=RetryPolicy(budget_s=0.05, first_backoff_s=0.01,
                                                                 max_backoff_s=0.01)),
                    images, *(f"P{i},Item,{i}.png,,,,,top" for i in range(4)))
    assert job.status == "failed" and "kept failing" in job.message and "/resume" in job.message
    assert job.next_row == 2 and await products.store.count() == 2


def test_chunks_shrink_after_a_missed_deadline_and_grow_back_to_what_fits():
    sizer = ChunkSizer(largest=32, deadline_s=10.0)
    assert sizer.size == 32
    sizer.missed_deadline()
    assert sizer.size == 16
    sizer.observe(images=16, seconds=16 * 1.0)  # 1 s an image: half the deadline holds 5
    assert sizer.size == 5
    for _ in range(10):
        sizer.observe(images=5, seconds=5 * 0.01)
    assert sizer.size == 32


async def test_a_failed_import_resumes_after_its_last_batch_and_ends_like_an_uninterrupted_one(tmp_path, monkeypatch):
    """Resumed with POST .../resume: the rows stored before the failure stay, the rest are imported once."""
    async def catalog(models) -> tuple[ProductService, ImportJobs]:
        store = await open_catalog_store(f"sqlite:///{tmp_path / (str(id(models)) + '.db')}")
        settings = Settings(catalog=CatalogSettings(index_path=tmp_path / f"index{id(models)}"))
        service = await ProductService.open(store, settings, embedding_dim=DIM)
        return service, ImportJobs(pipeline(service, models), store, settings.catalog, "me/1")

    rows = CSV_HEADER + "".join(f"P{i},Item {i},{i}.png,,,{i},,top\n" for i in range(6))
    images = {f"{i}.png": png(i) for i in range(6)}
    monkeypatch.setattr("orchestrator.services.imports.ImageLoader", lambda **_: _Context(FakeLoader(images)))
    interrupted, jobs = await catalog(FlakyClip(failing={2}))
    job = await jobs.start(rows.encode())
    failed = await wait_until_finished(jobs, job.job_id)
    assert failed.status == "failed" and failed.next_row == 2
    assert failed.message.endswith(f"POST /v1/catalog/imports/{job.job_id}/resume")

    await jobs.resume(job.job_id)
    resumed = await wait_until_finished(jobs, job.job_id)
    assert resumed.status == "succeeded" and resumed.resumed == 1 and resumed.message == ""
    assert (resumed.inserted, resumed.processed_rows) == (6, 6)
    with pytest.raises(Conflict):
        await jobs.resume(job.job_id)  # succeeded: nothing to resume
    with pytest.raises(NotFound):
        await jobs.resume("no-such-job")

    whole, whole_jobs = await catalog(FakeModels(probability=0.8))
    await wait_until_finished(whole_jobs, (await whole_jobs.start(rows.encode())).job_id)
    ids = [f"P{i}" for i in range(6)]
    got = await interrupted.store.get_many(ids, include_embeddings=True)
    want = await whole.store.get_many(ids, include_embeddings=True)
    for pid in want:
        assert (got[pid].name, got[pid].price, got[pid].tryon_ready) == (want[pid].name, want[pid].price,
                                                                         want[pid].tryon_ready)
        np.testing.assert_array_equal(got[pid].embedding, want[pid].embedding)
    assert len(interrupted.index) == len(whole.index) == 6
    for service, job_runner in ((interrupted, jobs), (whole, whole_jobs)):
        await job_runner.close()
        await service.store.close()


async def test_resume_asked_the_moment_a_job_reads_failed_waits_for_its_end_to_be_stored(tmp_path, monkeypatch):
    """GET shows the running job's own status, which turns "failed" before the store has it: a client that
    resumes at once must not get a 409 (CI saw one when the final save lagged)."""
    store = await open_catalog_store(f"sqlite:///{tmp_path / 'lagging.db'}")
    settings = Settings(catalog=CatalogSettings(index_path=tmp_path / "index"))
    service = await ProductService.open(store, settings, embedding_dim=DIM)
    jobs = ImportJobs(pipeline(service, FlakyClip(failing={1})), store, settings.catalog, "me/1")
    saving = store.update_import

    async def lagging_save(job_id, owner, status, state):
        if status == "failed":
            await asyncio.sleep(0.3)  # the end of the job reaches the store late
        return await saving(job_id, owner, status, state)

    monkeypatch.setattr(store, "update_import", lagging_save)
    images = {"0.png": png(0)}
    monkeypatch.setattr("orchestrator.services.imports.ImageLoader", lambda **_: _Context(FakeLoader(images)))
    job = await jobs.start((CSV_HEADER + "P0,Item,0.png,,,1,,top\n").encode())
    while (await jobs.get(job.job_id)).status != "failed":
        await asyncio.sleep(0.005)
    assert (await store.get_import(job.job_id)).status != "failed"  # the race this test is about
    await jobs.resume(job.job_id)
    assert (await wait_until_finished(jobs, job.job_id)).status == "succeeded"
    await jobs.close()
    await store.close()


async def test_a_running_import_cannot_be_resumed(products, tmp_path, monkeypatch):
    class StalledClip(FakeModels):
        def __init__(self):
            super().__init__(probability=0.8)
            self.release = asyncio.Event()

        async def clip_image(self, images):
            await self.release.wait()
            return await super().clip_image(images)

    models = StalledClip()
    images = {"0.png": png(0)}
    monkeypatch.setattr("orchestrator.services.imports.ImageLoader", lambda **_: _Context(FakeLoader(images)))
    jobs = ImportJobs(pipeline(products, models), products.store, CatalogSettings(index_path=tmp_path / "i"), "me/1")
    job = await jobs.start((CSV_HEADER + "P0,Item,0.png,,,1,,top\n").encode())
    with pytest.raises(Conflict, match="only a failed import can be resumed"):
        await jobs.resume(job.job_id)
    models.release.set()
    assert (await wait_until_finished(jobs, job.job_id)).status == "succeeded"
    await jobs.close()


async def test_jobs_parse_the_csv_at_once_and_are_found_by_id(products, tmp_path):
    jobs = ImportJobs(pipeline(products), products.store, CatalogSettings(index_path=tmp_path / "index"), "me/1")
    with pytest.raises(BadRequest):
        await jobs.start(b"name,price\nshirt,10\n")  # no id/image columns: refused before any background work
    job = await jobs.start((CSV_HEADER + "A,Shirt,https://example.invalid/a.png,,,,,top\n").encode())
    assert await jobs.get(job.job_id) is job and job.total_rows == 1
    with pytest.raises(NotFound):
        await jobs.get("nope")
    await jobs.close()


async def wait_until_finished(jobs: ImportJobs, job_id: str):
    for _ in range(400):
        job = await jobs.get(job_id)
        if job.status in ("succeeded", "failed"):
            return job
        await asyncio.sleep(0.02)
    raise AssertionError(f"import {job_id} did not finish")


class SlowLoader(FakeLoader):
    """Every image takes `delay_s`, so a job is still running when the test stops its replica."""

    def __init__(self, images, delay_s: float):
        super().__init__(images)
        self.delay_s = delay_s

    async def load(self, image: str) -> bytes:
        await asyncio.sleep(self.delay_s)
        return await super().load(image)


async def test_another_replica_reads_a_job_and_resumes_it_when_its_replica_stops(products, tmp_path, monkeypatch):
    N = 24
    images = {f"{i}.png": png(i) for i in range(N)}
    csv = (CSV_HEADER + ",Nameless,x.png,,,,,top\n"
           + "".join(f"P{i},Item {i},{i}.png,,,,,top\n" for i in range(N))).encode()
    monkeypatch.setattr("orchestrator.services.imports.ImageLoader", lambda **_: _Context(SlowLoader(images, 0.2)))
    settings = CatalogSettings(index_path=tmp_path / "index", import_lease_s=2)
    models_a, models_b = FakeModels(), FakeModels()
    first = ImportJobs(pipeline(products, models_a), products.store, settings, "replica-a/1")
    second = ImportJobs(pipeline(products, models_b), products.store, settings, "replica-b/1")
    job = await first.start(csv)
    while (seen := await second.get(job.job_id)).next_row < 4:  # from the store: what replica a saved
        await asyncio.sleep(0.05)
    assert seen.status == "running" and seen is not job and seen.failed == 1
    await first.close()  # replica a stops mid-import; its lease runs out after 2 s
    stopped_at = job.next_row
    assert 4 <= stopped_at < N

    second.watch()
    done = await wait_until_finished(second, job.job_id)
    await second.close()
    assert done.status == "succeeded" and done.resumed == 1
    assert (done.total_rows, done.processed_rows, done.failed) == (N + 1, N + 1, 1)
    assert done.inserted + done.unchanged == N and done.inserted >= N - stopped_at - 2
    assert await products.store.count() == N == len(products.index)
    # replica b embedded only what replica a had not finished
    embedded_by_b = sum(call[1] for call in models_b.calls if call[0] == "clip_image")
    assert embedded_by_b <= N - stopped_at + 2


class _Context:
    def __init__(self, value):
        self.value = value

    async def __aenter__(self):
        return self.value

    async def __aexit__(self, *exc):
        return False


async def test_a_claimed_import_whose_stored_csv_is_incomplete_is_marked_failed_not_retried(products, tmp_path):
    store = mongomock_catalog_store()
    stale = time.time() - 100
    await store.create_import(ImportRecord(
        job_id="j1", status="running", state=ImportJob("j1", total_rows=1).to_state(),
        options={"mapping": None, "base_dir": None}, owner="dead-replica/1", heartbeat_at=stale, created_at=stale,
        csv=(CSV_HEADER + "A,Shirt,a.png,,,,,top\n").encode()))
    await store._import_chunks.delete_many({})  # the CSV was lost
    jobs = ImportJobs(pipeline(products), store, CatalogSettings(index_path=tmp_path / "i", import_lease_s=2), "me/1")
    jobs.watch()
    try:
        for _ in range(100):
            if (job := await jobs.get("j1")).status == "failed":
                break
            await asyncio.sleep(0.05)
        assert job.status == "failed" and "cannot resume" in job.message and "CSV" in job.message
        assert await store.claim_stale_import("other/1", lease_s=0) is None  # finished: nobody claims it again
    finally:
        await jobs.close()
        await store.close()
