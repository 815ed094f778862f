"""Per-model latency: eager torch (fp32, bf16 autocast) against the served ONNX graphs (fp32, int8) in-process
and through Triton, with each model's share of the machine's matmul peak.

    python -m benchmarks.model_latency --quick --profile tiny --out /tmp/bench
    python -m benchmarks.model_latency --profile base --models clip_image clip_text

For each model and profile ("tiny", or "base" = SAM vit_b, CLIP ViT-B-16, EfficientNetV2-S and the full LaDI-VTON
UNet, all random-init and seeded) the exporter itself (`export.runner.export_models`) writes the fp32 and int8 ONNX
models (into a scratch folder, or reused from `onnx_repositories`), and the torch side is the very wrapper module it
exported (same builder, same seed), so both sides take the served inputs: UINT8 HWC images, int64 token ids, SAM
prompts. `triton_fp32` (`triton_int8` where the served repository holds int8: the cpu profile) sends the same
inputs to the served model (gRPC; inputs of 256 KB or more through shared memory, as the orchestrator sends them
when Triton shares its host). The try-on UNet step (one classifier-free-guidance call, batch 2) has torch rows
only: it is served by the Python backend in torch.
Every (model, variant, batch) is timed until `iterations` calls or `max_seconds` (the served rows at batch 1, whose
p99 the spike target reads, until `served_calls` / `served_seconds` where those are larger); `speedup_vs_torch_fp32` is
torch_fp32's p50 over the variant's p50 at the same batch, in the same run. The serving overhead (served p50 over
in-process p50, batch 1) is timed once more after a model's rows, both sides in alternating blocks
(`add_paired_overhead`), with each side's p99 / p50 and Triton's own statistics splitting where the served calls'
added time goes. The report goes to `--out` (default
benchmarks/results/<machine-id>/).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks.report import Column, format_value, line_plot, markdown_table, register_section
from benchmarks.stats import LatencySummary, alternating_times, percentile, time_calls
from snapfit import contract

SECTION = "model_latency"
ONNX_MODELS = contract.ONNX_MODELS
UNET_STEP = "tryon_unet_step"
MODELS = (*ONNX_MODELS, UNET_STEP)
CPU_VARIANTS = ("torch_fp32", "torch_bf16", "ort_fp32", "ort_int8", "triton_fp32")
CUDA_VARIANTS = ("torch_fp32", "torch_fp16", "torch_bf16")
VARIANTS = CPU_VARIANTS  # the CPU run's variants, in report order
BASELINE = "torch_fp32"
DEFAULT_BATCHES = (1, 8, 32)
QUICK_BATCHES = (1, 8)
# one vit_b encoder call takes seconds on a CPU, and a batch of 32 1024x1024 images needs ~10 GB of activations
SAM_ENCODER_MAX_BATCH = 8
UNBATCHED_MODELS = {contract.SAM_DECODER, UNET_STEP}  # no batch axis (the UNet step's batch is CFG's fixed 2)
ITEMS_PER_CALL = {UNET_STEP: 2}  # a UNet step denoises the conditional and unconditional latents together
# the outputs the orchestrator asks for, requested alike from Triton and from the in-process session, which runs the
# graph pruned to them as the served CPU config does (`output_sets`): sam_decoder's full-size `masks` are megabytes a
# click that neither side computes; a model not named here: all its outputs, full graph
REQUESTED_OUTPUTS: dict[str, tuple[str, ...]] = {contract.SAM_DECODER: ("low_res_masks", "iou_predictions")}
# inputs a click leaves out where the served config makes them optional (sam_decoder's CPU config folds them as
# zeros: `zero_when_absent`); the in-process session runs the graph with them as those constants, Triton gets a
# request without them where its config allows (else with them)
CONSTANT_INPUTS: dict[str, tuple[str, ...]] = {contract.SAM_DECODER: ("mask_input", "has_mask_input")}
SEED = 0

Feeds = dict[str, np.ndarray]


@dataclass
class Subject:
    """One model under test: the torch module the exporter exported, its ONNX files and an input maker."""

    model: str
    module: object  # torch.nn.Module, eval mode
    input_names: list[str]
    make_feeds: Callable[[int], Feeds]  # batch size -> served inputs
    onnx_paths: dict[str, Path] = field(default_factory=dict)  # "fp32" / "int8" -> model.onnx (ONNX models only)

    @property
    def int8_settings(self) -> str | None:
        """How the int8 model was quantised, from the parity.json `snapfit export` wrote beside it."""
        return int8_settings(self.onnx_paths.get("int8"))


def int8_settings(onnx_path: Path | None) -> str | None:
    """The int8 recipe recorded next to `onnx_path` (None without one), or why it is unknown."""
    import json

    from export.precision import recipe_label

    if onnx_path is None:
        return None
    parity = Path(onnx_path).with_name("parity.json")
    recipe = json.loads(parity.read_text()).get("quantization") if parity.exists() else None
    return recipe_label(recipe) if recipe else "unknown (no recipe in parity.json: exported before it was recorded)"


def variants_for(model: str, device: str = "cpu", triton: bool = False) -> tuple[str, ...]:
    """The variants `model` is timed in: CUDA has torch only; the UNet step is never exported to ONNX."""
    if device.startswith("cuda"):
        return CUDA_VARIANTS
    if model == UNET_STEP:
        return ("torch_fp32", "torch_bf16")
    return CPU_VARIANTS if triton else tuple(v for v in CPU_VARIANTS if not v.startswith("triton"))


def model_batches(model: str, batches: Sequence[int], sam_encoder_max_batch: int = SAM_ENCODER_MAX_BATCH) -> list[int]:
    """The batch sizes `model` is timed at: [1] for unbatched models, `batches` capped for sam_encoder, else `batches`."""
    if model in UNBATCHED_MODELS:
        return [1]
    if model == contract.SAM_ENCODER:
        return [b for b in batches if b <= sam_encoder_max_batch] or [min(batches)]
    return list(batches)


def served_precision(repository: Path | None, model: str) -> str:
    """The precision of the model.onnx `repository` serves for `model` (its parity.json; fp32 when unrecorded):
    the cpu profile serves int8 wherever the int8 quality gate passed."""
    import json

    parity = Path(repository or "") / model / "1" / "parity.json"
    if repository is None or not parity.exists():
        return "fp32"
    return str(json.loads(parity.read_text()).get("precision") or "fp32")


def onnx_paths(model: str, profile: str, repositories: dict[str, Path],
               export_missing: Sequence[str] = ("fp32", "int8"), served_repository: Path | None = None
               ) -> dict[str, Path]:
    """model.onnx per precision ("fp32", "int8") in `repositories`, exporting those not already there when their
    precision is in `export_missing` (others are left out, so their variant reports why). With
    `served_repository`, the precision it serves comes from there: the in-process row then times the very file
    Triton serves.

    A repository that `snapfit export` already filled (e.g. by `make demo`) is reused as it is, whatever weights
    it was exported with: latency does not depend on them.
    """
    from rich.console import Console

    from export.runner import export_models

    paths = {}
    served = served_precision(served_repository, model) if served_repository else None
    for precision, repository in repositories.items():
        if precision == served and (Path(served_repository) / model / "1" / "model.onnx").exists():
            paths[precision] = Path(served_repository) / model / "1" / "model.onnx"
            continue
        path = Path(repository) / model / "1" / "model.onnx"
        if not path.exists() and precision not in export_missing:
            continue
        if not path.exists():
            # a console of its own, silenced: the exporter's progress bar must not clash with ours
            export_models(profile, repository=Path(repository), only=[model], precision=precision,
                          console=Console(quiet=True))
        paths[precision] = path
    return paths


def torch_module(model: str, profile: str, workdir: Path, device: str = "cpu"):
    """The eval-mode torch module of `model`: the exporter's wrapper (its builder, its seed) or the try-on UNet
    (built directly on `device`: a CPU random init of the full UNet takes a minute)."""
    from export import clip, sam
    from export.classifier import torch_classifier
    from export.request import ExportRequest

    if model == UNET_STEP:
        return _unet_step_module(profile, device)
    request = ExportRequest.for_profile(profile, Path(workdir) / "fp32")
    if model == contract.SAM_ENCODER:
        return sam.SamEncoderOnnx(sam._build(request)).eval()
    if model == contract.SAM_DECODER:
        return sam.SamDecoderOnnx(sam._build(request)).eval()
    if model == contract.CLIP_IMAGE:
        return clip.ClipImageEncoder(clip._network(request)).eval()
    if model == contract.CLIP_TEXT:
        return clip.ClipTextEncoder(clip._network(request)).eval()
    if model == contract.TRYON_CLASSIFIER:
        choices = request.choices
        return torch_classifier(choices.classifier_variant, choices.classifier_checkpoint, request.seed)
    raise ValueError(f"unknown model {model!r}; choose from {', '.join(MODELS)}")


def _unet_config(profile: str):
    from tryon.config import profile_config

    return profile_config("full" if profile in ("base", "cpu") else profile)  # cpu changes SAM's encoder only


def _unet_step_module(profile: str, device: str = "cpu"):
    """The LaDI-VTON UNet (31 input channels) of `profile` ("base" -> the full SD-2-inpainting size), seeded."""
    import torch

    from tryon.components import build_unet

    torch.manual_seed(SEED)
    with torch.device(device):
        unet = build_unet(_unet_config(profile)).eval()

    class UnetStep(torch.nn.Module):
        """(latents (2, 31, h, w), timestep (), text (2, 77, D)) -> noise prediction (2, 4, h, w)."""

        def __init__(self, unet):
            super().__init__()
            self.unet = unet

        def forward(self, latents, timestep, text):
            return self.unet(latents, timestep, encoder_hidden_states=text).sample

    return UnetStep(unet).eval()


def feed_maker(model: str, profile: str, workdir: Path) -> Callable[[int], Feeds]:
    """batch -> the served inputs of `model`, synthetic but shaped and preprocessed as clients send them."""
    from export import clip, sam
    from export.request import ExportRequest
    from snapfit.preprocessing.classifier import resize_for_classifier
    from snapfit.preprocessing.clip import resize_and_crop
    from snapfit.preprocessing.sam import prompt_arrays, resize_for_encoder

    request = ExportRequest.for_profile(profile, Path(workdir) / "fp32")
    if model == UNET_STEP:
        config = _unet_config(profile)
        rng = np.random.default_rng(SEED)
        feeds = {"latents": rng.standard_normal((2, config.unet_in_channels, *config.latent_size), dtype=np.float32),
                 "timestep": np.array(500, dtype=np.int64),
                 "text": rng.standard_normal((2, 77, config.text_encoder.hidden_size), dtype=np.float32)}
        return lambda batch: feeds
    if model == contract.SAM_ENCODER:
        rng = np.random.default_rng(SEED)
        image = resize_for_encoder(sam.synthetic_image(rng, 768, 1024))  # 768x1024, a landscape photo
        return lambda batch: {"image": np.repeat(image[None], batch, axis=0)}
    if model == contract.SAM_DECODER:
        orig_hw = (1536, 1024)
        h, w = orig_hw
        prompt = prompt_arrays(points=[[0.42 * w, 0.4 * h]], labels=[1], box=[0.18 * w, 0.2 * h, 0.75 * w, 0.75 * h],
                               orig_hw=orig_hw)
        embedding = np.random.default_rng(SEED).standard_normal((1, 256, 64, 64), dtype=np.float32)
        return lambda batch: {"image_embeddings": embedding, **prompt}
    if model in (contract.CLIP_IMAGE, contract.TRYON_CLASSIFIER):
        if model == contract.CLIP_IMAGE:
            size = clip._network(request).image_size
            prepare = lambda image: resize_and_crop(image, size)  # noqa: E731
        else:
            prepare = resize_for_classifier
        photos = [prepare(image) for image in clip.parity_images(8, SEED)]
        return lambda batch: {"image": np.stack([photos[i % len(photos)] for i in range(batch)])}
    if model == contract.CLIP_TEXT:
        ids = clip._tokenize(clip._network(request), clip.PARITY_QUERIES)
        return lambda batch: {"input_ids": ids[np.arange(batch) % len(ids)]}
    raise ValueError(f"unknown model {model!r}; choose from {', '.join(MODELS)}")


INPUT_NAMES = {**{model: contract.input_names(model) for model in contract.ONNX_MODELS},
               UNET_STEP: ["latents", "timestep", "text"]}


def prepare_subject(model: str, profile: str, workdir: Path, onnx_repositories: dict[str, Path] | None = None,
                    device: str = "cpu", export_missing: Sequence[str] = ("fp32", "int8"),
                    served_repository: Path | None = None) -> Subject:
    """Builds `model`'s torch module and input maker, and finds or exports its ONNX files when it has any.

    onnx_repositories: {"fp32": repo, "int8": repo} to reuse (and fill, for the precisions in `export_missing`);
    None exports into `workdir`; {} none.
    """
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose from {', '.join(MODELS)}")
    if onnx_repositories is None:
        onnx_repositories = {p: Path(workdir) / p for p in ("fp32", "int8")}
    paths = (onnx_paths(model, profile, onnx_repositories, export_missing, served_repository)
             if model in ONNX_MODELS and onnx_repositories else {})
    return Subject(model, torch_module(model, profile, workdir, device), INPUT_NAMES[model],
                   feed_maker(model, profile, workdir), paths)


def _torch_call(subject: Subject, variant: str, feeds: Feeds, device: str) -> Callable[[], object]:
    import torch

    tensors = [torch.from_numpy(np.ascontiguousarray(feeds[name])).to(device) for name in subject.input_names]
    dtype = {"torch_bf16": torch.bfloat16, "torch_fp16": torch.float16}.get(variant)
    autocast = (lambda: torch.autocast(device.split(":")[0], dtype=dtype)) if dtype else contextlib.nullcontext
    synchronize = (lambda: torch.cuda.synchronize(device)) if device.startswith("cuda") else (lambda: None)

    def call() -> object:
        with torch.inference_mode(), autocast():
            result = subject.module(*tensors)
        synchronize()
        return result

    return call


def _triton_call(subject: Subject, feeds: Feeds, grpc_url: str, batch: int) -> Callable[[], object]:
    """One gRPC infer of the served model with `feeds`; refuses batches above the served max_batch_size.

    Inputs as large as the orchestrator's shared-memory threshold go through Triton's system shared memory, and
    outputs that large whose size the config fixes come back through it (copied out, as the orchestrator reads
    them), as when Triton shares its host (`snapfit up`; orchestrator/clients/shared_memory.py), so the serving
    overhead measured here is the one a click pays."""
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import np_to_triton_dtype, triton_to_np_dtype

    from orchestrator.settings import TritonSettings

    client = grpcclient.InferenceServerClient(grpc_url)
    config = client.get_model_config(subject.model, as_json=True)["config"]
    served_max = int(config.get("max_batch_size", 0))
    if served_max and batch > served_max:
        raise ValueError(f"batch {batch} is above the served max_batch_size {served_max}")
    inputs, regions = [], []
    min_bytes = TritonSettings().shared_memory_min_bytes
    optional = {tensor["name"] for tensor in config["input"] if tensor.get("optional", False)}
    constant = set(CONSTANT_INPUTS.get(subject.model, ()))
    left_out = constant if constant <= optional else set()
    for name in subject.input_names:
        if name in left_out:
            continue
        array = np.ascontiguousarray(feeds[name])
        infer_input = grpcclient.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
        if array.nbytes >= min_bytes:
            regions.append(_shared_input(client, infer_input, array))
        else:
            infer_input.set_data_from_numpy(array)
        inputs.append(infer_input)
    names = REQUESTED_OUTPUTS.get(subject.model) or [o["name"] for o in config["output"]]
    outputs, shared_outputs = [], {}
    for tensor in config["output"]:
        if tensor["name"] not in names:
            continue
        requested = grpcclient.InferRequestedOutput(tensor["name"])
        dims = ([batch] if served_max else []) + [int(d) for d in tensor["dims"]]
        dtype = triton_to_np_dtype(tensor["data_type"].removeprefix("TYPE_"))
        nbytes = int(np.prod(dims)) * np.dtype(dtype).itemsize if min(dims) >= 0 and dtype != np.object_ else 0
        if nbytes >= min_bytes:
            memory = _shared_region(client, nbytes)
            requested.set_shared_memory(memory.name, nbytes)
            regions.append(memory)
            shared_outputs[tensor["name"]] = memory
        outputs.append(requested)

    def call():
        result = client.infer(subject.model, inputs, outputs=outputs, client_timeout=600)
        for name, memory in shared_outputs.items():
            tensor = result.get_output(name)
            memory.array(tuple(tensor.shape), triton_to_np_dtype(tensor.datatype)).copy()
        return result

    return _ServedCall(call, client, regions)


def _shared_input(client, infer_input, array: np.ndarray):
    """Puts `array` into a new registered shared-memory region that `infer_input` names; returns the region."""
    memory = _shared_region(client, array.nbytes)
    memory.array(array.shape, array.dtype)[...] = array
    infer_input.set_shared_memory(memory.name, array.nbytes)
    return memory


def _shared_region(client, nbytes: int):
    """A new shared-memory region of `nbytes`, registered with the server."""
    from orchestrator.clients.shared_memory import SharedMemory

    memory = SharedMemory(f"snapfit-bench-{os.getpid()}-{next(_REGION_NUMBERS)}", nbytes)
    client.register_system_shared_memory(memory.name, memory.key, nbytes)
    return memory


_REGION_NUMBERS = itertools.count()  # region names unique within this process


class _ServedCall:
    """A Triton call; its shared-memory regions are unregistered and removed when it is dropped."""

    def __init__(self, call: Callable[[], object], client, regions: list) -> None:
        import weakref

        self._call = call
        weakref.finalize(self, _release_regions, client, regions)

    def __call__(self) -> object:
        return self._call()


def _release_regions(client, regions: list) -> None:
    for memory in regions:
        try:
            client.unregister_system_shared_memory(memory.name)
        except Exception:  # noqa: BLE001 - the server may be gone: the region is removed all the same
            pass
        memory.remove()
    client.close()


def pruned_session(path: Path, inputs: Sequence[str], outputs: Sequence[str], threads: int | None = None,
                   constants: Feeds | None = None):
    """An in-process CPU session of the graph at `path` cut down to the nodes `outputs` depend on, with `constants`
    folded in: what the served CPU config runs for a click naming exactly those outputs and leaving those inputs
    out (its `output_sets` and `zero_when_absent`; ONNX Runtime runs every node of a graph whatever outputs a call
    names, so the full graph would time work the served one skips)."""
    import onnxruntime as ort

    from snapfit.triton.graph_variants import specialised_graph

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(specialised_graph(str(path), inputs, outputs, constants), options,
                                providers=["CPUExecutionProvider"])


def variant_call(subject: Subject, variant: str, feeds: Feeds, sessions: dict, device: str = "cpu",
                 triton_grpc_url: str | None = None, batch: int = 1) -> Callable[[], object]:
    """A no-argument callable running one inference of `variant` on `feeds`."""
    if variant.startswith("ort_"):
        from export.onnx_io import open_session

        precision = variant.removeprefix("ort_")
        if precision not in subject.onnx_paths:
            raise ValueError(f"{subject.model} has no {precision} ONNX model here (not exported yet: a full "
                             f"`snapfit bench` or `snapfit export --precision {precision}` writes it)")
        wanted = REQUESTED_OUTPUTS.get(subject.model)
        if precision not in sessions:
            constants = {name: feeds[name] for name in CONSTANT_INPUTS.get(subject.model, ())}
            sessions[precision] = (pruned_session(subject.onnx_paths[precision], subject.input_names, wanted,
                                                  os.cpu_count(), constants) if wanted else
                                   open_session(subject.onnx_paths[precision], threads=os.cpu_count())[0])
        session = sessions[precision]
        used = {i.name for i in session.get_inputs()}
        graph_feeds = {name: value for name, value in feeds.items() if name in used}
        return lambda: session.run(list(wanted) if wanted else None, graph_feeds)
    if variant.startswith("triton_"):
        if not triton_grpc_url:
            raise ValueError("no Triton server given (triton_grpc_url)")
        from benchmarks.perf_analyzer import loopback_address

        return _triton_call(subject, feeds, loopback_address(triton_grpc_url), batch)
    return _torch_call(subject, variant, feeds, device)


def variant_threads(model: str, variant: str, device: str = "cpu", triton_grpc_url: str | None = None) -> int | None:
    """CPU threads one call of `variant` may use: torch's pool, the in-process session's (one per core), or the
    served config's intra_op_num_threads (None: ONNX Runtime's own choice, or a GPU)."""
    if device.startswith("cuda"):
        return None
    if variant.startswith("ort_"):
        return os.cpu_count()
    if variant.startswith("triton_"):
        import tritonclient.grpc as grpcclient

        try:
            config = grpcclient.InferenceServerClient(triton_grpc_url).get_model_config(model, as_json=True)["config"]
        except Exception:  # noqa: BLE001 - the row's own error says why Triton could not be asked
            return None
        value = config.get("parameters", {}).get("intra_op_num_threads", {}).get("string_value")
        return int(value) if value else None
    import torch

    return torch.get_num_threads()


TIMING_KEYS = ("count", "mean_ms", "p50_ms", "p95_ms", "p99_ms", "min_ms", "max_ms", "items_per_s")


def measure(subject: Subject, variant: str, batch: int, iterations: int, max_seconds: float, sessions: dict,
            profile: str, device: str = "cpu", triton_grpc_url: str | None = None, warmup: int = 1) -> dict:
    """One row: latency of `variant` at `batch`; a variant that cannot run here gets None timings and its error."""
    items = ITEMS_PER_CALL.get(subject.model, batch)
    row: dict = {"model": subject.model, "profile": profile, "device": device, "variant": variant, "batch": items,
                 "threads": variant_threads(subject.model, variant, device, triton_grpc_url),
                 "int8_settings": subject.int8_settings if variant == "ort_int8" else None,
                 "outputs": ", ".join(REQUESTED_OUTPUTS[subject.model]) if subject.model in REQUESTED_OUTPUTS
                 and variant.startswith(("ort_", "triton_")) else None}
    try:
        call = variant_call(subject, variant, subject.make_feeds(batch), sessions, device, triton_grpc_url, batch)
        summary = LatencySummary.from_seconds(time_calls(call, warmup=warmup, iterations=iterations,
                                                         max_seconds=max_seconds))
    except Exception as error:  # noqa: BLE001 - e.g. an op without a bf16 kernel; the other variants still count
        return {**row, **dict.fromkeys(TIMING_KEYS), "error": f"{type(error).__name__}: {error}"}
    return {**row, **summary.as_row(batch_size=items), "error": None}


def add_speedups(rows: list[dict]) -> list[dict]:
    """Sets speedup_vs_torch_fp32 = torch_fp32 p50 / row p50 for rows of the same model and batch (None if missing)."""
    baseline = {(r["model"], r["batch"]): r["p50_ms"] for r in rows if r["variant"] == BASELINE}
    for row in rows:
        base = baseline.get((row["model"], row["batch"]))
        row["speedup_vs_torch_fp32"] = (1.0 if row["variant"] == BASELINE and base else
                                        base / row["p50_ms"] if base and row["p50_ms"] else None)
    return rows


def serving_overhead(rows: Sequence[dict]) -> list[dict]:
    """Per model at batch 1: Triton-served p50 over in-process ONNX Runtime p50 (same model file: fp32, or int8
    where the served repository holds int8), and the
    difference in ms: what gRPC, (de)serialisation, the scheduler and the Python backend add (and, where the
    served config gives a call fewer threads than the in-process session, that too: see `served_threads`).

    From the paired timing (`add_paired_overhead`: both sides in alternating blocks) where the Triton row has it,
    else from the two rows' own p50s, timed minutes apart; `paired_calls` says which (None: unpaired)."""
    by_key = {(r["model"], r["variant"], r["batch"]): r for r in rows}
    result = []
    for model in dict.fromkeys(r["model"] for r in rows):
        precision = next((p for p in ("fp32", "int8") if (model, f"triton_{p}", 1) in by_key), "fp32")
        served, local = by_key.get((model, f"triton_{precision}", 1)), by_key.get((model, f"ort_{precision}", 1))
        if not (served and local):
            continue
        paired = served.get("paired_ort_p50_ms") and served.get("paired_triton_p50_ms")
        local_ms, served_ms = ((served["paired_ort_p50_ms"], served["paired_triton_p50_ms"]) if paired else
                               (local["p50_ms"], served["p50_ms"]))
        if served_ms and local_ms:
            result.append({"model": model, "precision": precision, "ort_threads": local.get("threads"),
                           "served_threads": served.get("threads"), "ort_p50_ms": local_ms,
                           "triton_p50_ms": served_ms, "overhead_ms": served_ms - local_ms,
                           "ratio": served_ms / local_ms,
                           "paired_calls": served.get("paired_calls") if paired else None,
                           "ort_tail": served.get("paired_ort_tail") if paired else None,
                           "triton_tail": served.get("paired_triton_tail") if paired else None,
                           **({f"split_{k}": v for k, v in (served.get("paired_split") or {}).items()}
                              if paired else {})})
    return result


PAIRED_BLOCKS = 4  # alternating blocks per side in the paired serving-overhead timing
# Triton's per-model statistics (ns summed over calls) that split a served call's time inside the server
TRITON_STAGES = ("queue", "compute_input", "compute_infer", "compute_output")


def add_paired_overhead(subject: Subject, rows: list[dict], sessions: dict, triton_grpc_url: str | None,
                        iterations: int, max_seconds: float, warmup: int) -> None:
    """Times the served model and its in-process session again at batch 1, in alternating blocks
    (`benchmarks.stats.alternating_times`), and adds the result to the Triton row: paired_ort_p50_ms,
    paired_triton_p50_ms, paired_calls (per side), each side's p99 / p50 (paired_ort_tail, paired_triton_tail),
    and where the served time goes (`_served_split`: paired_split), or paired_error.

    The rows' own p50s are timed minutes apart (other variants run in between), and this machine's speed drifts
    that much: one full run gave the SAM decoder 0.84x, another 1.25x. The pairs share the drift, and so do the
    two tails: a slow spell of the machine lengthens both, a spike of the server only the served one. Each block
    starts with `warmup` untimed calls (none for a model whose calls take a second or more: its warm-up would
    double the cost, and one call already warms what a block needs); in all about 2 x max_seconds a model."""
    served = next((r for r in rows if r["model"] == subject.model and r["batch"] == 1 and r.get("p50_ms")
                   and r["variant"].startswith("triton_")), None)
    if served is None or not triton_grpc_url:
        return
    precision = served["variant"].removeprefix("triton_")
    local = next((r for r in rows if r["model"] == subject.model and r["batch"] == 1 and r.get("p50_ms")
                  and r["variant"] == f"ort_{precision}"), None)
    if local is None:
        return
    blocks = PAIRED_BLOCKS if warmup else 2  # a quick run (no warm-up) only shows that the pairing runs
    block_warmup = warmup if max(served["p50_ms"], local["p50_ms"]) < 1000 else 0
    try:
        feeds = subject.make_feeds(1)
        in_process = variant_call(subject, local["variant"], feeds, sessions)
        through_triton = variant_call(subject, served["variant"], feeds, sessions, triton_grpc_url=triton_grpc_url)
        before = _triton_stage_totals(triton_grpc_url, subject.model)
        local_s, served_s = alternating_times(in_process, through_triton, blocks=blocks,
                                              block_calls=max(1, iterations // blocks),
                                              block_seconds=max_seconds / blocks, warmup=block_warmup)
        after = _triton_stage_totals(triton_grpc_url, subject.model)
    except Exception as error:  # noqa: BLE001 - the unpaired rows still give a ratio
        served["paired_error"] = f"{type(error).__name__}: {error}"
        return
    served.update(paired_ort_p50_ms=percentile(local_s, 50) * 1000,
                  paired_triton_p50_ms=percentile(served_s, 50) * 1000, paired_calls=min(len(local_s), len(served_s)),
                  paired_ort_tail=percentile(local_s, 99) / percentile(local_s, 50),
                  paired_triton_tail=percentile(served_s, 99) / percentile(served_s, 50),
                  paired_split=_served_split(before, after, local_s, served_s))


def _triton_stage_totals(grpc_url: str, model: str) -> dict[str, tuple[int, int]]:
    """{stage: (count, ns)} of `model`'s cumulative inference statistics, with "success" (whole requests)."""
    import tritonclient.grpc as grpcclient

    with grpcclient.InferenceServerClient(grpc_url) as client:
        stats = client.get_inference_statistics(model, as_json=True)["model_stats"][0]["inference_stats"]
    return {stage: (int(stats.get(stage, {}).get("count", 0)), int(stats.get(stage, {}).get("ns", 0)))
            for stage in ("success", *TRITON_STAGES)}


def _served_split(before: dict, after: dict, local_s: Sequence[float], served_s: Sequence[float]) -> dict | None:
    """Where a served call's time goes, in mean ms per call over the alternating blocks (warm-up calls included
    on the server's side, which cannot tell them apart): the client's wall time less Triton's request time
    ("outside": gRPC, the client library, shared-memory reads), Triton's queue, input and output copies, and
    compute_infer less the in-process mean ("backend": what running the model behind Triton adds: for the
    in-process onnxruntime_cpu runner its Python bridge and the run, for the Python-backend one also the IPC to the
    stub process). None without counted requests."""
    calls = after["success"][0] - before["success"][0]
    if calls <= 0:
        return None
    per_call = {stage: (after[stage][1] - before[stage][1]) / calls / 1e6 for stage in ("success", *TRITON_STAGES)}
    local_ms, served_ms = 1000 * float(np.mean(local_s)), 1000 * float(np.mean(served_s))
    return {"ort_mean_ms": local_ms, "triton_mean_ms": served_ms, "outside_ms": served_ms - per_call["success"],
            "queue_ms": per_call["queue"], "input_ms": per_call["compute_input"],
            "backend_ms": per_call["compute_infer"] - local_ms, "output_ms": per_call["compute_output"],
            "server_calls": calls}


def flops_per_item(subject: Subject, device: str = "cpu") -> float | None:
    """FLOPs of one item of `subject` (a batch-1 call; the UNet step's 2 latents count as 2 items)."""
    import torch

    from benchmarks.flops import count_flops

    feeds = subject.make_feeds(1)
    tensors = [torch.from_numpy(np.ascontiguousarray(feeds[name])).to(device) for name in subject.input_names]
    try:
        return count_flops(subject.module, tensors) / ITEMS_PER_CALL.get(subject.model, 1)
    except Exception:  # noqa: BLE001 - an op the counter cannot trace leaves efficiency blank, not the benchmark
        return None


def run(models: Sequence[str] = MODELS, profile: str = "base", batches: Sequence[int] = DEFAULT_BATCHES,
        iterations: int = 50, max_seconds: float = 10.0, show_progress: bool = True,
        sam_encoder_max_batch: int = SAM_ENCODER_MAX_BATCH, workdir: Path | None = None, device: str = "cpu",
        onnx_repositories: dict[str, Path] | None = None, triton_grpc_url: str | None = None,
        peaks: dict[str, float] | None = None, warmup: int = 1,
        export_missing: Sequence[str] = ("fp32", "int8"), variant_max_batch: dict[str, int] | None = None,
        served_repository: Path | None = None, served_calls: int = 0, served_seconds: float = 0.0) -> list[dict]:
    """Rows for every model x variant x batch (see `variants_for`, `model_batches`), in that order.

    workdir: scratch folder for exports (default: a temporary folder removed afterwards); onnx_repositories:
    reuse these {"fp32", "int8"} repositories instead; triton_grpc_url: a Triton serving the fp32 repository
    (adds triton_fp32 rows); peaks: precision -> GFLOP/s (benchmarks.flops.best_peaks), adds efficiency fields;
    warmup: untimed calls before each measurement (0 for a smoke run: the first call then counts, allocations and all);
    export_missing: precisions exported when `onnx_repositories` lacks them (others get error rows);
    variant_max_batch: {variant: largest batch it is timed at} (e.g. {"torch_bf16": 1} where bf16 is known slow);
    served_repository: the repository Triton serves: its Triton rows are named after the precision it serves
    (triton_int8 where the cpu profile's int8 gate passed) and the in-process row of that precision times its file.
    served_calls / served_seconds: at least this many calls and seconds for the Triton rows at batch 1, whose p99
    needs more calls than a p50 (0: `iterations` and `max_seconds`, as every other row).
    """
    from rich.progress import Progress

    from benchmarks.flops import add_efficiency

    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        raise ValueError(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    if not batches or min(batches) < 1:
        raise ValueError(f"batch sizes must be >= 1, got {list(batches)}")
    cuda = device.startswith("cuda")
    plan = {m: (model_batches(m, sorted(set(batches)), sam_encoder_max_batch),
                tuple(f"triton_{served_precision(served_repository, m)}" if v == "triton_fp32" else v
                      for v in variants_for(m, device, triton=bool(triton_grpc_url)))) for m in models}
    limits = variant_max_batch or {}

    def timed(batch: int, variants: Sequence[str]) -> list[str]:
        return [v for v in variants if batch <= limits.get(v, batch)]

    rows: list[dict] = []
    flops: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        root = Path(workdir) if workdir else Path(stack.enter_context(tempfile.TemporaryDirectory(
            prefix="snapfit-model-latency-")))
        progress = stack.enter_context(Progress(disable=not show_progress, transient=True))
        task = progress.add_task("models", total=sum(len(timed(b, v)) for bs, v in plan.values() for b in bs))
        for model, (model_batch_sizes, variants) in plan.items():
            progress.update(task, description=f"{model}: preparing")
            try:
                subject = prepare_subject(model, profile, root / model, {} if cuda else onnx_repositories, device,
                                          export_missing, served_repository)
                subject.module = subject.module.to(device)
            except Exception as error:  # noqa: BLE001 - e.g. a library missing on this machine: the others still run
                reason = f"could not prepare {model}: {type(error).__name__}: {error}"
                for batch in model_batch_sizes:
                    rows += [{"model": model, "profile": profile, "device": device, "variant": variant,
                              "batch": ITEMS_PER_CALL.get(model, batch), "threads": None, "int8_settings": None,
                              **dict.fromkeys(TIMING_KEYS),
                              "error": reason} for variant in timed(batch, variants)]
                progress.advance(task, sum(len(timed(b, variants)) for b in model_batch_sizes))
                continue
            counted = flops_per_item(subject, device)
            if counted:
                flops[model] = counted
            sessions: dict = {}
            for batch in model_batch_sizes:
                for variant in timed(batch, variants):
                    progress.update(task, description=f"{model} {variant} batch {batch}")
                    served = variant.startswith("triton_") and batch == 1
                    calls = max(iterations, served_calls) if served else iterations
                    seconds = max(max_seconds, served_seconds) if served else max_seconds
                    rows.append(measure(subject, variant, batch, calls, seconds, sessions, profile, device,
                                        triton_grpc_url, warmup))
                    progress.advance(task)
            if not cuda:
                progress.update(task, description=f"{model}: Triton and in-process in alternating blocks")
                # as many calls as the served rows (tails of 200 calls), in at most the served rows' time in all
                add_paired_overhead(subject, rows, sessions, triton_grpc_url, max(iterations, served_calls),
                                    max(max_seconds, served_seconds / 2), warmup)
            del subject, sessions
    return add_efficiency(add_speedups(rows), flops, peaks or {})


# ---------------------------------------------------------------- report


def _speedup(value: object) -> str:
    return "—" if value is None else f"{value:.2f}×"


def _percent(value: object) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


COLUMNS: list[Column] = [
    ("variant", "variant", format_value), ("batch", "batch", format_value), ("threads", "threads", format_value),
    ("p50 ms", "p50_ms", format_value),
    ("p95 ms", "p95_ms", format_value), ("p99 ms", "p99_ms", format_value), ("mean ms", "mean_ms", format_value),
    ("items/s", "items_per_s", format_value), ("vs torch fp32", "speedup_vs_torch_fp32", _speedup),
    ("GFLOP/s", "achieved_gflops", format_value), ("of peak", "peak_fraction", _percent),
    ("calls", "count", format_value)]
OVERHEAD_COLUMNS: list[Column] = [
    ("model", "model", format_value), ("precision", "precision", format_value),
    ("in-process threads", "ort_threads", format_value), ("served threads per call", "served_threads", format_value),
    ("ONNX Runtime in-process p50 ms", "ort_p50_ms", format_value),
    ("Triton gRPC p50 ms", "triton_p50_ms", format_value), ("added ms", "overhead_ms", format_value),
    ("Triton / in-process", "ratio", _speedup), ("calls per side, alternating", "paired_calls", format_value),
    ("p99 / p50 in-process", "ort_tail", format_value), ("p99 / p50 served", "triton_tail", format_value)]
SPLIT_COLUMNS: list[Column] = [
    ("model", "model", format_value), ("in-process mean ms", "split_ort_mean_ms", format_value),
    ("served mean ms", "split_triton_mean_ms", format_value),
    ("outside Triton ms (gRPC, client)", "split_outside_ms", format_value),
    ("queue ms", "split_queue_ms", format_value), ("input copy ms", "split_input_ms", format_value),
    ("backend ms (compute_infer - in-process)", "split_backend_ms", format_value),
    ("output copy ms", "split_output_ms", format_value)]


def speedup_plot(rows: list[dict], path: Path, batch: int = 1) -> Path:
    """Grouped bars: speedup vs torch fp32 at `batch`, one group per model, one bar per variant."""
    from matplotlib.figure import Figure  # Agg, no pyplot state, as report.line_plot

    models = list(dict.fromkeys(r["model"] for r in rows))
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    fig = Figure(figsize=(8.0, 4.0), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(variants)
    for i, variant in enumerate(variants):
        values = {r["model"]: r["speedup_vs_torch_fp32"] for r in rows
                  if r["variant"] == variant and r["batch"] == ITEMS_PER_CALL.get(r["model"], batch)}
        ax.bar(np.arange(len(models)) + (i - (len(variants) - 1) / 2) * width,
               [values.get(m) or 0.0 for m in models], width, label=variant)
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_xticks(np.arange(len(models)), [m.replace("_", "\n", 1) for m in models])
    ax.set(title=f"Speedup over eager torch fp32, batch {batch} (p50)", ylabel="× torch fp32")
    ax.legend(fontsize="small")
    fig.savefig(path, dpi=120)
    return path


def _intro(rows: list[dict]) -> str:
    device = rows[0].get("device", "cpu")
    if str(device).startswith("cuda"):
        how = "torch eager under inference_mode on the GPU (fp16/bf16 = autocast), synchronised after each call"
    else:
        how = ("torch eager under inference_mode (bf16 = autocast); ONNX Runtime CPUExecutionProvider with one "
               "intra-op thread per core; triton_fp32 / triton_int8 = the served ONNX model (its precision) through Triton (CPU config), "
               "one gRPC call per batch from this process")
        chosen = {r["model"]: r["outputs"] for r in rows if r.get("outputs")}
        if chosen:
            constant = "; ".join(f"{m}: {', '.join(i)}" for m, i in CONSTANT_INPUTS.items())
            how += ("; ONNX Runtime (on the graph pruned to them, as the served config's output_sets) and Triton "
                    "both return only the outputs the orchestrator asks for ("
                    + "; ".join(f"{m}: {o}" for m, o in chosen.items()) + "), every other model all of its outputs; "
                    f"a click's constant inputs ({constant}, zeros) are folded into the in-process graph and left out "
                    "of the Triton request where the served config makes them optional (its zero_when_absent)")
    return (f"Profile {rows[0].get('profile', '?')}, device {device}; {how}. p50/p95/p99 per call of one batch; "
            "items/s = batch x calls / total seconds; speedup = torch fp32 p50 / variant p50 at the same batch; "
            "GFLOP/s = counted FLOPs (torch flop counter: matmuls, convolutions, attention) x batch / p50, and "
            "\"of peak\" divides it by this machine's matmul peak in the variant's precision (section below). "
            "A failed or impossible variant shows dashes and its reason under the table.")


@register_section(SECTION, "Model latency: torch vs ONNX Runtime vs Triton")
def render_model_latency(rows: list[dict], out_dir: Path) -> str:
    """Per model: a table and a p50-vs-batch plot per variant; the batch-1 speedup bars and the serving overhead."""
    if not rows:
        return "_no rows_"
    parts = [_intro(rows)]
    overhead = serving_overhead(rows)
    if overhead:
        parts += ["", "**Serving overhead** (batch 1, the served precision): Triton over gRPC vs an in-process "
                  "ONNX Runtime session of the same model file, timed in alternating blocks of calls after the rows "
                  "below (calls per side shown; a dash: from the rows' own p50s, timed minutes apart).", "",
                  markdown_table(overhead, OVERHEAD_COLUMNS)]
        failed = [f"- {r['model']}: the alternating timing failed ({r['paired_error']}); its ratio is unpaired"
                  for r in rows if r.get("paired_error")]
        parts += ["", *failed] if failed else []
        split = [r for r in overhead if r.get("split_server_calls")]
        if split:
            parts += ["", "Where the added time goes: means per call over the same alternating blocks, from the "
                      "client's clock and Triton's own statistics for the model (`get_inference_statistics`). "
                      "Outside Triton = the client's wall time less Triton's request time; backend = Triton's "
                      "compute_infer less the in-process mean (the onnxruntime_cpu runner's Python and the run; "
                      "run in-process, the runner reads Triton's input buffers in place, so input copy is ~0). "
                      "The tails' columns above come from the "
                      "same blocks: a slow spell of the machine lengthens both sides, a spike of the server only "
                      "the served one.", "", markdown_table(split, SPLIT_COLUMNS)]
    if any(r["batch"] == 1 for r in rows):
        bars = speedup_plot(rows, out_dir / "model_latency_speedup.png")
        parts += ["", f"![speedup at batch 1]({bars.name})"]
    for model in dict.fromkeys(r["model"] for r in rows):
        model_rows = [r for r in rows if r["model"] == model]
        per_item = model_rows[0].get("gflop_per_item")
        flops_note = f" ({per_item:.4g} GFLOP per item)" if per_item else ""
        parts += ["", f"### {model}{flops_note}", "", markdown_table(model_rows, COLUMNS)]
        settings = sorted({r["int8_settings"] for r in model_rows if r.get("int8_settings")})
        parts += ["", f"ort_int8: {'; '.join(settings)}."] if settings else []
        errors = [f"- {r['variant']} batch {r['batch']}: {r['error']}" for r in model_rows if r.get("error")]
        parts += ["", *errors] if errors else []
        series: dict[str, tuple[list, list]] = {}
        for row in sorted(model_rows, key=lambda r: r["batch"]):
            if row["p50_ms"] is not None:
                xs, ys = series.setdefault(row["variant"], ([], []))
                xs.append(row["batch"])
                ys.append(row["p50_ms"])
        if any(len(xs) > 1 for xs, _ in series.values()):
            plot = line_plot(series, out_dir / f"model_latency_{model}.png", f"{model} p50 latency per call",
                             "batch size", "p50 latency (ms)", log_x=True, log_y=True)
            parts += ["", f"![{model} latency]({plot.name})"]
    return "\n".join(parts)


# ---------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.model_latency", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=("tiny", "base", "cpu"), default="base",
                        help="model sizes: tiny random networks, the full-size architectures, or cpu (base with "
                             "MobileSAM's light SAM encoder) (default %(default)s)")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS),
                        help="models to time (default all)")
    parser.add_argument("--quick", action="store_true",
                        help=f"batches {' and '.join(map(str, QUICK_BATCHES))}; 5 timed calls or 3 s per measurement")
    parser.add_argument("--batches", type=int, nargs="+",
                        help=f"batch sizes (default {', '.join(map(str, DEFAULT_BATCHES))}); sam_decoder is always 1 "
                             f"and sam_encoder stops at {SAM_ENCODER_MAX_BATCH}")
    parser.add_argument("--iterations", type=int, help="timed calls per model, variant and batch (default 50; 5 quick)")
    parser.add_argument("--max-seconds", type=float,
                        help="time budget per model, variant and batch (default 10; 3 with --quick)")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda for the torch variants on the GPU")
    parser.add_argument("--triton-grpc-url", help="a Triton (loopback) serving the fp32 models: adds triton_fp32 rows")
    parser.add_argument("--onnx-repository", type=Path,
                        help="reuse the fp32 models exported here (e.g. model_repository after `make demo`) "
                             "instead of exporting into a scratch folder; int8 goes to a sibling folder")
    parser.add_argument("--out", type=Path, help="results folder (default benchmarks/results/<machine-id>)")
    return parser


def main(argv: list[str] | None = None) -> None:
    from benchmarks.report import save_section

    args = _parser().parse_args(argv)
    batches = args.batches or (QUICK_BATCHES if args.quick else DEFAULT_BATCHES)
    iterations = args.iterations if args.iterations is not None else (5 if args.quick else 50)
    max_seconds = args.max_seconds if args.max_seconds is not None else (3.0 if args.quick else 10.0)
    from benchmarks.flops import PEAK_SECTION, best_peaks, measure_peaks

    peak_rows = measure_peaks(args.device)
    repositories = ({"fp32": args.onnx_repository, "int8": args.onnx_repository.with_name(
        args.onnx_repository.name + "-int8")} if args.onnx_repository else None)
    rows = run(args.models, args.profile, batches, iterations, max_seconds, device=args.device,
               onnx_repositories=repositories, triton_grpc_url=args.triton_grpc_url, peaks=best_peaks(peak_rows))
    save_section(PEAK_SECTION, peak_rows, args.out)
    print(save_section(SECTION, rows, args.out).read_text())


if __name__ == "__main__":
    main()
