"""docker/repository_gate.py: Triton's init container waits for a complete repository (and says why it stops
waiting); the export Job exports only what is missing, so it never overwrites an export (e.g. one of your own
checkpoints), and falls back to fp32 for a model whose fp16 export fails. The Job runs a fake `snapfit export` here
(tests/deploy need no GPU and no torch)."""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import sys
import textwrap
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


ONNX_AND_TRYON = (*contract.ONNX_MODELS, contract.LADI_VTON)

# `snapfit export` as the Job sees it: copies every config, writes the --only models with a parity.json naming their
# precision, and fails (writing nothing, as a failed parity check does) for the models FAKE_FAIL_FP16 names in fp16
# and FAKE_FAIL names in any precision. Every call is appended to FAKE_EXPORT_LOG.
FAKE_EXPORT = textwrap.dedent("""
    import argparse, json, os, sys
    from pathlib import Path
    from snapfit import contract
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--repository", type=Path)
    parser.add_argument("--only", action="append")
    args = parser.parse_args(sys.argv[2:])  # argv[1] is the subcommand, `export`
    with open(os.environ["FAKE_EXPORT_LOG"], "a") as log:
        log.write(json.dumps(sys.argv[1:]) + "\\n")
    for model in contract.MODELS:
        (args.repository / model).mkdir(parents=True, exist_ok=True)
        (args.repository / model / "config.pbtxt").write_text(f'name: "{model}"')
    for model in args.only:
        if model in os.environ.get("FAKE_FAIL", "").split(",") or (
                args.precision == "fp16" and model in os.environ.get("FAKE_FAIL_FP16", "").split(",")):
            print(f"export failed: {model} ({args.precision}) failed its parity check against torch")
            sys.exit(1)
        version = args.repository / model / "1"
        if model == contract.LADI_VTON:
            (version / "weights").mkdir(parents=True, exist_ok=True)
            (version / "weights" / "unet.pth").write_bytes(b"weights")
        else:
            version.mkdir(parents=True, exist_ok=True)
            (version / "model.onnx").write_bytes(b"onnx")
            (version / "parity.json").write_text(json.dumps({"model": model, "precision": args.precision}))
""")


@pytest.fixture
def fake_export(tmp_path, monkeypatch):
    """Runs the gate's export Job against a fake `snapfit export`; returns (run, the commands it received)."""
    script = tmp_path / "fake_snapfit.py"
    script.write_text(FAKE_EXPORT)
    log = tmp_path / "export-calls.jsonl"
    monkeypatch.setenv("FAKE_EXPORT_LOG", str(log))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))

    def run(repository: Path, *export_args: str) -> int:
        exporter = shlex.join([sys.executable, str(script), "export"])
        return gate.main(["export", "--exporter", exporter, str(repository), "--", *export_args])

    def calls() -> list[list[str]]:
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    return run, calls


def test_an_empty_volume_lacks_every_model(tmp_path):
    assert gate.incomplete(tmp_path) == list(contract.MODELS)
    assert gate.missing_models(tmp_path) == list(ONNX_AND_TRYON)


def test_the_job_exports_an_empty_volume_one_model_at_a_time(tmp_path, fake_export):
    run, calls = fake_export
    repository = tmp_path / "models"
    repository.mkdir()
    assert run(repository, "--profile", "base", "--precision", "fp16") == 0
    assert calls() == [["export", "--profile", "base", "--precision", "fp16", "--repository", str(repository),
                        "--only", model] for model in ONNX_AND_TRYON]
    assert gate.incomplete(repository) == []
    assert {gate.recorded_precision(repository, m) for m in contract.ONNX_MODELS} == {"fp16"}


def test_a_model_failing_fp16_parity_is_exported_in_fp32_and_the_job_succeeds(tmp_path, fake_export, monkeypatch,
                                                                               capsys):
    run, calls = fake_export
    monkeypatch.setenv("FAKE_FAIL_FP16", contract.CLIP_TEXT)
    repository = tmp_path / "models"
    repository.mkdir()
    assert run(repository, "--profile", "base", "--precision=fp16") == 0
    clip_text_calls = [c for c in calls() if c[-1] == contract.CLIP_TEXT]
    assert [gate.precision_of(c) for c in clip_text_calls] == ["fp16", "fp32"]
    assert gate.incomplete(repository) == [] and not (repository / gate.FAILURE_NOTE).exists()
    precisions = {m: gate.recorded_precision(repository, m) for m in contract.ONNX_MODELS}
    assert precisions == {m: "fp32" if m == contract.CLIP_TEXT else "fp16" for m in contract.ONNX_MODELS}
    out = capsys.readouterr().out
    assert f"!!! {contract.CLIP_TEXT}: the fp16 export failed" in out
    assert f"WARNING: fp32 instead of fp16 for {contract.CLIP_TEXT}" in out


def test_only_fp16_exports_fall_back(tmp_path, fake_export, monkeypatch, capsys):
    run, calls = fake_export
    monkeypatch.setenv("FAKE_FAIL", contract.SAM_DECODER)
    repository = write_repository(tmp_path / "models", without_exports=(contract.SAM_DECODER,))
    assert run(repository, "--profile", "base", "--precision", "fp32") == 1
    assert len(calls()) == 1  # an fp32 failure is not retried: nothing would change
    assert "fp32 instead" not in capsys.readouterr().out


def test_a_model_failing_in_fp32_too_fails_the_job_and_stops_tritons_wait(tmp_path, fake_export, monkeypatch,
                                                                           capsys):
    run, calls = fake_export
    monkeypatch.setenv("FAKE_FAIL", contract.TRYON_CLASSIFIER)
    repository = tmp_path / "models"
    repository.mkdir()
    assert run(repository, "--profile", "base", "--precision", "fp16") == 1
    # every other model is written, so the next Job exports only the one that failed
    assert gate.missing_models(repository) == [contract.TRYON_CLASSIFIER]
    assert len([c for c in calls() if c[-1] == contract.TRYON_CLASSIFIER]) == 2
    note = (repository / gate.FAILURE_NOTE).read_text()
    assert contract.TRYON_CLASSIFIER in note and "kubectl -n snapfit logs job/snapfit-export" in note
    naps = []
    assert gate.wait(repository, interval_s=60, sleep=naps.append) is False  # at once, not after a timeout
    assert naps == [] and "the export Job failed" in capsys.readouterr().out
    # the next Job clears the note when it starts, and Triton waits for it again
    monkeypatch.delenv("FAKE_FAIL")
    assert run(repository, "--profile", "base", "--precision", "fp16") == 0
    assert not (repository / gate.FAILURE_NOTE).exists() and gate.incomplete(repository) == []
    assert gate.main(["wait", str(repository)]) == 0


def test_a_complete_repository_is_served_and_never_exported_again(tmp_path, fake_export, capsys):
    run, calls = fake_export
    write_repository(tmp_path)
    assert gate.incomplete(tmp_path) == []
    assert run(tmp_path, "--profile", "base") == 0
    assert calls() == [] and "already holds every model" in capsys.readouterr().out


def test_the_job_exports_only_the_missing_models(tmp_path, fake_export):
    run, calls = fake_export
    write_repository(tmp_path, without_exports=(contract.CLIP_TEXT, contract.LADI_VTON))
    assert run(tmp_path, "--profile", "base", "--precision", "fp16") == 0
    assert calls() == [["export", "--profile", "base", "--precision", "fp16", "--repository", str(tmp_path),
                        "--only", model] for model in (contract.CLIP_TEXT, contract.LADI_VTON)]


def test_the_job_refuses_to_be_told_where_or_what_to_export(tmp_path):
    for args in (["--repository", "/elsewhere"], ["--only=clip_text"]):
        with pytest.raises(SystemExit):
            gate.main(["export", str(tmp_path), "--", "--profile", "base", *args])


def test_an_unwritable_repository_is_reported_before_anything_runs(tmp_path, fake_export, monkeypatch, capsys):
    run, calls = fake_export
    monkeypatch.setattr(gate.os, "access", lambda path, mode: False)  # e.g. a root-owned NFS export
    assert run(tmp_path, "--profile", "base") == 1
    assert calls() == [] and "not writable by uid" in capsys.readouterr().err


def test_the_precision_argument_is_read_and_replaced_in_both_spellings():
    assert gate.precision_of(["--profile", "base"]) == "fp32"
    assert gate.precision_of(["--precision", "fp16"]) == gate.precision_of(["--precision=fp16"]) == "fp16"
    for args in (["--precision", "fp16", "--seed", "1"], ["--precision=fp16", "--seed", "1"]):
        assert gate.with_precision(args, "fp32") == ["--seed", "1", "--precision", "fp32"]


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

    assert gate.wait(tmp_path, interval_s=7, sleep=sleep) is True
    assert naps == [7]
    out = capsys.readouterr().out
    assert f"{contract.SAM_ENCODER} not ready" in out and "holds every model" in out


def test_the_init_container_gives_up_after_its_timeout_naming_what_is_missing(tmp_path, capsys):
    write_repository(tmp_path, without_exports=(contract.CLIP_IMAGE,))
    now = [0.0]

    def sleep(seconds):  # no Job ever writes clip_image
        now[0] += seconds

    assert gate.wait(tmp_path, interval_s=60, timeout_s=1800, sleep=sleep, clock=lambda: now[0]) is False
    out = capsys.readouterr().out
    assert out.count(f"{contract.CLIP_IMAGE} not ready") == 30
    assert f"gave up after 30 min: {contract.CLIP_IMAGE} still not in" in out
