"""The CLIP BPE tokenizer SD2 uses, built offline from the vocabulary open_clip bundles.

SD2's `tokenizer/` folder is the OpenAI CLIP BPE (49408 ids, `<|startoftext|>` 49406, `<|endoftext|>` 49407) padded
with "!" (id 0), as OpenCLIP pads with zeros. open_clip ships the same merges as `bpe_simple_vocab_16e6.txt.gz`, so the
tiny profile writes an equivalent folder and both profiles load their tokenizer through one code path.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

from transformers import CLIPTokenizer

MAX_LENGTH = 77
BOS, EOS, PAD = "<|startoftext|>", "<|endoftext|>", "!"
_NUM_MERGES = 49152 - 256 - 2  # vocabulary = 256 bytes x {plain, end-of-word} + merges + 2 specials = 49408


def _byte_symbols() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for bytes 0..255, in vocabulary order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    symbols = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in symbols:
            symbols[b] = chr(256 + extra)
            extra += 1
    return [symbols[b] for b in printable] + [symbols[b] for b in range(256) if b not in printable]


def _bundled_bpe_path() -> Path:
    spec = importlib.util.find_spec("open_clip")  # locate without importing open_clip (and timm) for one file
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("open_clip is not installed; it bundles the CLIP BPE vocabulary the tiny profile uses")
    return Path(next(iter(spec.submodule_search_locations))) / "bpe_simple_vocab_16e6.txt.gz"


def clip_vocabulary() -> tuple[dict[str, int], list[str]]:
    """(token -> id for all 49408 tokens, the 48894 merges as "a b" lines) of the CLIP BPE."""
    lines = gzip.open(_bundled_bpe_path(), "rt", encoding="utf-8").read().split("\n")
    merges = lines[1:_NUM_MERGES + 1]
    symbols = _byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges] + [BOS, EOS]
    return {token: i for i, token in enumerate(tokens)}, merges


def build_clip_tokenizer() -> CLIPTokenizer:
    """An in-memory SD2-style CLIPTokenizer (pads with "!" to 77 tokens)."""
    vocab, merges = clip_vocabulary()
    return CLIPTokenizer(vocab=vocab, merges=[tuple(m.split()) for m in merges], pad_token=PAD,
                         model_max_length=MAX_LENGTH)


def save_clip_tokenizer(directory: Path) -> None:
    """Writes the files of SD2's `tokenizer/` folder (vocab.json, merges.txt, special tokens, config)."""
    directory.mkdir(parents=True, exist_ok=True)
    vocab, merges = clip_vocabulary()
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (directory / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    specials = {"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": PAD}
    (directory / "special_tokens_map.json").write_text(json.dumps(specials, indent=2), encoding="utf-8")
    config = {**specials, "tokenizer_class": "CLIPTokenizer", "model_max_length": MAX_LENGTH,
              "do_lower_case": True, "add_prefix_space": False, "errors": "replace"}
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
