"""Whether a model repository on a volume is ready to serve, for the containers that share it in Kubernetes.

    python docker/repository_gate.py wait /models [--timeout-s S]   # Triton's init container: block until complete
    python docker/repository_gate.py export /models -- ARGS         # the export Job: `snapfit export ARGS
                                                                    # --repository /models --only M`, per missing M

A repository is complete when every served model has its config (copied by `snapfit export`) and every model that
`snapfit export` writes has its export (snapfit.repository_layout: model.onnx, or the try-on weights). The Job
exports only what is missing, so applying the manifests again, or a re-created Job, never overwrites an export,
in particular one made from your own checkpoints. To export a model again, delete its export first: its
`1/model.onnx` (ladi_vton: its `1/weights/` folder).

fp16 where the parity checks allow it: the Job exports one model at a time, and an ONNX model whose fp16 export
fails (its parity check refuses it, and nothing is written) is exported again in fp32, with a warning. The
repository may then mix precisions; each model's `1/parity.json` records its own. A model that fails in fp32 too
fails the Job, which leaves a note (FAILURE_NOTE) in the repository: Triton's init container stops waiting and
shows it, instead of waiting for an export that will not come.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from snapfit import contract
from snapfit.repository_layout import missing_exports, parity_file

# what `snapfit export` writes, in its order (`--only` takes these names)
EXPORTED_MODELS = (*contract.ONNX_MODELS, contract.LADI_VTON)
EXPORTER = "snapfit export"
# written into the repository by a failed export Job, removed when an export starts; a file, so Triton (which
# loads the repository's folders) never sees it as a model
FAILURE_NOTE = ".snapfit-export-failed"
JOB_LOGS = "kubectl -n snapfit logs job/snapfit-export"


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


# ---------------------------------------------------------------- Triton's init container


def failure_note(repository: Path) -> str | None:
    """What the last export Job wrote about its failure; None when it did not fail (or none ran)."""
    try:
        return (Path(repository) / FAILURE_NOTE).read_text().strip() or "the export Job failed"
    except OSError:
        return None


def wait(repository: Path, interval_s: float, timeout_s: float | None = None, sleep=time.sleep,
         clock=time.monotonic) -> bool:
    """Returns True once `repository` is complete, naming what it waits for every `interval_s`; False (having said
    why) when the export Job failed or `timeout_s` passed. The init container then exits with an error, so the
    pod shows Init:Error (and is restarted, waiting again), not an endless Init:0/1."""
    started = clock()
    while missing := incomplete(repository):
        note = failure_note(repository)
        if note:
            print(f"the export Job failed, so {', '.join(missing)} will not appear in {repository}:\n{note}\n"
                  f"fix the cause ({JOB_LOGS}), then delete the Job and apply it again (docs/deploy.md)", flush=True)
            return False
        waited_s = clock() - started
        if timeout_s is not None and waited_s >= timeout_s:
            print(f"gave up after {waited_s / 60:.0f} min: {', '.join(missing)} still not in {repository}. Did the "
                  f"export Job run? `kubectl -n snapfit get job snapfit-export`, `{JOB_LOGS}`. This container "
                  "restarts and waits again", flush=True)
            return False
        print(f"waiting for the export Job ({waited_s / 60:.0f} min so far): {', '.join(missing)} not ready in "
              f"{repository}", flush=True)
        sleep(interval_s)
    print(f"{repository} holds every model", flush=True)
    return True


# ---------------------------------------------------------------- the export Job


def precision_of(export_args: Sequence[str]) -> str:
    """The --precision among `snapfit export`'s arguments (its default, fp32, when absent)."""
    for i, arg in enumerate(export_args):
        if arg == "--precision" and i + 1 < len(export_args):
            return export_args[i + 1]
        if arg.startswith("--precision="):
            return arg.split("=", 1)[1]
    return "fp32"


def with_precision(export_args: Sequence[str], precision: str) -> list[str]:
    """`export_args` with --precision set to `precision`."""
    out, skip = [], False
    for i, arg in enumerate(export_args):
        if skip:
            skip = False
        elif arg == "--precision" and i + 1 < len(export_args):
            skip = True
        elif not arg.startswith("--precision="):
            out.append(arg)
    return [*out, "--precision", precision]


def export_command(repository: Path, export_args: Sequence[str], models: Sequence[str],
                   exporter: Sequence[str] = tuple(EXPORTER.split())) -> list[str]:
    """The `snapfit export` command that writes `models` into `repository`."""
    only = [arg for model in models for arg in ("--only", model)]
    return [*exporter, *export_args, "--repository", str(repository), *only]


def recorded_precision(repository: Path, model: str) -> str:
    """The precision `model`'s parity.json records ("?" when it says none; ladi_vton has none)."""
    try:
        return json.loads(parity_file(repository, model).read_text()).get("precision") or "?"
    except (OSError, ValueError):
        return "?"


def _say(message: str) -> None:
    print(message, flush=True)  # between the exporter's own lines in `kubectl logs`


def export_missing(repository: Path, export_args: Sequence[str], exporter: Sequence[str],
                   run: Callable[[list[str]], int] = subprocess.call) -> int:
    """Exports each model `repository` lacks on its own; an ONNX model whose fp16 export fails is exported in fp32.
    Returns 0 when every model was written, else 1 (having left FAILURE_NOTE in the repository)."""
    repository = Path(repository)
    (repository / FAILURE_NOTE).unlink(missing_ok=True)
    fp16 = precision_of(export_args) == "fp16"
    downgraded, failed = [], []
    for model in missing_models(repository):
        command = export_command(repository, export_args, [model], exporter)
        _say("running: " + shlex.join(command))
        if run(command) == 0:
            continue
        if fp16 and model in contract.ONNX_MODELS:
            _say(f"{'!' * 100}\n!!! {model}: the fp16 export failed (its parity check, or the error above): "
                 f"exporting {model} in fp32 instead\n{'!' * 100}")
            command = export_command(repository, with_precision(export_args, "fp32"), [model], exporter)
            _say("running: " + shlex.join(command))
            if run(command) == 0:
                downgraded.append(model)
                continue
        failed.append(model)
    _summarise(repository, downgraded)
    if failed:
        note = f"{', '.join(failed)} could not be exported (arguments: {shlex.join(export_args)}); see {JOB_LOGS}"
        _say(f"export failed: {note}")
        try:
            (repository / FAILURE_NOTE).write_text(note + "\n")
        except OSError as error:  # Triton's init container then waits until its timeout instead
            _say(f"could not leave the failure note for Triton's init container: {error}")
        return 1
    return 0


def _summarise(repository: Path, downgraded: list[str]) -> None:
    precisions = ", ".join(f"{m} {recorded_precision(repository, m)}" for m in contract.ONNX_MODELS
                           if (repository / m).is_dir())
    _say(f"precisions in {repository} (each model's 1/parity.json): {precisions}")
    if downgraded:
        _say(f"WARNING: fp32 instead of fp16 for {', '.join(downgraded)}: their fp16 export failed (see above). "
             "They serve correctly, with more GPU memory and time")


def writable_or_why(repository: Path) -> str | None:
    """None when this process may write into `repository`; else what to do about it."""
    if os.access(repository, os.W_OK):
        return None
    try:
        stat = Path(repository).stat()
        owner = f"owned by {stat.st_uid}:{stat.st_gid}, mode {stat.st_mode & 0o777:o}"
    except OSError as error:
        owner = str(error)
    return (f"{repository} is not writable by uid {os.getuid()} (gid {os.getgid()}): {owner}. On NFS the volume's "
            "fsGroup is often ignored: give the export directory to 10001:10001 (docs/deploy.md, RWX on NFS)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="is a model repository complete? (see the module docstring)")
    commands = parser.add_subparsers(dest="command", required=True)
    waiting = commands.add_parser("wait", help="block until the repository is complete")
    waiting.add_argument("repository", type=Path)
    waiting.add_argument("--interval-s", type=float, default=30.0, help="check (and say what is missing) this often")
    waiting.add_argument("--timeout-s", type=float, default=None,
                         help="exit with an error after this long (default: wait for ever)")
    exporting = commands.add_parser("export", help="export the models the repository lacks")
    exporting.add_argument("repository", type=Path)
    exporting.add_argument("--exporter", default=EXPORTER,
                           help="the export command, given before the repository (tests give a fake one)")
    exporting.add_argument("export_args", nargs=argparse.REMAINDER,
                           help="after --: arguments of `snapfit export` (not --repository or --only)")
    args = parser.parse_args(argv)
    if args.command == "wait":
        return 0 if wait(args.repository, args.interval_s, args.timeout_s) else 1
    export_args = args.export_args[1:] if args.export_args[:1] == ["--"] else args.export_args
    if any(a.split("=")[0] in ("--repository", "--only") for a in export_args):
        parser.error("--repository and --only are chosen here; pass the other `snapfit export` arguments")
    if not missing_models(args.repository):
        still = missing_configs(args.repository)
        if still:  # every export is there but a config folder was removed: export one model to copy them back
            print(f"{args.repository} lacks the configs of {', '.join(still)}; delete one model's export (e.g. "
                  "clip_text/1/model.onnx) and run the Job again: any export copies every config", file=sys.stderr)
            return 1
        print(f"{args.repository} already holds every model; nothing exported (delete a model's 1/model.onnx, "
              "or ladi_vton/1/weights/, to export it again)", flush=True)
        return 0
    unwritable = writable_or_why(args.repository)
    if unwritable:
        print(unwritable, file=sys.stderr)
        return 1
    return export_missing(args.repository, export_args, shlex.split(args.exporter))


if __name__ == "__main__":
    sys.exit(main())
