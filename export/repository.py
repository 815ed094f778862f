"""The Triton model repository as exporters see it: its config files and the ONNX contract they declare."""

from __future__ import annotations

import shutil
from pathlib import Path

import onnx
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from export.errors import ExportError
from snapfit import contract
from snapfit.repository_layout import missing_exports, parity_file

SOURCE_REPOSITORY = Path(__file__).resolve().parent.parent / "model_repository"

_ONNX_TO_TRITON = {
    onnx.TensorProto.FLOAT: "TYPE_FP32",
    onnx.TensorProto.FLOAT16: "TYPE_FP16",
    onnx.TensorProto.UINT8: "TYPE_UINT8",
    onnx.TensorProto.INT8: "TYPE_INT8",
    onnx.TensorProto.INT32: "TYPE_INT32",
    onnx.TensorProto.INT64: "TYPE_INT64",
    onnx.TensorProto.BOOL: "TYPE_BOOL",
}


def config_files(model_dir: Path) -> list[Path]:
    """config.pbtxt (GPU) plus every alternative in configs/*.pbtxt."""
    return [p for p in [model_dir / "config.pbtxt", *sorted((model_dir / "configs").glob("*.pbtxt"))] if p.exists()]


def load_config(path: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def copy_configs(destination: Path, source: Path = SOURCE_REPOSITORY) -> Path:
    """Copies the committed configs (and Python models), not exported files, into another repository folder."""
    ignore = shutil.ignore_patterns("*.onnx", "*.onnx.data", "parity.json", "tokenizer.json", "__pycache__", "weights",
                                    "weights.partial")
    shutil.copytree(source, destination, ignore=ignore, dirs_exist_ok=True)
    return destination


def _onnx_signature(model: onnx.ModelProto, which: str) -> dict[str, tuple[str, list[int]]]:
    initializers = {i.name for i in model.graph.initializer}
    values = model.graph.input if which == "input" else model.graph.output
    signature = {}
    for value in values:
        if value.name in initializers:
            continue
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
        signature[value.name] = (_ONNX_TO_TRITON.get(tensor.elem_type, f"onnx:{tensor.elem_type}"), dims)
    return signature


def _dims_compatible(declared: list[int], actual: list[int]) -> bool:
    return len(declared) == len(actual) and all(d == -1 or a == -1 or d == a for d, a in zip(declared, actual))


def check_config_matches(model_dir: Path, onnx_path: Path) -> None:
    """Raises ExportError when a config of `model_dir` declares tensors the ONNX graph does not have.

    With max_batch_size > 0 Triton's dims exclude the batch axis, so one leading -1 is added before comparing.
    """
    model = onnx.load(str(onnx_path), load_external_data=False)
    for cfg_path in config_files(model_dir):
        cfg = load_config(cfg_path)
        for which, declared in (("input", cfg.input), ("output", cfg.output)):
            actual = _onnx_signature(model, which)
            for tensor in declared:
                if tensor.name not in actual:
                    raise ExportError(f"{cfg_path}: {which} '{tensor.name}' is not in the ONNX graph "
                                      f"(it has {sorted(actual)})")
                dtype, dims = actual[tensor.name]
                declared_type = model_config_pb2.DataType.Name(tensor.data_type)
                declared_dims = list(tensor.reshape.shape) if tensor.HasField("reshape") else list(tensor.dims)
                if cfg.max_batch_size > 0:
                    declared_dims = [-1, *declared_dims]
                if dtype != declared_type or not _dims_compatible(declared_dims, dims):
                    raise ExportError(f"{cfg_path}: {which} '{tensor.name}' is {declared_type}{declared_dims} "
                                      f"but the ONNX graph has {dtype}{dims}; edit the config to match the model")


def recorded_export(repository: Path, model: str) -> dict:
    """What parity.json says of `model`'s export ({} when there is none or it cannot be read)."""
    import json

    try:
        return json.loads(parity_file(repository, model).read_text())
    except (OSError, ValueError):
        return {}


def recorded_profile(repository: Path, model: str) -> str | None:
    """The profile `model` was exported with; None when parity.json does not say (exports before it recorded it)."""
    return recorded_export(repository, model).get("profile")


# the models `snapfit up --demo-catalog` serves with weights trained on the synthetic catalog (export.demo_models)
DEMO_TRAINED_MODELS = (contract.CLIP_IMAGE, contract.CLIP_TEXT, contract.TRYON_CLASSIFIER)


def exports_to_refresh(repository: Path, profile: str | None, demo_weights: str | None = None) -> dict[str, str]:
    """Models of `repository` to export before `profile` is served, each with the reason.

    Always the missing ones (no model.onnx, or no try-on weights). With a profile, also the models another profile
    wrote. Raises ExportError, rather than overwrite what may be a user's own work, for a model whose profile is
    not recorded, or which another profile exported from a checkpoint (not random weights).

    Demo weights (trained on the synthetic catalog, cached, so re-exported in seconds) never block and never
    linger: with `demo_weights` (a cache key) the demo-trained models that hold other weights are refreshed, except
    an export of the user's own checkpoint, which is kept; without it, a profile replaces demo weights with its own.
    """
    repository = Path(repository)
    refresh = dict.fromkeys(missing_exports(repository), "not exported yet")
    if contract.LADI_VTON in refresh:
        refresh[contract.LADI_VTON] = "no weights yet"
    for model in contract.ONNX_MODELS:
        if model in refresh or not (repository / model).is_dir():
            continue
        export = recorded_export(repository, model)
        recorded, source, demo = export.get("profile"), export.get("source", "?"), export.get("demo_weights")
        if demo_weights is not None and model in DEMO_TRAINED_MODELS:
            if demo is not None and demo != demo_weights:
                refresh[model] = "holds demo weights trained on another catalog or by other code"
            elif demo is None and source == "random-init":
                refresh[model] = "holds random weights; the demo trains its own"
            continue  # the demo's own weights, or the user's checkpoint: served as they are
        if profile is None:
            continue
        if demo is not None:
            refresh[model] = "holds the demo's weights, which know only the synthetic catalog"
            continue
        if recorded is None:
            raise ExportError(f"{repository / model} holds a model.onnx without a recorded profile (parity.json "
                              f"predates it, or is missing); export it again with `snapfit export --profile "
                              f"{profile} --repository {repository}`, or delete it")
        if recorded != profile and source != "random-init":
            raise ExportError(f"{model} in {repository} was exported from {source} with the {recorded} profile; "
                              f"serving the {profile} profile would overwrite it. Serve it with --profile "
                              f"{recorded}, or export {profile} yourself (`snapfit export --profile {profile}`)")
        if recorded != profile:
            refresh[model] = f"exported with the {recorded} profile"
    return refresh
