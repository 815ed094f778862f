"""Inversion adapter: CLIP-H image tokens of the garment -> 16 pseudo-word embeddings for the text encoder."""

from __future__ import annotations

import copy

import torch
from torch import nn
from transformers import CLIPVisionConfig
from transformers.models.clip.modeling_clip import CLIPEncoderLayer


class InversionAdapter(nn.Module):
    """One CLIP encoder layer -> CLS token -> LayerNorm -> MLP (GELU, Dropout 0.5) -> pseudo-words.

    Published: vision width 1280, MLP 1280 -> 5120 -> 5120 -> 16 * 1024. Checkpoint keys
    `encoder_layers.0.*`, `post_layernorm.*`, `layers.{0,3,6}.*`.
    """

    def __init__(self, vision_config: CLIPVisionConfig, word_dim: int, num_words: int = 16, dropout: float = 0.5):
        super().__init__()
        layer_config = copy.deepcopy(vision_config)
        layer_config._attn_implementation = "sdpa"  # a standalone layer gets no dispatch from a PreTrainedModel
        width = layer_config.hidden_size
        hidden = 4 * width
        self.num_words = num_words
        self.word_dim = word_dim
        self.encoder_layers = nn.ModuleList([CLIPEncoderLayer(layer_config)])
        self.post_layernorm = nn.LayerNorm(width, eps=layer_config.layer_norm_eps)
        self.layers = nn.Sequential(
            nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(hidden, num_words * word_dim),
        )

    def forward(self, image_tokens: torch.Tensor) -> torch.Tensor:
        """image_tokens: B x 257 x 1280 (CLIP-H last_hidden_state)  ->  B x num_words x word_dim."""
        hidden = image_tokens
        for layer in self.encoder_layers:
            hidden = layer(hidden, None)
        cls = self.post_layernorm(hidden[:, 0])
        return self.layers(cls).view(image_tokens.shape[0], self.num_words, self.word_dim)
