"""Which checks make an orchestrator replica unready: the interactive models, the store and the index do; the
try-on model does not (its requests fail on their own; search must stay in the Service)."""

from orchestrator.app import Services
from snapfit import contract


def checks(**failing: bool) -> dict[str, bool]:
    names = [f"triton:{model}" for model in contract.SERVED_MODELS] + ["store", "index"]
    return {name: name not in failing for name in names}


def test_everything_up_is_ready_and_the_try_on_model_alone_does_not_gate():
    assert Services.ready(checks())
    assert Services.ready(checks(**{f"triton:{contract.LADI_VTON}": True}))


def test_an_interactive_model_the_store_or_the_index_down_is_not_ready():
    for name in [f"triton:{m}" for m in contract.SERVED_MODELS if m != contract.LADI_VTON] + ["store", "index"]:
        assert not Services.ready(checks(**{name: True})), name
