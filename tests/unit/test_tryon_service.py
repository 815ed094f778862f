"""TryOnService on fakes: what a submission is refused for, that the person is detected once, how a job runs
from queued to a PNG at the photo's size, the queue bound and cancellation."""

from __future__ import annotations

import asyncio
import io

import numpy as np
import pytest
from PIL import Image

from orchestrator.domain import Product
from orchestrator.errors import InvalidInput, NotFound, NotTryOnReady, Overloaded, PersonNotFound
from orchestrator.services.tryon import TryOnParameters, TryOnService
from orchestrator.settings import TryOnSettings
from tests.support.fakes import FakeModels, FakeProducts
from tryon.preprocess import PersonConditions, fit_to_frame

PHOTO = np.full((90, 60, 3), 128, np.uint8)
FRAME_HW = (64, 48)
PARAMETERS = TryOnParameters(steps=3, guidance=2.0, seed=5, scheduler="ddim")


class FakePerson:
    """PersonPreprocessor: fixed keypoints, framed conditions; records every call."""

    def __init__(self, error: Exception | None = None):
        self.error = error
        self.calls: list[tuple] = []

    async def keypoints(self, photo: np.ndarray, category: str) -> np.ndarray:
        self.calls.append(("keypoints", photo.shape, category))
        if self.error:
            raise self.error
        return np.full((18, 3), 7.0, np.float32)

    async def conditions(self, photo, category, frame_hw, keypoints, garment_region):
        self.calls.append(("conditions", frame_hw, keypoints.copy(), garment_region is not None))
        fitted, fit = fit_to_frame(photo, frame_hw)
        mask = np.zeros(frame_hw, bool)
        mask[frame_hw[0] // 4:, :] = True
        return PersonConditions(person=fitted, keypoints=keypoints, pose_map=np.zeros((18, *frame_hw), np.float32),
                                inpaint_mask=mask, frame_fit=fit)


def product(**overrides) -> Product:
    return Product(**{"product_id": "P1", "name": "Hoodie", "image": "p1.png", "category": "top",
                      "tryon_ready": True, "tryon_probability": 0.9, "source_hash": "h1", **overrides})


def make_service(models=None, person=None, products=None, **settings) -> TryOnService:
    async def load_garment(item: Product) -> np.ndarray:
        return np.full((50, 40, 3), 30, np.uint8)

    return TryOnService(models or FakeModels(), FakeProducts([product()] if products is None else products),
                        person or FakePerson(),
                        load_garment, TryOnSettings(frame_height=FRAME_HW[0], frame_width=FRAME_HW[1],
                                                    **settings))


async def finished(service: TryOnService, job_id: str):
    async for job in service.follow(job_id):
        last = job
    return last


async def test_a_job_runs_every_step_and_keeps_a_png_at_the_photos_size():
    models, person = FakeModels(tryon_steps=3), FakePerson()
    service = make_service(models, person, keep_unmasked=False)
    job = await service.submit(PHOTO, "P1", None, PARAMETERS)
    assert job.category == "upper_body" and job.status in ("queued", "preparing")
    done = await finished(service, job.job_id)
    assert (done.status, done.step, done.total_steps) == ("succeeded", 3, 3)
    result = np.asarray(Image.open(io.BytesIO(service.result(job.job_id))))
    assert result.shape == PHOTO.shape and (result == 77).all()
    [call] = [c for c in models.calls if c[0] == "tryon"]
    assert call[1:] == ((*FRAME_HW, 3), "upper_body", "P1:h1", 3, 2.0, 5, "ddim")


async def test_the_person_is_detected_once_and_the_job_reuses_those_keypoints():
    person = FakePerson()
    service = make_service(person=person)
    job = await service.submit(PHOTO, "P1", "dresses", PARAMETERS)
    await finished(service, job.job_id)
    assert [c[0] for c in person.calls] == ["keypoints", "conditions"]
    assert person.calls[0] == ("keypoints", PHOTO.shape, "dresses")
    assert person.calls[1][1] == FRAME_HW and (person.calls[1][2] == 7.0).all()
    assert person.calls[1][3] is True  # SAM refines the garment region by default


async def test_sam_region_refinement_can_be_switched_off():
    person = FakePerson()
    service = make_service(person=person, sam_garment_region=False)
    await finished(service, (await service.submit(PHOTO, "P1", None, PARAMETERS)).job_id)
    assert person.calls[1][3] is False


@pytest.mark.parametrize("error", [PersonNotFound("no person was found"), InvalidInput("cannot be prepared")])
async def test_a_photo_the_person_preprocessor_refuses_is_refused_at_submit(error):
    service = make_service(person=FakePerson(error))
    with pytest.raises(type(error), match=error.message):
        await service.submit(PHOTO, "P1", None, PARAMETERS)
    assert service.jobs == {}


@pytest.mark.parametrize("products, product_id, category, force, error", [
    ([], "P1", None, False, NotFound),
    ([product(tryon_ready=False, tryon_probability=0.2)], "P1", None, False, NotTryOnReady),
    ([product(category="shoes")], "P1", None, False, InvalidInput),
    ([product()], "P1", "hat", False, InvalidInput),
])
async def test_refusals_come_before_any_work(products, product_id, category, force, error):
    person = FakePerson()
    service = make_service(person=person, products=products)
    with pytest.raises(error):
        await service.submit(PHOTO, product_id, category, PARAMETERS, force=force)
    assert person.calls == []


async def test_an_unusable_product_can_be_forced():
    service = make_service(products=[product(tryon_ready=False, tryon_probability=0.2)])
    job = await service.submit(PHOTO, "P1", None, PARAMETERS, force=True)
    assert (await finished(service, job.job_id)).status == "succeeded"


async def test_beyond_running_plus_queued_jobs_submissions_are_overloaded():
    service = make_service(FakeModels(tryon_steps=200), max_running=1, max_queued=1)
    first = await service.submit(PHOTO, "P1", None, PARAMETERS)
    await service.submit(PHOTO, "P1", None, PARAMETERS)
    with pytest.raises(Overloaded):
        await service.submit(PHOTO, "P1", None, PARAMETERS)
    await service.cancel(first.job_id)
    await service.close()


async def test_a_cancelled_job_says_so_and_has_no_result():
    service = make_service(FakeModels(tryon_steps=10_000))
    job = await service.submit(PHOTO, "P1", None, PARAMETERS)
    await asyncio.sleep(0)
    cancelled = await service.cancel(job.job_id)
    assert cancelled.status == "cancelled" and cancelled.error_code == "cancelled"
    with pytest.raises(Exception, match="cancelled"):
        service.result(job.job_id)


async def test_a_model_that_ends_without_an_image_fails_the_job_with_a_message():
    service = make_service(FakeModels(tryon_image=False))
    done = await finished(service, (await service.submit(PHOTO, "P1", None, PARAMETERS)).job_id)
    assert done.status == "failed" and "without an image" in done.error_message


async def test_unknown_jobs_are_not_found():
    with pytest.raises(NotFound):
        make_service().get("nope")
