"""Prompt building, the `$` pseudo-word token, and encoding with pseudo-words at token-embedding level."""

from __future__ import annotations

import pytest
import torch
from transformers import CLIPTokenizer

from tryon.components import build_text_encoder
from tryon.config import TINY
from tryon.text_inversion import (encode_prompt, encode_with_pseudo_words, garment_prompt, pseudo_word_token_id,
                                  tokenize)
from tryon.tokenizer import build_clip_tokenizer, save_clip_tokenizer


@pytest.fixture(scope="module")
def tokenizer() -> CLIPTokenizer:
    return build_clip_tokenizer()


@pytest.fixture(scope="module")
def text_encoder():
    torch.manual_seed(0)
    return build_text_encoder(TINY).eval()


def test_prompt_follows_ladi():
    assert garment_prompt("dresses") == "a photo of a model wearing a dress " + " $ " * 16
    assert garment_prompt("upper_body").startswith("a photo of a model wearing an upper body garment ")
    assert garment_prompt("lower_body").startswith("a photo of a model wearing a lower body garment ")


def test_dollar_is_one_token_with_the_sd2_id(tokenizer):
    assert pseudo_word_token_id(tokenizer) == 259


def test_prompt_tokenizes_like_sd2(tokenizer):
    ids = tokenize(tokenizer, garment_prompt("upper_body"))[0].tolist()
    assert len(ids) == 77
    assert ids[:11] == [49406, 320, 1125, 539, 320, 2863, 3309, 550, 7067, 1774, 31418]
    assert ids[11:27] == [259] * 16
    assert ids[27] == 49407 and set(ids[28:]) == {0}  # SD2 pads with "!" (id 0)


def test_saved_tokenizer_folder_loads_to_the_same_ids(tmp_path, tokenizer):
    save_clip_tokenizer(tmp_path)
    loaded = CLIPTokenizer.from_pretrained(tmp_path, local_files_only=True)
    for text in (garment_prompt("dresses"), "", "Hello, naïve café $5"):
        assert torch.equal(tokenize(loaded, text), tokenize(tokenizer, text))


@torch.no_grad()
def test_own_token_embeddings_reproduce_the_plain_encoder(tokenizer, text_encoder):
    ids = tokenize(tokenizer, garment_prompt("lower_body"))
    own = text_encoder.embeddings.token_embedding(ids)[ids == 259].view(1, 16, -1)
    torch.testing.assert_close(encode_with_pseudo_words(text_encoder, ids, own, 259), encode_prompt(text_encoder, ids))


@torch.no_grad()
def test_pseudo_words_change_only_later_positions(tokenizer, text_encoder):
    ids = tokenize(tokenizer, garment_prompt("dresses"))
    first_slot = int((ids[0] == 259).nonzero()[0])
    words = torch.randn(1, 16, TINY.text_encoder.hidden_size)
    encoded = encode_with_pseudo_words(text_encoder, ids, words, 259)
    plain = encode_prompt(text_encoder, ids)
    assert encoded.shape == (1, 77, TINY.text_encoder.hidden_size)
    torch.testing.assert_close(encoded[:, :first_slot], plain[:, :first_slot])  # causal: earlier tokens unchanged
    assert not torch.allclose(encoded[:, first_slot:], plain[:, first_slot:])


def test_wrong_number_of_slots_is_an_error(tokenizer, text_encoder):
    ids = tokenize(tokenizer, "a photo of $ $")
    with pytest.raises(ValueError, match="expected 16 pseudo-word slots"):
        encode_with_pseudo_words(text_encoder, ids, torch.zeros(1, 16, TINY.text_encoder.hidden_size), 259)
