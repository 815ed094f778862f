"""docker/repository_gate.py: Triton's init container waits for a complete repository; the export Job exports only
what is missing, so it never overwrites an export (e.g. one of your own checkpoints)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from snapfit import contract
from snapfit.repository_layout import onnx_file, tryon_weights_dir
from tests.deploy.tools import REPO_ROOT


def _load_gate():
    spec = importlib.util.spec_from_file_location("repository_gate", REPO_ROOT / "docker" / "repository_gate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


gate = _load_gate()


def write_repository(root: Path, *, without_exports: tuple[str, ...] = (), without_configs: tuple[str, ...] = ()):
    """A repository as `snapfit export` leaves it (empty files), minus some exports or configs."""
    for model in contract.MODELS:
        if model not in without_configs:
            (root / model).mkdir(parents=True, exist_ok=True)
            (root / model / "config.pbtxt").write_text(f'name: "{model}"\n')
    for model in contract.ONNX_MODELS:
        if model not in without_exports and model not in without_configs:
            onnx_file(root, model).parent.mkdir(parents=True, exist_ok=True)
            onnx_file(root, model).write_bytes(b"onnx")
    if contract.LADI_VTON not in without_exports and contract.LADI_VTON not in without_configs:
        tryon_weights_dir(root).mkdir(parents=True)
        (tryon_weights_dir(root) / "unet.pth").write_bytes(b"weights")
    return root


def test_an_empty_volume_lacks_every_model_and_exports_them_all(tmp_path):
    assert gate.incomplete(tmp_path) == list(contract.MODELS)
    only = [arg for model in (*contract.ONNX_MODELS, contract.LADI_VTON) for arg in ("--only", model)]
    assert gate.export_command(tmp_path, ["--profile", "base", "--precision", "fp16"]) == [
        "snapfit", "export", "--profile", "base", "--precision", "fp16", "--repository", str(tmp_path), *only]


def test_a_complete_repository_is_served_and_never_exported_again(tmp_path, capsys):
    write_repository(tmp_path)
    assert gate.incomplete(tmp_path) == []
    assert gate.export_command(tmp_path, ["--profile", "base"]) is None
    assert gate.main(["export", str(tmp_path), "--", "--profile", "base"]) == 0
    assert "already holds every model" in capsys.readouterr().out


def test_the_job_exports_only_the_missing_models(tmp_path, monkeypatch):
    write_repository(tmp_path, without_exports=(contract.CLIP_TEXT, contract.LADI_VTON))
    executed = []
    monkeypatch.setattr(gate.os, "execvp", lambda file, args: executed.append(args))
    gate.main(["export", str(tmp_path), "--", "--profile", "base", "--precision", "fp16"])
    assert executed == [["snapfit", "export", "--profile", "base", "--precision", "fp16", "--repository",
                         str(tmp_path), "--only", contract.CLIP_TEXT, "--only", contract.LADI_VTON]]


def test_the_job_refuses_to_be_told_where_or_what_to_export(tmp_path):
    for args in (["--repository", "/elsewhere"], ["--only=clip_text"]):
        with pytest.raises(SystemExit):
            gate.main(["export", str(tmp_path), "--", "--profile", "base", *args])


def test_a_repository_missing_only_a_config_is_reported_not_exported(tmp_path, capsys):
    write_repository(tmp_path, without_configs=(contract.CLIP_TEXT_EMBED,))
    assert gate.incomplete(tmp_path) == [contract.CLIP_TEXT_EMBED]
    assert gate.main(["export", str(tmp_path), "--", "--profile", "base"]) == 1
    assert contract.CLIP_TEXT_EMBED in capsys.readouterr().err


def test_the_init_container_waits_until_the_job_has_written_everything(tmp_path, capsys):
    write_repository(tmp_path, without_exports=(contract.SAM_ENCODER,))
    naps = []

    def sleep(seconds):  # the Job finishes while Triton's init container sleeps
        naps.append(seconds)
        onnx_file(tmp_path, contract.SAM_ENCODER).parent.mkdir(parents=True, exist_ok=True)
        onnx_file(tmp_path, contract.SAM_ENCODER).write_bytes(b"onnx")

    gate.wait(tmp_path, interval_s=7, sleep=sleep)
    assert naps == [7]
    out = capsys.readouterr().out
    assert f"waiting for the export Job: {contract.SAM_ENCODER} not ready" in out and "holds every model" in out
