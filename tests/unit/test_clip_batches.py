"""A CLIP training batch built faster gives the same numbers: open_clip's transforms with their tensor stages run on
the batch equal the per-photo stack bit for bit (random crops included), and a text batch cut to its longest text
gives the same features and gradients as the full 77-token context."""

from __future__ import annotations

import contextlib
import copy

import numpy as np
import open_clip
import pytest
import torch
from open_clip.transform import image_transform_v2
from PIL import Image
from torchvision.transforms import Compose, Normalize, Resize, ToTensor

from export.clip_batches import batch_transform, clip_forward, used_context
from export.clip_models import TINY_CONFIG, load_network


@pytest.fixture(scope="module")
def network():
    return load_network("tiny-p32", None, 0)


def _photos(sizes, modes=None):
    rng = np.random.default_rng(0)
    photos = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes]
    return [p.convert(m) for p, m in zip(photos, modes)] if modes else photos


@pytest.mark.parametrize("is_train", [True, False], ids=["train (random crops)", "eval"])
def test_the_batched_tensor_stages_give_the_per_photo_stack_bit_for_bit(network, is_train):
    transform = image_transform_v2(network.preprocess, is_train=is_train)
    photos = _photos([(224, 224), (300, 224), (224, 260), (400, 512)], modes=["RGB", "RGBA", "L", "RGB"])
    torch.manual_seed(5)
    expected = torch.stack([transform(photo) for photo in photos])
    torch.manual_seed(5)
    to_tensor = next(type(stage) for stage in transform.transforms if isinstance(stage, ToTensor))  # MaybeToTensor
    with counted_calls(to_tensor, "__call__") as to_tensor_calls:
        batched = batch_transform(transform)(photos)
    assert to_tensor_calls == [] and batched.shape == (4, 3, 224, 224) and batched.dtype == torch.float32
    assert torch.equal(batched, expected)


def test_photos_the_batched_stages_cannot_take_run_photo_by_photo():
    grey = Compose([Resize(32), ToTensor(), Normalize((0.5,), (0.25,))])  # no conversion to RGB
    photos = _photos([(32, 32), (48, 48)], modes=["L", "L"])
    with counted_calls(ToTensor, "__call__") as to_tensor_calls:
        views = batch_transform(grey)(photos)
    assert len(to_tensor_calls) == 2 and torch.equal(views, torch.stack([grey(photo) for photo in photos]))
    with pytest.raises(RuntimeError, match="stack expects each tensor to be equal size"):  # as stacking them would
        batch_transform(Compose([Resize(32), ToTensor()]))(_photos([(32, 32), (64, 32)]))


def test_a_transform_it_cannot_split_runs_photo_by_photo():
    def to_tensor(photo):
        return torch.from_numpy(np.asarray(photo, dtype=np.float32)).permute(2, 0, 1) / 255

    photos = _photos([(8, 8), (8, 8)])
    assert torch.equal(batch_transform(to_tensor)(photos), torch.stack([to_tensor(p) for p in photos]))


@contextlib.contextmanager
def counted_calls(cls, name):
    """Records each call of cls.name (still calling it) while the block runs."""
    calls, original = [], getattr(cls, name)

    def recording(self, *args, **kwargs):
        calls.append(args)
        return original(self, *args, **kwargs)

    setattr(cls, name, recording)
    try:
        yield calls
    finally:
        setattr(cls, name, original)


def _tokens(network, texts):
    return open_clip.get_tokenizer(network.tokenizer_name, context_length=network.context_length)(texts)


def test_texts_cut_to_the_longest_give_the_same_features_and_gradients(network):
    model = copy.deepcopy(network.model).train()
    texts = _tokens(network, ["red dress", "navy striped long sleeve cotton hoodie", "빨간색 원피스"])
    images = torch.randn(3, 3, 224, 224)
    used = used_context(model, texts)
    assert used == int((texts != 0).sum(dim=1).max()) < texts.shape[1]
    lengths = []
    model.transformer.register_forward_pre_hook(lambda module, args: lengths.append(args[0].shape[1]))
    results = []
    for forward in (lambda: model(images, texts), lambda: clip_forward(model, images, texts)):
        model.zero_grad(set_to_none=True)
        image_features, text_features, scale = forward()
        (image_features @ text_features.T * scale).logsumexp(dim=1).sum().backward()
        results.append((text_features.detach(), {n: p.grad.clone() for n, p in model.named_parameters()
                                                  if p.grad is not None}))
    (full, full_grads), (cut, cut_grads) = results
    assert lengths == [texts.shape[1], used]  # the text transformer saw the cut sequence
    torch.testing.assert_close(cut, full, atol=1e-6, rtol=1e-5)
    assert full_grads.keys() == cut_grads.keys() and "positional_embedding" in cut_grads
    for name in full_grads:
        torch.testing.assert_close(cut_grads[name], full_grads[name], atol=1e-5, rtol=1e-4, msg=name)
    assert model.positional_embedding.shape[0] == texts.shape[1]  # the model itself is untouched


def test_a_text_tower_that_pools_another_way_keeps_its_full_context():
    config = {**TINY_CONFIG, "text_cfg": {**TINY_CONFIG["text_cfg"], "pool_type": "last"}}
    model = open_clip.CLIP(**config)
    texts = torch.zeros(2, 77, dtype=torch.long)
    texts[:, :3] = torch.tensor([49406, 320, 49407])
    assert used_context(model, texts) is None
