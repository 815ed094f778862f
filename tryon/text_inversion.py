"""Textual inversion: the garment's pseudo-word embeddings written into the `$` slots of the try-on prompt.

The prompt is `a photo of a model wearing {category text} $ $ ... $` (16 `$`, id 259 in SD2's tokenizer). The `$`
token embeddings are replaced by the inversion adapter's output before position embeddings are added, then the text
encoder's causal transformer and final LayerNorm run as usual.
"""

from __future__ import annotations

import torch
from transformers import CLIPTextModel, CLIPTokenizer

from tryon.config import CATEGORY_TEXT

PSEUDO_WORD = "$"


def garment_prompt(category: str, num_words: int = 16) -> str:
    """The LaDI prompt for a category (upper_body | lower_body | dresses); KeyError for anything else."""
    return f"a photo of a model wearing {CATEGORY_TEXT[category]} {f' {PSEUDO_WORD} ' * num_words}"


def tokenize(tokenizer: CLIPTokenizer, text: str) -> torch.Tensor:
    """text -> 1 x 77 int64 ids, padded and truncated to the tokenizer's model_max_length."""
    return tokenizer(text, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                     return_tensors="pt").input_ids


def pseudo_word_token_id(tokenizer: CLIPTokenizer) -> int:
    """The id `$` gets in a prompt (259 for SD2); ValueError if the tokenizer splits it."""
    ids = tokenizer(f" {PSEUDO_WORD} ", add_special_tokens=False).input_ids
    if len(ids) != 1:
        raise ValueError(f"the tokenizer splits {PSEUDO_WORD!r} into {ids}; pseudo-words need a single token")
    return ids[0]


def encode_prompt(text_encoder: CLIPTextModel, input_ids: torch.Tensor) -> torch.Tensor:
    """B x 77 ids -> B x 77 x D text embeddings (last_hidden_state, after the final LayerNorm)."""
    return text_encoder(input_ids.to(text_encoder.device)).last_hidden_state


def encode_with_pseudo_words(text_encoder: CLIPTextModel, input_ids: torch.Tensor, words: torch.Tensor,
                             token_id: int) -> torch.Tensor:
    """Encodes B x 77 ids whose `token_id` slots are replaced, in order, by `words` (B x N x D).

    Every row must hold exactly N `token_id` tokens. Returns B x 77 x D, like `encode_prompt`.
    """
    input_ids = input_ids.to(text_encoder.device)
    slots = input_ids == token_id
    counts = slots.sum(dim=1)
    if not torch.all(counts == words.shape[1]):
        raise ValueError(f"expected {words.shape[1]} pseudo-word slots per prompt, found {counts.tolist()}")
    token_embeds = text_encoder.embeddings.token_embedding(input_ids)
    token_embeds = token_embeds.masked_scatter(slots.unsqueeze(-1), words.to(token_embeds.dtype))
    hidden = text_encoder.embeddings(inputs_embeds=token_embeds)  # adds the position embeddings
    hidden = text_encoder.encoder(inputs_embeds=hidden, attention_mask=causal_attention_mask(hidden)).last_hidden_state
    return text_encoder.final_layer_norm(hidden)


def causal_attention_mask(hidden: torch.Tensor) -> torch.Tensor:
    """B x 1 x T x T additive mask (0 on and below the diagonal, dtype minimum above) for B x T x D states.

    Built here rather than with transformers' mask helpers: `_build_causal_attention_mask` is gone, and
    `create_causal_mask` changed its signature within 5.x (it takes `cache` in 5.24, not in 5.17). CLIP's eager and
    SDPA attention take a 4D additive mask in both (checked), and the unit tests compare the result with the
    library's own `CLIPTextModel` forward.
    """
    b, t = hidden.shape[:2]
    blocked = torch.ones(t, t, dtype=torch.bool, device=hidden.device).triu(1)
    mask = torch.zeros(t, t, dtype=hidden.dtype, device=hidden.device).masked_fill(blocked,
                                                                                   torch.finfo(hidden.dtype).min)
    return mask.expand(b, 1, t, t)
