"""LadiVtonPipeline: person + garment + pose map + inpainting mask -> the person wearing the garment.

Order of operations (docs/tryon.md, ladi_vton.md §5): warp the garment (fp32) -> CLIP-H tokens of the garment ->
pseudo-words -> prompt embeddings, next to the "" embedding -> VAE-encode the masked person with its features ->
EMASC skips -> warped-garment latent, mask and pose at latent size -> classifier-free-guided denoising with
pose and cloth zeroed in the unconditional half -> VAE decode with the skips.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tryon.components import LadiComponents, build_random_components
from tryon.conditioning_cache import LruCache
from tryon.config import CLIP_MEAN, CLIP_STD, TINY, LadiConfig
from tryon.errors import TryOnCancelled, TryOnInputError, WeightsError  # noqa: F401 (re-exported)
from tryon.inputs import TryOnInputs, TryOnOptions, validate_inputs, validate_options
from tryon.modules.emasc import masked_skips
from tryon.modules.vae_skips import decode_with_skips, encode_with_features, sample_latents
from tryon.modules.warping import warp_garment
from tryon.schedulers import make_scheduler, step_kwargs
from tryon.text_inversion import encode_prompt, encode_with_pseudo_words, garment_prompt, pseudo_word_token_id, tokenize

__all__ = ["LadiVtonPipeline", "TryOnCancelled", "TryOnInputError", "TryOnInputs", "TryOnOptions", "WeightsError"]

OnStep = Callable[[int, int], None]
Cancelled = Callable[[], bool]


def _image_tensor(image: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 H x W x 3  ->  1 x 3 x H x W float32 in [-1, 1]."""
    return torch.from_numpy(image).to(device).permute(2, 0, 1)[None].float() / 127.5 - 1


def _image_array(image: torch.Tensor) -> np.ndarray:
    """1 x 3 x H x W in [-1, 1]  ->  uint8 H x W x 3 (rounded, as diffusers' numpy_to_pil)."""
    unit = (image[0].float() / 2 + 0.5).clamp(0, 1)
    return (unit * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def clip_pixel_values(garment: torch.Tensor, size: int) -> torch.Tensor:
    """garment: 1 x 3 x H x W in [-1, 1] -> 1 x 3 x size x size float32, the CLIP vision encoder's input exactly
    as the published checkpoints were trained with.

    LaDI-VTON resizes (x + 1) / 2 to size x size (bilinear, antialiased), clamps to [0, 1] and hands it to
    transformers' CLIPImageProcessor with do_rescale=False. Its pinned transformers 4.27.3 still converts the image
    to PIL for the (no-op) resize, casting 255 * x to uint8 by truncation and dividing by 255 afterwards, so the
    encoder saw (floor(255 x) / 255 - mean) / std, up to 1/255 below x. Reproduced with numpy's arithmetic there:
    the cast from float32, the rescale and the normalisation in float64.
    """
    pixels = F.interpolate((garment.float() + 1) / 2, size=(size, size), mode="bilinear", align_corners=False,
                           antialias=True).clamp(0, 1)
    truncated = (pixels * 255).to(torch.uint8).to(torch.float64) * (1 / 255)
    mean = torch.tensor(CLIP_MEAN, dtype=torch.float64, device=pixels.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=torch.float64, device=pixels.device).view(1, 3, 1, 1)
    return ((truncated - mean) / std).to(torch.float32)


class LadiVtonPipeline:
    """A LaDI-VTON try-on on one device. Warping runs in fp32, everything else in `dtype` (fp16 on GPU).

    `conditioning_cache` holds the text conditioning per (garment_key, category); its `hits`/`misses` count lookups.
    """

    def __init__(self, components: LadiComponents, config: LadiConfig, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32, cache_size: int = 32):
        self.components = components
        self.config = config
        self.device = torch.device(device)
        self.dtype = dtype
        for name, module in components.modules().items():
            module_dtype = torch.float32 if name in ("tps", "refinement") else dtype
            if next(module.parameters()).dtype != module_dtype:  # diffusers warns on every dtype cast
                module.to(dtype=module_dtype)
            module.to(device=self.device).eval().requires_grad_(False)
        self.conditioning_cache: LruCache[torch.Tensor] = LruCache(cache_size)
        self._pseudo_word_id = pseudo_word_token_id(components.tokenizer)
        self._empty_prompt: torch.Tensor | None = None

    @classmethod
    def tiny(cls, seed: int = 0, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
             cache_size: int = 32) -> LadiVtonPipeline:
        """The tiny profile with random weights from `seed`, built in memory (same as `save_tiny_weights` writes)."""
        return cls(build_random_components(TINY, seed), TINY, device, dtype, cache_size)

    @classmethod
    def from_weights(cls, weights_dir: str | Path, dataset: str = "dresscode", device: str | torch.device = "cpu",
                     dtype: torch.dtype = torch.float32, cache_size: int = 32) -> LadiVtonPipeline:
        """Loads a weights folder (layout in tryon/weights.py); WeightsError when something is missing or mismatched."""
        from tryon.weights import load_components

        components, config = load_components(Path(weights_dir), dataset)
        return cls(components, config, device, dtype, cache_size)

    from_published = from_weights  # the name docs/tryon.md first used

    @property
    def frame_hw(self) -> tuple[int, int]:
        return self.config.frame_hw

    @torch.inference_mode()
    def __call__(self, inputs: TryOnInputs, options: TryOnOptions = TryOnOptions(), on_step: OnStep | None = None,
                 cancelled: Cancelled | None = None) -> np.ndarray:
        """Runs one try-on; returns uint8 [H, W, 3] RGB. `on_step(completed, total)` follows every denoising step;
        `cancelled()` is polled before each step and True raises TryOnCancelled. Bad requests raise TryOnInputError."""
        validate_inputs(inputs, self.frame_hw)
        validate_options(options)
        person = _image_tensor(inputs.person, self.device)
        garment = _image_tensor(inputs.garment, self.device)
        pose_map = torch.from_numpy(inputs.pose_map).to(self.device)[None]
        inpaint_mask = torch.from_numpy(inputs.inpaint_mask).to(self.device)[None, None].float()
        masked_person = person * (1 - inpaint_mask)

        c = self.components
        warped = warp_garment(c.tps, c.refinement, garment, masked_person, pose_map, self.config.tps_size)
        prompt = self._cached_text_conditioning(garment, inputs.category, inputs.garment_key)

        generator = torch.Generator("cpu").manual_seed(int(options.seed))
        scheduler = make_scheduler(options.scheduler, c.scheduler_config)
        scheduler.set_timesteps(options.steps, device=self.device)
        latents, text, conditions, skips = self._latent_conditions(
            warped, masked_person, inpaint_mask, pose_map, prompt, options.guidance, generator,
            scheduler.init_noise_sigma)
        latents = self._denoise(scheduler, options, latents, text, conditions, on_step, cancelled)
        scaling = c.vae.config.scaling_factor
        return _image_array(decode_with_skips(c.vae, (latents / scaling).to(self.dtype), skips))

    def text_conditioning(self, garment: torch.Tensor, category: str) -> torch.Tensor:
        """garment: 1 x 3 x H x W in [-1, 1]  ->  1 x 77 x D prompt embeddings carrying the garment's pseudo-words."""
        c = self.components
        pixel_values = clip_pixel_values(garment, self.config.vision_encoder.image_size)
        image_tokens = c.vision_encoder(pixel_values=pixel_values.to(self.dtype)).last_hidden_state
        words = c.inversion_adapter(image_tokens)
        ids = tokenize(c.tokenizer, garment_prompt(category, self.config.num_pseudo_words))
        return encode_with_pseudo_words(c.text_encoder, ids, words, self._pseudo_word_id)

    def _cached_text_conditioning(self, garment: torch.Tensor, category: str, key: str | None) -> torch.Tensor:
        if not key:
            return self.text_conditioning(garment, category)
        cached = self.conditioning_cache.get((key, category))
        if cached is None:
            cached = self.text_conditioning(garment, category)
            self.conditioning_cache.put((key, category), cached)
        return cached

    def _empty_prompt_embeddings(self) -> torch.Tensor:
        """The "" prompt (the unconditional branch), encoded once."""
        if self._empty_prompt is None:
            c = self.components
            self._empty_prompt = encode_prompt(c.text_encoder, tokenize(c.tokenizer, ""))
        return self._empty_prompt

    def _latent_conditions(self, warped: torch.Tensor, masked_person: torch.Tensor, inpaint_mask: torch.Tensor,
                           pose_map: torch.Tensor, prompt: torch.Tensor, guidance: float, generator: torch.Generator,
                           init_noise_sigma: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list]:
        """(initial latents 1 x 4 x h x w fp32, text B x 77 x D, UNet conditions B x 27 x h x w, EMASC skips g1..g5).

        `generator` (CPU) draws in LaDI's order: warped-garment latent, initial noise, masked-person latent, so a seed
        gives the same noise on every device.
        """
        vae = self.components.vae
        scaling = vae.config.scaling_factor
        cloth_latent = sample_latents(vae.encode(warped.to(self.dtype)).latent_dist, generator, scaling)
        noise_shape = (1, vae.config.latent_channels, *self.config.latent_size)
        latents = torch.randn(noise_shape, generator=generator, dtype=torch.float32).to(self.device)
        posterior, features = encode_with_features(vae, masked_person.to(self.dtype))
        person_latent = sample_latents(posterior, generator, scaling)
        skips = masked_skips(self.components.emasc, features, inpaint_mask)
        text, conditions = self._guidance_batch(prompt, inpaint_mask, person_latent, pose_map, cloth_latent, guidance)
        return latents * init_noise_sigma, text, conditions, skips

    def _guidance_batch(self, prompt: torch.Tensor, inpaint_mask: torch.Tensor, person_latent: torch.Tensor,
                        pose_map: torch.Tensor, cloth_latent: torch.Tensor, guidance: float
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """Text (B x 77 x D) and the UNet's conditioning channels (B x 27 x h x w): mask | person latent | pose | cloth.

        With guidance > 1, B = 2: the unconditional half gets the "" prompt and zero pose and cloth (as trained with
        condition dropout); otherwise B = 1, the conditional branch alone (LaDI skips guidance at <= 1).
        """
        latent_size = person_latent.shape[-2:]
        mask = F.interpolate(inpaint_mask, size=latent_size, mode="nearest").to(self.dtype)
        pose = F.interpolate(pose_map, size=latent_size, mode="bilinear", align_corners=False).to(self.dtype)
        conditional = torch.cat([mask, person_latent, pose, cloth_latent.to(self.dtype)], dim=1)
        if guidance <= 1:
            return prompt, conditional
        unconditional = torch.cat([mask, person_latent, torch.zeros_like(pose), torch.zeros_like(cloth_latent)],
                                  dim=1)
        return (torch.cat([self._empty_prompt_embeddings(), prompt]),
                torch.cat([unconditional, conditional]))

    def _denoise(self, scheduler, options: TryOnOptions, latents: torch.Tensor, text: torch.Tensor,
                 conditions: torch.Tensor, on_step: OnStep | None, cancelled: Cancelled | None) -> torch.Tensor:
        """The sampling loop; latents (1 x 4 x h x w) stay fp32 between steps, the UNet runs in the pipeline dtype."""
        unet = self.components.unet
        batch = conditions.shape[0]
        extra = step_kwargs(options.scheduler)
        total = len(scheduler.timesteps)
        for i, t in enumerate(scheduler.timesteps):
            if cancelled is not None and cancelled():
                raise TryOnCancelled(i, total)
            model_input = scheduler.scale_model_input(latents, t).to(self.dtype).expand(batch, -1, -1, -1)
            noise = unet(torch.cat([model_input, conditions], dim=1), t, encoder_hidden_states=text).sample.float()
            if batch == 2:
                unconditional, conditional = noise.chunk(2)
                noise = unconditional + options.guidance * (conditional - unconditional)
            latents = scheduler.step(noise, t, latents, **extra).prev_sample
            if on_step is not None:
                on_step(i + 1, total)
        return latents
