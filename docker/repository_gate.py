"""Whether a model repository on a volume is ready to serve, for the containers that share it in Kubernetes.

    python docker/repository_gate.py wait /models            # Triton's init container: block until it is complete
    python docker/repository_gate.py export /models -- ARGS   # the export Job: `snapfit export ARGS --repository
                                                              # /models --only M ...` for the missing models only

A repository is complete when every served model has its config (copied by `snapfit export`) and every model that
`snapfit export` writes has its export (snapfit.repository_layout: model.onnx, or the try-on weights). The Job
exports only what is missing, so applying the manifests again, or a re-created Job, never overwrites an export,
in particular one made from your own checkpoints. To export a model again, delete its export first: its
`1/model.onnx` (ladi_vton: its `1/weights/` folder).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from snapfit import contract
from snapfit.repository_layout import missing_exports

# what `snapfit export` writes, in its order (`--only` takes these names)
EXPORTED_MODELS = (*contract.ONNX_MODELS, contract.LADI_VTON)


def missing_configs(repository: Path) -> list[str]:
    """Served models whose config.pbtxt is not in `repository`."""
    return [m for m in contract.MODELS if not (Path(repository) / m / "config.pbtxt").is_file()]


def missing_models(repository: Path) -> list[str]:
    """Models `snapfit export` must still write into `repository` (all of them for an empty volume)."""
    repository = Path(repository)
    unexported = set(missing_exports(repository))  # models whose folder exists without their export
    return [m for m in EXPORTED_MODELS if not (repository / m).is_dir() or m in unexported]


def incomplete(repository: Path) -> list[str]:
    """Every model that keeps `repository` from serving; [] when it is complete."""
    missing = missing_configs(repository) + missing_models(repository)
    return [m for m in contract.MODELS if m in missing]


def wait(repository: Path, interval_s: float, sleep=time.sleep) -> None:
    """Returns once `repository` is complete, saying what it waits for every `interval_s`."""
    while missing := incomplete(repository):
        print(f"waiting for the export Job: {', '.join(missing)} not ready in {repository}", flush=True)
        sleep(interval_s)
    print(f"{repository} holds every model", flush=True)


def export_command(repository: Path, export_args: list[str]) -> list[str] | None:
    """The `snapfit export` command that completes `repository`; None when there is nothing to export."""
    models = missing_models(repository)
    if not models:
        return None
    only = [arg for model in models for arg in ("--only", model)]
    return ["snapfit", "export", *export_args, "--repository", str(repository), *only]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="is a model repository complete? (see the module docstring)")
    commands = parser.add_subparsers(dest="command", required=True)
    waiting = commands.add_parser("wait", help="block until the repository is complete")
    waiting.add_argument("repository", type=Path)
    waiting.add_argument("--interval-s", type=float, default=15.0)
    exporting = commands.add_parser("export", help="export the models the repository lacks")
    exporting.add_argument("repository", type=Path)
    exporting.add_argument("export_args", nargs=argparse.REMAINDER,
                           help="after --: arguments of `snapfit export` (not --repository or --only)")
    args = parser.parse_args(argv)
    if args.command == "wait":
        wait(args.repository, args.interval_s)
        return 0
    export_args = args.export_args[1:] if args.export_args[:1] == ["--"] else args.export_args
    if any(a.split("=")[0] in ("--repository", "--only") for a in export_args):
        parser.error("--repository and --only are chosen here; pass the other `snapfit export` arguments")
    command = export_command(args.repository, export_args)
    if command is None:
        still = missing_configs(args.repository)
        if still:  # every export is there but a config folder was removed: export one model to copy them back
            print(f"{args.repository} lacks the configs of {', '.join(still)}; delete one model's export (e.g. "
                  "clip_text/1/model.onnx) and run the Job again: any export copies every config", file=sys.stderr)
            return 1
        print(f"{args.repository} already holds every model; nothing exported (delete a model's 1/model.onnx, "
              "or ladi_vton/1/weights/, to export it again)", flush=True)
        return 0
    print("running: " + " ".join(command), flush=True)
    os.execvp(command[0], command)
    return 1  # not reached: execvp replaces this process


if __name__ == "__main__":
    sys.exit(main())
