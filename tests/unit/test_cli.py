"""The snapfit command line: helpful errors for bad options, and help for every command."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from snapfit.cli import app

runner = CliRunner()


@pytest.mark.parametrize("args, message", [
    (["--profile", "huge"], "unknown profile 'huge'"),
    (["--only", "sam_everything"], "unknown model(s) sam_everything"),
    (["--precision", "fp8"], "unknown precision 'fp8'"),
])
def test_export_rejects_bad_options_with_a_clear_message(tmp_path, args, message):
    result = runner.invoke(app, ["export", "--repository", str(tmp_path / "repo"), *args])
    assert result.exit_code == 1
    assert message in " ".join(result.output.split())


def test_export_fails_cleanly_when_a_checkpoint_is_missing(tmp_path):
    result = runner.invoke(app, ["export", "--profile", "tiny", "--repository", str(tmp_path / "repo"),
                                 "--only", "sam_encoder", "--sam-checkpoint", str(tmp_path / "missing.pth")])
    assert result.exit_code == 1
    assert "export failed" in result.output
    assert not (tmp_path / "repo" / "sam_encoder" / "1" / "model.onnx").exists()


@pytest.mark.parametrize("command", ["export", "triton", "serve", "up", "import", "generate-catalog", "train-classifier",
                                     "tryon", "bench"])
def test_every_command_has_help(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_triton_refuses_an_unexported_repository(tmp_path):
    (tmp_path / "clip_text" / "1").mkdir(parents=True)
    (tmp_path / "clip_text" / "config.pbtxt").write_text('name: "clip_text"\n')
    result = runner.invoke(app, ["triton", "--repository", str(tmp_path)])
    assert result.exit_code == 1
    assert "snapfit export" in " ".join(result.output.split())


def test_import_against_an_unreachable_orchestrator_fails_cleanly(tmp_path, monkeypatch):
    from snapfit.cli import catalog_cmd as cli
    from tests.conftest import free_port

    monkeypatch.setattr(cli.time, "sleep", lambda s: None)
    monkeypatch.setattr(cli.time, "monotonic", iter(range(0, 10_000, 700)).__next__)  # the wait deadline passes
    csv_file = tmp_path / "catalog.csv"
    csv_file.write_text("id,name,image\n1,shirt,a.jpg\n")
    url = f"http://127.0.0.1:{free_port()}"
    result = runner.invoke(app, ["import", str(csv_file), "--url", url, "--admin-token", "t" * 20])
    assert result.exit_code == 1
    assert "lost contact with the orchestrator" in " ".join(result.output.split())


def test_import_without_the_admin_token_says_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv("SNAPFIT_ADMIN_TOKEN", raising=False)
    csv_file = tmp_path / "catalog.csv"
    csv_file.write_text("id,name,image\n1,shirt,a.jpg\n")
    result = runner.invoke(app, ["import", str(csv_file)])
    assert result.exit_code == 2
    assert "SNAPFIT_ADMIN_TOKEN" in result.output and "snapfit up" in result.output


def test_bench_refuses_an_unknown_step_before_doing_anything(tmp_path):
    result = runner.invoke(app, ["bench", "--only", "gpu-magic", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "unknown step(s) gpu-magic" in result.output
    assert not (tmp_path / "out").exists()


def test_generate_catalog_refuses_a_negative_count_with_a_usage_error(tmp_path):
    result = runner.invoke(app, ["generate-catalog", str(tmp_path / "cat"), "--count", "-1"])
    assert result.exit_code == 2 and "count must be >= 0" in result.output


def test_bench_stops_with_the_message_when_the_repository_must_not_be_overwritten(tiny_repository, tmp_path):
    import json
    import shutil

    repository = tmp_path / "repo"
    shutil.copytree(tiny_repository, repository, symlinks=True)
    parity = repository / "clip_text" / "1" / "parity.json"
    parity.write_text(json.dumps({**json.loads(parity.read_text()), "source": "/models/mine.pt"}))
    result = runner.invoke(app, ["bench", "--only", "models", "--profile", "base", "--repository", str(repository),
                                 "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "would overwrite it" in " ".join(result.output.split())


def test_up_refuses_bad_settings_before_it_starts_anything(tmp_path, monkeypatch):
    """A bad SNAPFIT_* value used to surface only after tritonserver was up, which then kept running."""
    from snapfit.triton.launcher import TritonServer

    def must_not_start(self):
        raise AssertionError("tritonserver started despite invalid settings")

    monkeypatch.setattr(TritonServer, "start", must_not_start)
    for name in ("SNAPFIT_TRITON__GRPC_URL", "SNAPFIT_TRITON__SHARED_MEMORY"):  # `up` sets them for this process:
        monkeypatch.setenv(name, "")  # recorded, so teardown restores what was there (or removes them)
        monkeypatch.delenv(name)
    monkeypatch.setenv("SNAPFIT_ADMIN_TOKEN", "short")
    result = runner.invoke(app, ["up", "--repository", str(tmp_path / "repo")])
    assert result.exit_code == 2, result.output
    assert "invalid settings" in result.output and "admin_token" in result.output


@pytest.mark.parametrize("command", ["triton", "up"])
def test_an_unknown_cpu_runner_is_a_usage_error_before_anything_starts(tmp_path, command):
    result = runner.invoke(app, [command, "--repository", str(tmp_path / "nothing"), "--cpu-runner", "gpu"])
    assert result.exit_code == 2
    assert "'in-process', 'python-backend'" in " ".join(result.output.split())
    assert not (tmp_path / "nothing").exists()
