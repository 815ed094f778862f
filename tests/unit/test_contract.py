"""snapfit.contract: the try-on option rule, and the places that must spell the contract's values the same way
(typing Literals, prompt tables) agree with it."""

from __future__ import annotations

import math
from typing import get_args

import numpy as np
import pytest

from snapfit import contract


def test_valid_options_have_no_errors_including_numpy_scalars():
    assert contract.tryon_option_errors(50, 7.5, 0, "ddim") == []
    assert contract.tryon_option_errors(np.int32(1), np.float32(30.0), np.int64(2**63 - 1), "dpmpp") == []


@pytest.mark.parametrize("steps, guidance, seed, scheduler, field", [
    (0, 7.5, 1, "ddim", "steps"), (501, 7.5, 1, "ddim", "steps"), (2.0, 7.5, 1, "ddim", "steps"),
    (True, 7.5, 1, "ddim", "steps"), ("5", 7.5, 1, "ddim", "steps"),
    (5, -0.1, 1, "ddim", "guidance"), (5, 30.01, 1, "ddim", "guidance"), (5, math.nan, 1, "ddim", "guidance"),
    (5, math.inf, 1, "ddim", "guidance"), (5, "7.5", 1, "ddim", "guidance"),
    (5, 7.5, -1, "ddim", "seed"), (5, 7.5, 2**63, "ddim", "seed"),
    (5, 7.5, 1, "euler", "scheduler"), (5, 7.5, 1, None, "scheduler"),
])
def test_each_bad_option_is_named(steps, guidance, seed, scheduler, field):
    [error] = contract.tryon_option_errors(steps, guidance, seed, scheduler)
    assert error.startswith(field)


def test_every_bad_option_is_reported_at_once():
    assert [e.split()[0] for e in contract.tryon_option_errors(0, -1, -1, "x")] == \
        ["steps", "guidance", "seed", "scheduler"]


def test_the_try_on_package_spells_categories_and_schedulers_as_the_contract():
    from tryon.config import CATEGORY_TEXT
    from tryon.preprocess.categories import Category
    from tryon.schedulers import make_scheduler

    assert get_args(Category) == contract.TRYON_CATEGORIES
    assert set(CATEGORY_TEXT) == set(contract.TRYON_CATEGORIES)
    from tryon.schedulers import SD2_SCHEDULER_CONFIG

    for name in contract.TRYON_SCHEDULERS:  # every scheduler the contract admits can be built
        assert make_scheduler(name, SD2_SCHEDULER_CONFIG) is not None


def test_the_orchestrators_defaults_lie_within_the_contract():
    from orchestrator.settings import Settings

    tryon = Settings().tryon
    assert contract.tryon_option_errors(tryon.default_steps, tryon.default_guidance, 0,
                                        tryon.default_scheduler) == []
    assert Settings().port == contract.API_PORT
    assert Settings().triton.grpc_url.endswith(f":{contract.TRITON_GRPC_PORT}")


def test_the_orchestrator_maps_every_try_on_category_of_its_own():
    from orchestrator.services.tryon import CATEGORY_OF_PRODUCT

    assert set(CATEGORY_OF_PRODUCT.values()) == set(contract.TRYON_CATEGORIES)
