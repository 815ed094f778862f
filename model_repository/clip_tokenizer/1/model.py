"""Triton Python model: UTF-8 strings -> open_clip token ids for clip_text.

Input `text` TYPE_STRING [B, 1]; output `input_ids` TYPE_INT64 [B, L] (L = 77 for CLIP): padded with 0,
truncated keeping EOT, identical to `open_clip.get_tokenizer(<model>)(texts)`. `<model>` and L come
from tokenizer.json beside this file, written by `snapfit export` when it exports clip_text, so the
served ids always match the exported tower. Everything but TritonPythonModel runs without Triton
(tests import this file directly).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

try:
    import triton_python_backend_utils as pb_utils
except ImportError:  # only importable inside Triton's Python backend stub
    pb_utils = None

TOKENIZER_FILE = "tokenizer.json"
DEFAULT_MAX_TEXT_BYTES = 16384
# SimpleTokenizer memoises the BPE of every distinct word forever; a long-running server fed
# arbitrary text would grow without bound, so the memo is reset past this many entries.
MAX_BPE_CACHE_ENTRIES = 100_000


class ClipTokenization:
    """Bx1 (or B) array of UTF-8 bytes -> BxL int64 token ids, with open_clip's tokenizer."""

    def __init__(self, model_name: str, context_length: int, max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES):
        import open_clip  # deferred: the model file must import cheaply for Triton's config parsing

        self.model_name = model_name
        self.context_length = context_length
        self.max_text_bytes = max_text_bytes
        self.tokenizer = open_clip.get_tokenizer(model_name, context_length=context_length)
        self._initial_bpe_cache = dict(getattr(self.tokenizer, "cache", {}))

    @classmethod
    def from_version_dir(cls, version_dir: Path, max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES) -> "ClipTokenization":
        path = Path(version_dir) / TOKENIZER_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing; export clip_text first (`snapfit export`), "
                                    f"which writes it next to this model")
        spec = json.loads(path.read_text())
        return cls(spec["model"], int(spec["context_length"]), max_text_bytes)

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        """raw: Bx1 or B object array of bytes (or str). Raises ValueError naming the first bad item."""
        texts = decode_texts(raw, self.max_text_bytes)
        if not texts:
            return np.zeros((0, self.context_length), dtype=np.int64)
        cache = getattr(self.tokenizer, "cache", None)
        if cache is not None and len(cache) > MAX_BPE_CACHE_ENTRIES:
            self.tokenizer.cache = dict(self._initial_bpe_cache)
        return self.tokenizer(texts).numpy().astype(np.int64)


def decode_texts(raw: np.ndarray, max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES) -> list[str]:
    """Triton TYPE_STRING elements (bytes) as str; ValueError for non-UTF-8 or oversized items."""
    texts = []
    for index, item in enumerate(np.asarray(raw, dtype=object).reshape(-1)):
        data = item.encode("utf-8") if isinstance(item, str) else bytes(item)
        if len(data) > max_text_bytes:
            raise ValueError(f"text[{index}] is {len(data)} bytes; at most {max_text_bytes} are accepted")
        try:
            texts.append(data.decode("utf-8"))
        except UnicodeDecodeError as error:
            raise ValueError(f"text[{index}] is not valid UTF-8 ({error.reason} at byte {error.start})") from None
    return texts


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        output = pb_utils.get_output_config_by_name(config, "input_ids")
        self.output_dtype = pb_utils.triton_string_to_numpy(output["data_type"])
        max_text_bytes = int(_parameter(config, "max_text_bytes", DEFAULT_MAX_TEXT_BYTES))
        version_dir = Path(args["model_repository"]) / args["model_version"]
        self.tokenization = ClipTokenization.from_version_dir(version_dir, max_text_bytes)
        if [int(d) for d in output["dims"]] != [self.tokenization.context_length]:
            raise ValueError(f"config declares input_ids dims {output['dims']} but {TOKENIZER_FILE} has "
                             f"context_length {self.tokenization.context_length}")
        self.tokenization(np.array([[b"warm up"]], dtype=object))  # loads the BPE tables before traffic

    def execute(self, requests):
        return [self._respond(request) for request in requests]

    def _respond(self, request):
        raw = pb_utils.get_input_tensor_by_name(request, "text").as_numpy()
        try:
            ids = self.tokenization(raw)
        except ValueError as error:
            return pb_utils.InferenceResponse(error=_error(str(error), "INVALID_ARG"))
        except Exception as error:  # noqa: BLE001 - one odd string must not take the model down
            return pb_utils.InferenceResponse(error=_error(f"tokenization failed: {error}", "INTERNAL"))
        return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("input_ids", ids.astype(self.output_dtype))])


def _parameter(config: dict, key: str, default):
    return config.get("parameters", {}).get(key, {}).get("string_value", default)


def _error(message: str, code: str):
    code_value = getattr(pb_utils.TritonError, code, None)
    return pb_utils.TritonError(message) if code_value is None else pb_utils.TritonError(message, code_value)
