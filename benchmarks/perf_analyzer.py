"""Load on Triton itself: a gRPC concurrency sweep per model with NVIDIA's perf_analyzer.

    python -m benchmarks.perf_analyzer --grpc-url 127.0.0.1:8001 --quick
    python -m benchmarks.perf_analyzer --grpc-url 127.0.0.1:8001 --models clip_text sam_decoder --concurrency 1 2 4 8

perf_analyzer (tritonclient 2.41's C++ load generator, unpacked into .tools/ by `make env`) keeps `concurrency`
requests in flight and reports client latency percentiles plus the server's own breakdown (queue, compute) for each
level. Its random input data is wrong for several of our models (clip_text's int64 ids must be CLIP token ids, SAM's
decoder needs a click inside the image and a real `orig_im_size`), so every model gets an `--input-data` JSON of
realistic requests shaped by the served model's config. Each concurrency level is one perf_analyzer run bounded by
`--max-trials` windows and a subprocess timeout, and counts once perf_analyzer finds its last 3 windows within
`--stability-percentage` (10 % by default, perf_analyzer's own default) of each other; a level that fails (never stable,
rejected, timed out) becomes a row with `error` set, its windows kept, instead of stopping the sweep. Only loopback
servers are accepted.
"""

from __future__ import annotations

import argparse
import base64
import csv
import io
import ipaddress
import json
import os
import re
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from benchmarks.report import Column, format_value, line_plot, markdown_table, register_section
from snapfit import contract

SECTION = "perf_analyzer"
REPO_ROOT = Path(__file__).resolve().parent.parent
TOOLS_DIR = REPO_ROOT / ".tools"
# where the Makefile's perf-analyzer target unpacks the tritonclient 2.41 and nvidia-cuda-runtime-cu12 wheels
BINARY_GLOB = "perf_analyzer-*/tritonclient-*.data/data/bin/perf_analyzer"
CUDART_GLOB = "cuda-runtime-*/nvidia/cuda_runtime/lib"

# Not by default: sam_encoder (vit_b takes ~15 s per image on CPU: give it --measurement-ms 60000), ladi_vton (minutes
# per try-on on CPU) and clip_text_embed: perf_analyzer 2.41 fails on our ensemble ("failed to find the requested model
# version" while reading its composing models' statistics; the steps name model_version -1).
DEFAULT_MODELS = (contract.CLIP_TEXT, contract.CLIP_IMAGE, contract.TRYON_CLASSIFIER, contract.SAM_DECODER)
QUICK_MODELS = (contract.CLIP_TEXT, contract.CLIP_IMAGE, contract.SAM_DECODER)
DEFAULT_CONCURRENCIES = (1, 2, 4)
QUICK_CONCURRENCIES = (1, 2)
# perf_analyzer accepts a level once its last 3 windows' throughput and p95 lie within this many percent of their mean
DEFAULT_STABILITY_PCT = 10.0
# windows per level before perf_analyzer gives up as unstable: 3 to fill its comparison, then room for 7 more
DEFAULT_MAX_TRIALS = 10
QUICK_MAX_TRIALS = 6
# so loose it never rejects: the level is whatever the last 3 windows measured, and spread_pct says how steady; rows
# measured with it have stable None (not judged), never True
ANY_STABILITY_PCT = 1_000_000.0
# perf_analyzer's message for a level that never stabilised (2.41: "Failed to obtain stable measurement within N
# measurement windows for concurrency C. Please try to increase the --measurement-interval.")
UNSTABLE = re.compile(r"Failed to obtain stable measurement", re.IGNORECASE)

# perf_analyzer's CSV (-f) header -> row key; every latency column is in microseconds, averaged per request
CSV_FIELDS = {
    "Inferences/Second": "infer_per_s",
    "p50 latency": "p50_ms", "p90 latency": "p90_ms", "p95 latency": "p95_ms", "p99 latency": "p99_ms",
    "Client Send": "client_send_ms", "Network+Server Send/Recv": "network_ms", "Server Queue": "server_queue_ms",
    "Server Compute Input": "server_compute_input_ms", "Server Compute Infer": "server_compute_infer_ms",
    "Server Compute Output": "server_compute_output_ms", "Client Recv": "client_recv_ms",
}
# the CSV has no average column (2.41): its breakdown columns add up to the average client latency
AVERAGE_PARTS = ("client_send_ms", "network_ms", "server_queue_ms", "server_compute_input_ms",
                 "server_compute_infer_ms", "server_compute_output_ms", "client_recv_ms")
RESULT_KEYS = ("infer_per_s", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "avg_ms", *AVERAGE_PARTS)
# one line per measurement window with -v: "Pass [2] throughput: 66.6194 infer/sec. p95 latency: 21477 usec"
PASS_LINE = re.compile(r"Pass \[\d+\] throughput: ([\d.]+) infer/sec\. p95 latency: (\d+) usec")

# CLIP's BPE vocabulary (open_clip SimpleTokenizer; the tiny profile keeps it): ids < 49408, SOT/EOT at the end
CLIP_VOCAB_SIZE = 49408
CLIP_SOT, CLIP_EOT = 49406, 49407
FASHION_QUERIES = ("black dress", "floral summer dress", "oversized denim jacket", "white sneakers size 250",
                   "red leather biker jacket with silver zippers", "but in black", "striped linen shirt, relaxed fit",
                   "검은색 원피스")
SAM_IMAGE_HW = (1024, 768)  # a portrait photo; the encoder gets it resized so its longest side is 1024
TRYON_STEPS, TRYON_GUIDANCE, TRYON_SCHEDULER = 50, 7.5, "ddim"  # orchestrator TryOnSettings defaults

Arrays = dict[str, np.ndarray]


class PerfAnalyzerMissing(RuntimeError):
    """The perf_analyzer binary (or the CUDA runtime it links) is not under .tools/."""


# ---------------------------------------------------------------- the binary


def find_binary(tools_dir: Path = TOOLS_DIR) -> Path:
    """The perf_analyzer executable unpacked by `make env`; raises PerfAnalyzerMissing when absent."""
    found = sorted(p for p in Path(tools_dir).glob(BINARY_GLOB) if os.access(p, os.X_OK))
    if not found:
        raise PerfAnalyzerMissing(f"perf_analyzer is not installed under {tools_dir}; run `make env` "
                                  "(or `make perf-analyzer`) to unpack it")
    return found[-1]


def binary_environment(tools_dir: Path = TOOLS_DIR, base: dict[str, str] | None = None) -> dict[str, str]:
    """`base` (default os.environ) with the unpacked CUDA runtime's lib folder first on LD_LIBRARY_PATH.

    perf_analyzer links libcudart.so.12 even for gRPC-only runs; raises PerfAnalyzerMissing when it is absent.
    """
    libs = sorted(str(p) for p in Path(tools_dir).glob(CUDART_GLOB) if (p / "libcudart.so.12").exists())
    if not libs:
        raise PerfAnalyzerMissing(f"libcudart.so.12 (nvidia-cuda-runtime-cu12) is not unpacked under {tools_dir}; "
                                  "run `make env` (or `make perf-analyzer`)")
    env = dict(os.environ if base is None else base)
    env["LD_LIBRARY_PATH"] = os.pathsep.join([libs[-1], *filter(None, [env.get("LD_LIBRARY_PATH")])])
    return env


def loopback_address(grpc_url: str) -> str:
    """"HOST:PORT" of a loopback gRPC endpoint (localhost, 127.0.0.0/8, [::1]); ValueError for anything else.

    Load loops only ever target this machine, so a typo cannot turn the benchmark on someone else's server.
    """
    host, sep, port = grpc_url.rpartition(":")
    if not sep or not port.isdigit() or "/" in grpc_url:
        raise ValueError(f"expected a gRPC address HOST:PORT such as 127.0.0.1:8001, got {grpc_url!r}")
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        loopback = bare == "localhost" or ipaddress.ip_address(bare).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"perf_analyzer only targets loopback servers (localhost, 127.0.0.1, [::1]), got {host!r}")
    return grpc_url


# ---------------------------------------------------------------- model configs and input data


def served_config(grpc_url: str, model: str, timeout_s: float = 30.0) -> dict:
    """The model's config as the server loaded it (dict with proto field names; int64 fields may be strings)."""
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(loopback_address(grpc_url))
    try:
        return client.get_model_config(model, as_json=True, client_timeout=timeout_s)["config"]
    finally:
        client.close()


def repository_config(model: str, config_name: str | None = "cpu",
                      repository: Path = REPO_ROOT / "model_repository") -> dict:
    """The committed config of `model` in the same dict form as `served_config`.

    config_name "cpu" reads configs/cpu.pbtxt when the model has one (as `snapfit triton` serves it), None the GPU
    config.pbtxt.
    """
    from google.protobuf import json_format, text_format
    from tritonclient.grpc import model_config_pb2

    folder = Path(repository) / model
    path = folder / "configs" / f"{config_name}.pbtxt" if config_name else folder / "config.pbtxt"
    if not path.exists():
        path = folder / "config.pbtxt"
    config = text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())
    return json_format.MessageToDict(config, preserving_proto_field_name=True)


def declared_inputs(config: dict) -> dict[str, tuple[str, list[int]]]:
    """{input name: (Triton dtype without TYPE_, dims without the batch axis)} of the required inputs."""
    return {i["name"]: (i["data_type"].removeprefix("TYPE_"), [int(d) for d in i.get("dims", [])])
            for i in config.get("input", []) if not i.get("optional", False)}


def _fill(dims: Sequence[int], sizes: Sequence[int]) -> tuple[int, ...]:
    """dims with each -1 replaced by the next of `sizes`."""
    free = iter(sizes)
    return tuple(next(free) if d == -1 else d for d in dims)


def _clip_ids(shape: tuple[int, ...], query: str, rng: np.random.Generator) -> np.ndarray:
    """SOT, one id per word-piece (~1.3 per word, as BPE gives on English), EOT, zero padding: open_clip's layout.

    Values do not change the tower's cost (every position is computed), but out-of-vocabulary ids fail the Gather.
    """
    context = shape[-1]
    pieces = min(context - 2, max(1, round(len(query.split()) * 1.3)))
    ids = np.zeros(shape, dtype=np.int64)
    ids[..., 0] = CLIP_SOT
    ids[..., 1:1 + pieces] = rng.integers(256, CLIP_SOT, size=pieces)
    ids[..., 1 + pieces] = CLIP_EOT
    return ids


def _sam_decoder(inputs, rng, index):
    from snapfit.preprocessing.sam import prompt_arrays

    height, width = SAM_IMAGE_HW
    # one foreground click somewhere on the middle of the garment area, different per request
    click = [[width * rng.uniform(0.3, 0.7), height * rng.uniform(0.3, 0.7)]]
    arrays = prompt_arrays(click, [1], None, (height, width))
    # image embeddings of a real encoder are O(0.1); their values do not change the decoder's cost
    arrays["image_embeddings"] = (0.1 * rng.standard_normal(inputs["image_embeddings"][1])).astype(np.float32)
    return arrays


def _tryon(inputs, rng, index):
    height, width = _fill(inputs["person"][1], (512, 384))[:2]
    keypoints = np.stack([rng.uniform(0.25, 0.75, 18) * width, rng.uniform(0.1, 0.9, 18) * height,
                          np.ones(18)], axis=1).astype(np.float32)
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[height // 5:height * 3 // 5, width // 5:width * 4 // 5] = 1  # the upper body
    return {"person": rng.integers(0, 256, (height, width, 3), dtype=np.uint8),
            "garment": rng.integers(0, 256, (height, width, 3), dtype=np.uint8),
            "keypoints": keypoints, "inpaint_mask": mask, "category": np.array([b"upper_body"], dtype=object),
            "steps": np.array([TRYON_STEPS], dtype=np.int32), "guidance": np.array([TRYON_GUIDANCE], np.float32),
            "seed": np.array([index], dtype=np.int64), "scheduler": np.array([TRYON_SCHEDULER.encode()], object)}


def _image(name: str, free_dims: Sequence[int] = ()) -> Callable:
    # content does not change any image model's cost; random pixels rather than zeros so no path short-cuts
    return lambda inputs, rng, index: {name: rng.integers(0, 256, _fill(inputs[name][1], free_dims), dtype=np.uint8)}


def _text(inputs, rng, index):
    return {"text": np.array([FASHION_QUERIES[index % len(FASHION_QUERIES)].encode()], dtype=object)}


# model -> (declared inputs, rng, request index) -> {input: one request's array, without the batch axis}
INPUT_MAKERS: dict[str, Callable[[dict, np.random.Generator, int], Arrays]] = {
    contract.CLIP_IMAGE: _image("image"),
    contract.TRYON_CLASSIFIER: _image("image"),
    contract.SAM_ENCODER: _image("image", SAM_IMAGE_HW),
    contract.CLIP_TEXT: lambda inputs, rng, index: {"input_ids": _clip_ids(
        tuple(inputs["input_ids"][1]), FASHION_QUERIES[index % len(FASHION_QUERIES)], rng)},
    contract.CLIP_TOKENIZER: _text,
    contract.CLIP_TEXT_EMBED: _text,
    contract.SAM_DECODER: _sam_decoder,
    contract.LADI_VTON: _tryon,
}


def model_inputs(model: str, config: dict, requests: int = 4, seed: int = 0) -> list[Arrays]:
    """`requests` distinct batch-1 requests for `model`, shaped by `config` (no batch axis when it batches).

    Optional inputs are left out. Raises KeyError for a model without a maker in INPUT_MAKERS, ValueError when the
    maker disagrees with the config (a stale config would otherwise be measured with the wrong tensors).
    """
    if model not in INPUT_MAKERS:
        raise KeyError(f"no input data for model '{model}'; known: {', '.join(INPUT_MAKERS)}")
    inputs = declared_inputs(config)
    # optional inputs are left out, as the orchestrator leaves them out (sam_decoder's CPU config: a click without
    # a previous mask runs the graph with its mask branch folded)
    optional = {i["name"] for i in config.get("input", []) if i.get("optional", False)}
    rng = np.random.default_rng(seed)
    result = []
    for index in range(requests):
        arrays = {name: value for name, value in INPUT_MAKERS[model](inputs, rng, index).items()
                  if name not in optional}
        if set(arrays) != set(inputs):
            raise ValueError(f"{model}: input data has {sorted(arrays)}, the config declares {sorted(inputs)}")
        for name, (_, dims) in inputs.items():
            shape = arrays[name].shape
            if len(shape) != len(dims) or any(d not in (-1, s) for d, s in zip(dims, shape)):
                raise ValueError(f"{model}: input '{name}' has shape {list(shape)}, the config declares {dims}")
        result.append(arrays)
    return result


def _encode(array: np.ndarray) -> dict:
    """One tensor in perf_analyzer's JSON: strings and small ints as content, everything else as raw bytes (b64)."""
    shape = list(array.shape)
    if array.dtype == object:
        return {"content": [v.decode() if isinstance(v, bytes) else str(v) for v in array.reshape(-1)], "shape": shape}
    if array.dtype.kind in "iu" and array.size <= 4096:
        return {"content": array.reshape(-1).tolist(), "shape": shape}
    return {"b64": base64.b64encode(np.ascontiguousarray(array).tobytes()).decode(), "shape": shape}


def input_data(model: str, config: dict, requests: int = 4, seed: int = 0) -> dict:
    """perf_analyzer's `--input-data` JSON document: {"data": [{input: {"content"|"b64": ..., "shape": [...]}}]}.

    perf_analyzer cycles through the requests; with -b B it repeats each one B times along the batch axis.
    """
    return {"data": [{name: _encode(array) for name, array in arrays.items()}
                     for arrays in model_inputs(model, config, requests, seed)]}


# ---------------------------------------------------------------- running it


def parse_csv(text: str) -> list[dict]:
    """perf_analyzer's `-f` CSV -> one dict per concurrency: concurrency, infer_per_s, p50..p99_ms, avg_ms and the
    client/server breakdown in ms (columns it did not write are None)."""
    rows = []
    for record in csv.DictReader(io.StringIO(text)):
        record = {k.strip(): v for k, v in record.items() if k}
        if not record.get("Concurrency"):
            continue
        row: dict = {"concurrency": int(record["Concurrency"])}
        for header, key in CSV_FIELDS.items():
            value = record.get(header)
            value = float(value) if value not in (None, "") else None
            row[key] = value if value is None or key == "infer_per_s" else value / 1000.0  # usec -> ms
        parts = [row[k] for k in AVERAGE_PARTS]
        row["avg_ms"] = sum(parts) if all(p is not None for p in parts) else None
        rows.append(row)
    return rows


def parse_windows(output: str) -> dict:
    """The per-window throughput and p95 perf_analyzer printed (-v), and the throughput spread of the last 3 windows
    (the ones it judges stability on) as (max / min - 1) in percent; None when there are fewer than 3."""
    windows = [(float(t), int(p) / 1000.0) for t, p in PASS_LINE.findall(output)]
    last = [t for t, _ in windows[-3:]]
    spread = (max(last) / min(last) - 1) * 100 if len(last) == 3 and min(last) > 0 else None
    return {"window_infer_per_s": [t for t, _ in windows], "window_p95_ms": [p for _, p in windows],
            "spread_pct": spread}


def command(binary: Path, address: str, model: str, batch: int, concurrency: int, data_file: Path, csv_file: Path,
            measurement_ms: int, max_trials: int, stability_pct: float, streaming: bool = False) -> list[str]:
    """The perf_analyzer argv of one concurrency level (time windows, stabilised on p95)."""
    args = [str(binary), "-i", "grpc", "-u", address, "-m", model, "-b", str(batch),
            "--concurrency-range", str(concurrency), "--measurement-mode", "time_windows",
            "--measurement-interval", str(measurement_ms), "--max-trials", str(max_trials),
            "--stability-percentage", f"{stability_pct:.10g}", "--percentile=95",
            "--input-data", str(data_file), "-f", str(csv_file), "-v"]
    return args + (["--streaming"] if streaming else [])


def _failure(output: str, returncode: int) -> str:
    """The useful line of a failed run: perf_analyzer's own error lines, not its settings banner."""
    lines = [re.sub(r"^Pass \[\d+\]\s*", "", ln.strip()) for ln in output.splitlines() if ln.strip()]
    errors = [ln for ln in lines if any(w in ln.lower() for w in ("error", "fail", "unable", "invalid", "expect"))]
    return " ".join(dict.fromkeys(errors or lines[-2:]))[:500] or f"perf_analyzer exited with {returncode}"


def _unstable(windows: dict, measurement_ms: int, max_trials: int, stability_pct: float) -> str:
    """The error of a level perf_analyzer could not stabilise, with the spread that kept it from doing so."""
    spread = windows["spread_pct"]
    measured = "" if spread is None else f"; the last 3 windows' throughput spread {spread:.0f} %"
    return (f"not stable: {len(windows['window_infer_per_s'])} of at most {max_trials} windows of {measurement_ms} ms "
            f"never had 3 in a row within {stability_pct:g} %{measured}")


def run_level(binary: Path, env: dict[str, str], address: str, model: str, batch: int, concurrency: int,
              data_file: Path, workdir: Path, measurement_ms: int, max_trials: int, stability_pct: float,
              timeout_s: float, streaming: bool = False) -> dict:
    """One perf_analyzer run at one concurrency -> its parsed CSV row plus `error` (None when it measured) and
    `stable`: True when perf_analyzer accepted the level under `stability_pct`, False when it never stabilised (an
    error row that keeps its windows), None when not judged (ANY_STABILITY_PCT, or another failure)."""
    csv_file = workdir / f"{model}-b{batch}-c{concurrency}.csv"
    argv = command(binary, address, model, batch, concurrency, data_file, csv_file, measurement_ms, max_trials,
                   stability_pct, streaming)
    row: dict = {"concurrency": concurrency, **dict.fromkeys(RESULT_KEYS), **parse_windows(""), "stable": None}
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as e:  # subprocess.run has already killed it
        partial = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else e.stdout or ""
        return {**row, **parse_windows(partial), "error": f"timed out after {timeout_s:g} s"}
    row.update(parse_windows(done.stdout))
    parsed = parse_csv(csv_file.read_text()) if csv_file.exists() else []
    output = done.stdout + "\n" + done.stderr
    if done.returncode != 0 and UNSTABLE.search(output):
        return {**row, "stable": False, "error": _unstable(row, measurement_ms, max_trials, stability_pct)}
    if done.returncode != 0 or not parsed:
        return {**row, "error": _failure(output, done.returncode)}
    return {**row, **parsed[0], "stable": True if stability_pct < ANY_STABILITY_PCT else None, "error": None}


def sweep(grpc_url: str, model: str, concurrencies: Sequence[int] = DEFAULT_CONCURRENCIES, batch: int = 1,
          measurement_ms: int = 5000, max_trials: int = DEFAULT_MAX_TRIALS, timeout_s: float | None = None,
          stability_pct: float = DEFAULT_STABILITY_PCT, tools_dir: Path = TOOLS_DIR) -> list[dict]:
    """One row per concurrency level for `model` served at `grpc_url` (loopback only, else ValueError).

    Each level is its own perf_analyzer run: `max_trials` windows of `measurement_ms` at most, stable once the last
    3 windows' throughput and p95 lie within `stability_pct` percent (a level that never is becomes an error row with
    stable False); `timeout_s` bounds one level (default: the windows' total twice over plus 60 s). Row: model, batch,
    concurrency, infer_per_s (items/s: requests x batch), p50/p90/p95/p99/avg_ms (per request), the client/server
    breakdown in ms (server_queue_ms, server_compute_infer_ms, ...), measurement settings, window_infer_per_s /
    window_p95_ms (every window measured) with spread_pct (throughput spread of the last 3), stable (see run_level)
    and error: None, or why that level has no numbers.
    Raises PerfAnalyzerMissing when the binary is not installed; never raises for one failing model or level.
    """
    address = loopback_address(grpc_url)
    binary, env = find_binary(tools_dir), binary_environment(tools_dir)
    timeout_s = timeout_s or 2 * max_trials * measurement_ms / 1000 + 60
    base = {"model": model, "batch": batch, "measurement_ms": measurement_ms, "max_trials": max_trials,
            "stability_pct": stability_pct}
    with tempfile.TemporaryDirectory(prefix="snapfit-perf-") as tmp:
        workdir = Path(tmp)
        try:
            config = served_config(address, model)
            data_file = workdir / f"{model}.json"
            data_file.write_text(json.dumps(input_data(model, config)))
        except Exception as e:  # noqa: BLE001 - an unknown or unloaded model is one failed row set, not a crash
            return [{**base, "concurrency": c, **dict.fromkeys(RESULT_KEYS), **parse_windows(""), "stable": None,
                     "error": f"{type(e).__name__}: {e}"}
                    for c in concurrencies]
        streaming = bool(config.get("model_transaction_policy", {}).get("decoupled", False))
        return [{**base, **run_level(binary, env, address, model, batch, c, data_file, workdir, measurement_ms,
                                     max_trials, stability_pct, timeout_s, streaming)}
                for c in concurrencies]


# ---------------------------------------------------------------- report


def _series(rows: list[dict], y_key: str) -> dict[str, tuple[list, list]]:
    """{"model (bB)": (concurrencies, values)} for line_plot, in concurrency order."""
    series: dict[str, tuple[list, list]] = {}
    for row in sorted(rows, key=lambda r: r["concurrency"]):
        xs, ys = series.setdefault(f"{row['model']} (b{row['batch']})", ([], []))
        xs.append(row["concurrency"])
        ys.append(row[y_key])
    return series


def _ms(value: object) -> str:
    return "—" if value is None else f"{value:.3g}" if value < 10 else f"{value:,.0f}"


@register_section(SECTION, "Triton gRPC concurrency sweep (perf_analyzer)")
def render_perf_analyzer(rows: list[dict], out_dir: Path) -> str:
    """Table of every level plus two plots over the measured levels: throughput and p95 vs concurrency per model."""
    if not rows:
        return "_no rows_"
    columns: list[Column] = [
        ("model", "model", format_value), ("batch", "batch", format_value),
        ("concurrency", "concurrency", format_value), ("infer/s", "infer_per_s", format_value),
        ("p50 ms", "p50_ms", _ms), ("p90 ms", "p90_ms", _ms), ("p95 ms", "p95_ms", _ms), ("p99 ms", "p99_ms", _ms),
        ("avg ms", "avg_ms", _ms), ("queue ms", "server_queue_ms", _ms),
        ("compute ms", "server_compute_infer_ms", _ms), ("network ms", "network_ms", _ms),
        ("spread %", "spread_pct", _ms), ("error", "error", format_value)]
    measured = [r for r in rows if r.get("error") is None]
    first = rows[0]
    stability = first.get("stability_pct") or 0
    accepted = ("its last 3 windows accepted whatever their spread (not judged for stability)"
                if stability >= ANY_STABILITY_PCT else
                f"stable once its last 3 windows agree within {format_value(stability)} % on p95 and throughput; a "
                "level that never did is an error row")
    note = (f"perf_analyzer (gRPC, synchronous clients, realistic `--input-data` per model): each level is its own "
            f"run of up to {first.get('max_trials')} windows of {first.get('measurement_ms')} ms, {accepted} "
            "(spread % is the throughput spread of the 3 windows a level reports; a large one means the numbers "
            "moved between windows). infer/s counts items (requests x batch); latencies are per request; "
            "queue/compute are the server's averages; network is the rest of the round trip. A level with an error "
            "has no numbers.")
    parts = [note, "", markdown_table(rows, columns)]
    if measured:
        throughput = line_plot(_series(measured, "infer_per_s"),
                               out_dir / "perf_analyzer_throughput.png", "Triton throughput vs concurrency (gRPC)",
                               "requests in flight", "inferences / s")
        p95 = line_plot(_series(measured, "p95_ms"), out_dir / "perf_analyzer_p95.png",
                        "Triton p95 latency vs concurrency (gRPC)", "requests in flight", "p95 latency (ms)",
                        log_y=True)
        parts += ["", f"![throughput]({throughput.name})", "", f"![p95 latency]({p95.name})"]
    return "\n".join(parts)


# ---------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.perf_analyzer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grpc-url", default=f"127.0.0.1:{contract.TRITON_GRPC_PORT}",
                        help="Triton gRPC address, loopback only (default %(default)s)")
    others = ", ".join(sorted(set(INPUT_MAKERS) - set(DEFAULT_MODELS)))
    parser.add_argument("--models", nargs="+", choices=sorted(INPUT_MAKERS), metavar="MODEL",
                        help=f"models to sweep (default {' '.join(DEFAULT_MODELS)}; with --quick "
                             f"{' '.join(QUICK_MODELS)}); also: {others}")
    parser.add_argument("--concurrency", type=int, nargs="+",
                        help=f"requests in flight per level (default {' '.join(map(str, DEFAULT_CONCURRENCIES))}; "
                             f"--quick {' '.join(map(str, QUICK_CONCURRENCIES))})")
    parser.add_argument("--batch", type=int, default=1, help="batch size of every request (default %(default)s; "
                                                             "models without a batch axis need 1)")
    parser.add_argument("--measurement-ms", type=int,
                        help="length of one measurement window (default 5000; --quick 2000); a window must hold "
                             "several requests, so slow models need longer ones")
    parser.add_argument("--max-trials", type=int, help="windows per level before giving up as unstable "
                                                       f"(default {DEFAULT_MAX_TRIALS}; --quick {QUICK_MAX_TRIALS})")
    parser.add_argument("--stability-pct", type=float, default=DEFAULT_STABILITY_PCT,
                        help="how far (percent of their mean) the last 3 windows' throughput and p95 may lie apart "
                             "for a level to count (default %(default)g, also with --quick); a level that never "
                             "gets there is reported as not stable")
    parser.add_argument("--timeout-s", type=float, help="kill one level's perf_analyzer after this long "
                                                        "(default 2 x windows + 60 s)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 models, concurrency 1 and 2, short windows")
    parser.add_argument("--out", type=Path, help="results folder (default benchmarks/results/<machine-id>)")
    return parser


def main(argv: list[str] | None = None) -> None:
    from benchmarks.report import save_section

    parser = _parser()
    args = parser.parse_args(argv)
    try:
        loopback_address(args.grpc_url)
        find_binary(), binary_environment()
    except (ValueError, PerfAnalyzerMissing) as e:
        parser.error(str(e))
    models = args.models or (QUICK_MODELS if args.quick else DEFAULT_MODELS)
    concurrencies = args.concurrency or (QUICK_CONCURRENCIES if args.quick else DEFAULT_CONCURRENCIES)
    rows = []
    for model in models:
        model_rows = sweep(args.grpc_url, model, concurrencies, batch=args.batch,
                           measurement_ms=args.measurement_ms or (2000 if args.quick else 5000),
                           max_trials=args.max_trials or (QUICK_MAX_TRIALS if args.quick else DEFAULT_MAX_TRIALS),
                           timeout_s=args.timeout_s, stability_pct=args.stability_pct)
        for row in model_rows:
            status = row["error"] or f"{row['infer_per_s']:.1f} infer/s, p95 {row['p95_ms']:.1f} ms"
            print(f"{model:>18}  batch {row['batch']}, concurrency {row['concurrency']}: {status}", flush=True)
        rows += model_rows
    print(save_section(SECTION, rows, args.out).read_text())


if __name__ == "__main__":
    main()
