"""The full-size LaDI modules accept state dicts with exactly the published checkpoints' names and shapes.

The layout (every key and shape of unet/emasc/inversion_adapter/warping_*.pth) is in tests/data; the modules are
built on the meta device and loaded with assign=True, so the 866M-parameter UNet costs nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tryon.components import CHECKPOINT_BUILDERS
from tryon.config import FULL
from tryon.errors import WeightsError
from tryon.weights import check_state_dict, load_state_dict_strict

REPO_ROOT = Path(__file__).resolve().parents[2]
LAYOUT_FILE = REPO_ROOT / "tests" / "data" / "ladi_vton_checkpoint_layout.json"
SHARED_LAYOUT_FILE = REPO_ROOT.parent / "shared" / "reference" / "ladi_vton_checkpoint_layout.json"

# (module builder name, path into the layout JSON)
CHECKPOINTS = {
    "unet": ("unet",),
    "emasc": ("emasc",),
    "inversion_adapter": ("inversion_adapter",),
    "tps": ("warping", "tps"),
    "refinement": ("warping", "refinement"),
}


@pytest.fixture(scope="module")
def layout() -> dict:
    if not LAYOUT_FILE.exists():
        pytest.skip(f"checkpoint layout not found at {LAYOUT_FILE}")
    return json.loads(LAYOUT_FILE.read_text())


def _spec(layout: dict, name: str) -> dict[str, list[int]]:
    spec = layout
    for part in CHECKPOINTS[name]:
        spec = spec[part]
    return spec


def _meta_state_dict(spec: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    return {key: torch.empty(shape, device="meta",
                             dtype=torch.int64 if key.endswith("num_batches_tracked") else torch.float32)
            for key, shape in spec.items()}


def _meta_module(name: str) -> torch.nn.Module:
    with torch.device("meta"):
        return CHECKPOINT_BUILDERS[name](FULL)


def test_tests_data_copy_matches_the_shared_reference():
    if not SHARED_LAYOUT_FILE.exists():
        pytest.skip(f"shared reference not present at {SHARED_LAYOUT_FILE} (clean clone)")
    assert json.loads(LAYOUT_FILE.read_text()) == json.loads(SHARED_LAYOUT_FILE.read_text())


def test_full_unet_config_is_the_published_one(layout):
    assert FULL.unet_diffusers_config() == layout["unet_config"]


@pytest.mark.parametrize("name", list(CHECKPOINTS))
def test_full_module_loads_the_published_layout_strictly(layout, name):
    spec = _spec(layout, name)
    module = _meta_module(name)
    expected = {key: list(t.shape) for key, t in module.state_dict().items()}
    assert expected == spec
    module.load_state_dict(_meta_state_dict(spec), strict=True, assign=True)


@pytest.mark.parametrize("name,count,millions", [
    ("unet", 686, 866.0), ("emasc", 20, 8.0), ("inversion_adapter", 24, 136.4), ("tps", 107, 19.1),
    ("refinement", 110, 17.3),
])
def test_full_module_has_the_published_size(layout, name, count, millions):
    module = _meta_module(name)
    assert len(module.state_dict()) == count == len(_spec(layout, name))
    assert sum(p.numel() for p in module.parameters()) / 1e6 == pytest.approx(millions, abs=0.1)


def test_renamed_key_fails_strict_loading(layout):
    spec = dict(_spec(layout, "emasc"))
    spec["conv.0.1.weight"] = spec.pop("conv.0.0.weight")
    with pytest.raises(RuntimeError, match="conv.0.0.weight"):
        _meta_module("emasc").load_state_dict(_meta_state_dict(spec), strict=True, assign=True)
    with pytest.raises(WeightsError, match=r"missing keys: conv\.0\.0\.weight.*unexpected keys: conv\.0\.1\.weight"):
        check_state_dict(_meta_module("emasc").state_dict(), _meta_state_dict(spec), "emasc_test.pth")


def test_wrong_shape_fails_strict_loading(layout):
    spec = dict(_spec(layout, "tps"))
    spec["loc_net.regression.linear.weight"] = [50, 767]
    with pytest.raises(RuntimeError, match="loc_net.regression.linear.weight"):
        _meta_module("tps").load_state_dict(_meta_state_dict(spec), strict=True, assign=True)
    with pytest.raises(WeightsError, match=r"warping_test.pth.*wrong shapes: loc_net\.regression\.linear\.weight "
                                           r"\[50, 767\] \(expected \[50, 768\]\)"):
        load_state_dict_strict(lambda: CHECKPOINT_BUILDERS["tps"](FULL), _meta_state_dict(spec), "warping_test.pth")


def test_full_tps_buffers_have_the_published_shapes(layout):
    buffers = dict(_meta_module("tps").named_buffers())
    for key in ("gridGen.inverse_kernel", "gridGen.padding_matrix", "gridGen.target_coordinate_repr"):
        assert list(buffers[key].shape) == layout["warping"]["tps"][key]
