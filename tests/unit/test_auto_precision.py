"""`--precision auto` installs int8 where the int8 gate passes, fp32 where it fails, and records the figures."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from export import auto_precision, runner
from export.int8_gate import GateResult
from snapfit import contract


class ScriptedGate:
    """A CatalogGate whose verdicts are given: {model: value}, against a threshold of 0.95."""

    def __init__(self, values: dict[str, float]) -> None:
        self.values = values

    def __call__(self, fp32_repository: Path, int8_repository: Path) -> ScriptedGate:
        return self

    def gate(self, model: str) -> GateResult:
        return GateResult(model, "top10_overlap", self.values[model], 0.95, 7, "scripted")


def _parity(repository: Path, model: str) -> dict:
    return json.loads((repository / model / "1" / "parity.json").read_text())


def _is_quantised(repository: Path, model: str) -> bool:
    graph = onnx.load(str(repository / model / "1" / "model.onnx")).graph
    return any(node.op_type in ("DynamicQuantizeLinear", "MatMulInteger", "QuantizeLinear") for node in graph.node)


def test_auto_serves_int8_where_the_gate_passes_and_fp32_where_it_fails(tmp_path):
    gate = ScriptedGate({contract.CLIP_TEXT: 0.97, contract.TRYON_CLASSIFIER: 0.5})
    reports = runner.export_models("tiny", tmp_path, only=[contract.CLIP_TEXT, contract.TRYON_CLASSIFIER],
                                   precision="auto", make_gate=gate)
    assert {r.model: r.precision for r in reports} == {contract.CLIP_TEXT: "int8", contract.TRYON_CLASSIFIER: "fp32"}
    text, classifier = _parity(tmp_path, contract.CLIP_TEXT), _parity(tmp_path, contract.TRYON_CLASSIFIER)
    assert text["precision"] == "int8" and _is_quantised(tmp_path, contract.CLIP_TEXT)
    assert text["int8_gate"] | {"seconds": 0} == {
        "metric": "top10_overlap", "value": 0.97, "threshold": 0.95, "passed": True, "samples": 7,
        "measured": "scripted", "catalog": "snapfit.demo_catalog, 120 rows, seed 0", "served": "int8", "seconds": 0}
    assert classifier["precision"] == "fp32" and not _is_quantised(tmp_path, contract.TRYON_CLASSIFIER)
    assert classifier["int8_gate"]["passed"] is False and classifier["int8_gate"]["value"] == 0.5
    assert classifier["int8_gate"]["served"] == "fp32"
    # the text tower's gate needed the fp32 image tower, which was exported for it but not installed
    assert not (tmp_path / contract.CLIP_IMAGE / "1" / "model.onnx").exists()
    assert (tmp_path / contract.CLIP_TOKENIZER / "1" / "tokenizer.json").is_file()


def test_auto_with_the_real_gate_serves_the_tiny_classifier_in_int8(tmp_path):
    (report,) = runner.export_models("tiny", tmp_path, only=[contract.TRYON_CLASSIFIER], precision="auto")
    figures = _parity(tmp_path, contract.TRYON_CLASSIFIER)["int8_gate"]
    assert figures["metric"] == "decision_agreement" and figures["samples"] == 120
    assert figures["passed"] == (figures["value"] >= 0.99)
    assert report.precision == figures["served"] == ("int8" if figures["passed"] else "fp32")


def test_an_int8_export_refused_by_its_parity_check_serves_fp32(tmp_path, monkeypatch):
    from export import classifier

    monkeypatch.setitem(classifier.PROBABILITY_TOLERANCE, classifier.Precision.int8, 0.0)
    (report,) = runner.export_models("tiny", tmp_path, only=[contract.TRYON_CLASSIFIER], precision="auto",
                                     make_gate=ScriptedGate({}))
    figures = _parity(tmp_path, contract.TRYON_CLASSIFIER)["int8_gate"]
    assert report.precision == "fp32" and figures["value"] is None and figures["passed"] is False
    assert "failed its parity check" in figures["measured"]


@pytest.mark.parametrize(("profile", "expected"), [("cpu", "auto"), ("tiny", "fp32"), ("base", "fp32")])
def test_only_the_cpu_profile_defaults_to_auto(profile, expected, tmp_path, monkeypatch):
    chosen = []
    monkeypatch.setattr(auto_precision, "export_auto", lambda request, models, run, *a, **k: chosen.append("auto"))
    monkeypatch.setattr(runner, "_run_exporters", lambda request, models, progress: chosen.append("fp32") or [])
    runner.export_models(profile, tmp_path, only=[contract.TRYON_CLASSIFIER])
    assert chosen == [expected]


def test_an_unknown_precision_is_refused():
    from export.errors import ExportError

    with pytest.raises(ExportError, match="auto, fp32, fp16, int8"):
        runner.export_models("tiny", Path("unused"), precision="bf16")
