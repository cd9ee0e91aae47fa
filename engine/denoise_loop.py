"""The engine's own denoising loop: the single loop every generation (plain or ConsiStory) runs through.

It reuses the stock pipeline's components and helpers (``encode_prompt``, ``_get_add_time_ids``) and performs the
same arithmetic in the same order as ``StableDiffusionXLPipeline`` / ``StableDiffusionPipeline.__call__``, so with
no hooks its output equals the stock pipeline's for the same prompts, seeds, scheduler and steps.

ConsiStory extends it through two hooks: ``before_unet(step, t, latents)`` runs before each guided UNet forward
(for the vanilla query pass and for setting per-step state), and ``after_step(step, t, latents)`` runs after
``scheduler.step`` (masks for the next step). Cancellation raises ``Cancelled`` at a step boundary: nothing is
decoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import torch

from .errors import Cancelled, InvalidRequestError, OutOfMemoryError
from .request import GenerationResult, GenerationSpec, StepCallback, StepInfo

if TYPE_CHECKING:  # pragma: no cover
    from .model_loader import LoadedModel

__all__ = [
    "Conditioning", "encode_prompts", "initial_noise", "make_scheduler", "guided_noise", "denoise",
    "decode_latents", "latent_preview", "generate_plain", "StepHook",
]

StepHook = Callable[[int, Any, torch.Tensor], None]

# Linear latent -> RGB projections for cheap previews (published approximations for each VAE family).
_PREVIEW_FACTORS = {
    "sdxl": [[0.3651, 0.4232, 0.4341], [-0.2533, -0.0042, 0.1068], [0.1076, 0.1111, -0.0362], [-0.3165, -0.2492, -0.2188]],
    "sd15": [[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350], [-0.2829, 0.1762, 0.2721], [-0.2120, -0.2616, -0.7177]],
}


@dataclass
class Conditioning:
    """Text conditioning for a batch of N images, CFG-concatenated ``[uncond; cond]`` when ``do_cfg``.

    ``prompt_embeds``: (2N or N, 77, D). ``added_cond``: SDXL ``{"text_embeds", "time_ids"}`` or ``None``.
    """

    prompt_embeds: torch.Tensor
    added_cond: dict[str, torch.Tensor] | None
    do_cfg: bool
    guidance: float
    n_images: int

    def rows(self, index: list[int]) -> "Conditioning":
        """The conditioning of a sub-batch (image indices), keeping the ``[uncond; cond]`` layout."""
        n = self.n_images
        idx = list(index) + [n + i for i in index] if self.do_cfg else list(index)
        t = torch.tensor(idx, device=self.prompt_embeds.device)
        added = None if self.added_cond is None else {k: v[t] for k, v in self.added_cond.items()}
        return Conditioning(self.prompt_embeds[t], added, self.do_cfg, self.guidance, len(index))


def encode_prompts(model: "LoadedModel", prompts: list[str], negative_prompt: str, guidance: float,
                   width: int, height: int) -> Conditioning:
    pipe = model.pipe
    device = pipe._execution_device
    do_cfg = guidance > 1 and pipe.unet.config.time_cond_proj_dim is None
    negative = negative_prompt if negative_prompt else None
    n = len(prompts)
    with torch.no_grad():
        if model.family == "sdxl":
            pe, npe, pooled, npooled = pipe.encode_prompt(
                prompt=list(prompts), device=device, num_images_per_prompt=1, do_classifier_free_guidance=do_cfg,
                negative_prompt=[negative] * n if negative else None)
            proj_dim = pipe.text_encoder_2.config.projection_dim if pipe.text_encoder_2 is not None else int(pooled.shape[-1])
            time_ids = pipe._get_add_time_ids((height, width), (0, 0), (height, width), dtype=pe.dtype,
                                              text_encoder_projection_dim=proj_dim)
            add_text, add_time = pooled, time_ids
            if do_cfg:
                pe = torch.cat([npe, pe], dim=0)
                add_text = torch.cat([npooled, add_text], dim=0)
                add_time = torch.cat([time_ids, time_ids], dim=0)
            added = {"text_embeds": add_text.to(device), "time_ids": add_time.to(device).repeat(n, 1)}
            return Conditioning(pe.to(device), added, do_cfg, guidance, n)
        pe, npe = pipe.encode_prompt(list(prompts), device, 1, do_cfg, [negative] * n if negative else None)
        if do_cfg:
            pe = torch.cat([npe, pe])
        return Conditioning(pe, None, do_cfg, guidance, n)


def initial_noise(model: "LoadedModel", seeds: list[int], width: int, height: int,
                  dtype: torch.dtype | None = None) -> torch.Tensor:
    """Unscaled N(0, 1) latents (N, C, H/f, W/f), image i drawn from its own CPU generator seeded with seeds[i].

    An image's noise therefore never depends on the rest of the batch (anchors re-create exactly).
    """
    from diffusers.utils.torch_utils import randn_tensor

    pipe = model.pipe
    f = model.vae_scale_factor
    shape = (len(seeds), pipe.unet.config.in_channels, height // f, width // f)
    gens = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
    return randn_tensor(shape, generator=gens, device=pipe._execution_device, dtype=dtype or model.dtype)


def make_scheduler(model: "LoadedModel", name: str):
    """A fresh scheduler of the requested kind built from the model's scheduler config (never shared)."""
    from diffusers import DDIMScheduler, EulerDiscreteScheduler

    cls = {"ddim": DDIMScheduler, "euler": EulerDiscreteScheduler}[name]
    return cls.from_config(model.pipe.scheduler.config)


def guided_noise(model: "LoadedModel", latents: torch.Tensor, t, cond: Conditioning, scheduler) -> torch.Tensor:
    """One UNet forward on ``latents`` (N, ...) with CFG; returns the guided noise prediction (N, ...)."""
    unet = model.pipe.unet
    x = torch.cat([latents] * 2) if cond.do_cfg else latents
    x = scheduler.scale_model_input(x, t)
    eps = unet(x, t, encoder_hidden_states=cond.prompt_embeds, timestep_cond=None,
               added_cond_kwargs=cond.added_cond, return_dict=False)[0]
    if cond.do_cfg:
        uncond, text = eps.chunk(2)
        eps = uncond + cond.guidance * (text - uncond)
    return eps


def denoise(model: "LoadedModel", latents: torch.Tensor, cond: Conditioning, scheduler, timesteps,
            *, start_step: int = 0, stop_step: int | None = None, before_unet: StepHook | None = None,
            after_step: StepHook | None = None, on_step: StepCallback | None = None,
            should_cancel: Callable[[], bool] | None = None, total_steps: int | None = None,
            step_offset: int = 0) -> torch.Tensor:
    """Run steps ``start_step .. stop_step-1`` of ``timesteps`` on ``latents`` (already scaled by init sigma).

    Progress is reported as ``step_offset + i + 1`` of ``total_steps`` so multi-run methods report one bar.
    """
    total = total_steps or len(timesteps)
    stop = len(timesteps) if stop_step is None else stop_step
    with torch.no_grad():
        for i in range(start_step, stop):
            if should_cancel is not None and should_cancel():
                raise Cancelled()
            t = timesteps[i]
            if before_unet is not None:
                before_unet(i, t, latents)
            eps = guided_noise(model, latents, t, cond, scheduler)
            latents = scheduler.step(eps, t, latents, return_dict=False)[0]
            if after_step is not None:
                after_step(i, t, latents)
            if on_step is not None:
                on_step(StepInfo(step=step_offset + i + 1, total=total, preview=None))
                # previews are produced lazily by the caller through latent_preview when it wants them
    if should_cancel is not None and should_cancel():
        raise Cancelled()
    return latents


def decode_latents(model: "LoadedModel", latents: torch.Tensor):
    """VAE-decode (upcasting an fp16 VAE that overflows, as the stock SDXL pipeline does) to PIL images."""
    pipe = model.pipe
    vae = pipe.vae
    with torch.no_grad():
        needs_upcast = vae.dtype == torch.float16 and getattr(vae.config, "force_upcast", False)
        if needs_upcast:
            vae.to(dtype=torch.float32)
            latents = latents.to(torch.float32)
        mean = getattr(vae.config, "latents_mean", None)
        std = getattr(vae.config, "latents_std", None)
        if mean is not None and std is not None:
            m = torch.tensor(mean).view(1, 4, 1, 1).to(latents.device, latents.dtype)
            s = torch.tensor(std).view(1, 4, 1, 1).to(latents.device, latents.dtype)
            latents = latents * s / vae.config.scaling_factor + m
        else:
            latents = latents / vae.config.scaling_factor
        try:
            image = vae.decode(latents.to(vae.device), return_dict=False)[0]
        finally:
            if needs_upcast:
                vae.to(dtype=torch.float16)
        if model.family == "sd15":
            return pipe.image_processor.postprocess(image, output_type="pil", do_denormalize=[True] * image.shape[0])
        return pipe.image_processor.postprocess(image, output_type="pil")


def latent_preview(family: str, latents: torch.Tensor):
    """A cheap RGB preview (no VAE): a fixed linear map of the 4 latent channels, as PIL images."""
    from PIL import Image

    factors = torch.tensor(_PREVIEW_FACTORS.get(family, _PREVIEW_FACTORS["sdxl"]), dtype=torch.float32)
    lat = latents.detach().to("cpu", torch.float32)
    rgb = torch.einsum("nchw,cr->nhwr", lat[:, :4], factors)
    rgb = ((rgb + 1) * 127.5).clamp(0, 255).to(torch.uint8).numpy()
    return [Image.fromarray(a) for a in rgb]


def prepare(model: "LoadedModel", spec: GenerationSpec, noise: torch.Tensor | None = None):
    """Validate, encode prompts, build the scheduler, timesteps and scaled initial latents."""
    spec.validate(model.vae_scale_factor)
    scheduler = make_scheduler(model, spec.scheduler)
    device = model.pipe._execution_device
    cond = encode_prompts(model, list(spec.prompts), spec.negative_prompt, spec.guidance, spec.width, spec.height)
    scheduler.set_timesteps(spec.steps, device=device)
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(0)
    if noise is None:
        noise = initial_noise(model, list(spec.seeds), spec.width, spec.height, cond.prompt_embeds.dtype)
    else:
        f = model.vae_scale_factor
        expected = (len(spec.prompts), model.pipe.unet.config.in_channels, spec.height // f, spec.width // f)
        if tuple(noise.shape) != expected:
            raise InvalidRequestError(f"The saved noise has shape {tuple(noise.shape)} but this request needs {expected}.")
        noise = noise.to(device, cond.prompt_embeds.dtype)
    latents = noise * scheduler.init_noise_sigma
    return cond, scheduler, scheduler.timesteps, latents, noise


def recipe_of(model: "LoadedModel", spec: GenerationSpec) -> dict[str, Any]:
    import diffusers
    import transformers

    return {
        "model": model.describe(),
        **spec.to_dict(),
        "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                     "transformers": transformers.__version__},
    }


def generate_plain(model: "LoadedModel", spec: GenerationSpec, *, on_step: StepCallback | None = None,
                   should_cancel: Callable[[], bool] | None = None, noise: torch.Tensor | None = None,
                   preview_every: int = 0) -> GenerationResult:
    """Plain text-to-image for every prompt of ``spec`` (``spec.consistory`` is ignored)."""
    cond, scheduler, timesteps, latents, _ = prepare(model, spec, noise)
    step_cb = _with_preview(model, on_step, preview_every)
    try:
        latents = denoise(model, latents, cond, scheduler, timesteps, on_step=None if step_cb is None else step_cb.info,
                          should_cancel=should_cancel, after_step=None if step_cb is None else step_cb.after)
        images = decode_latents(model, latents)
    except torch.OutOfMemoryError as exc:  # pragma: no cover - needs a GPU
        raise OutOfMemoryError(model.device) from exc
    return GenerationResult(images=images, recipe=recipe_of(model, spec))


class _with_preview:
    """Adapts an ``on_step`` callback so that every ``every``-th step carries a latent preview."""

    def __new__(cls, model, on_step, every):
        if on_step is None:
            return None
        return super().__new__(cls)

    def __init__(self, model, on_step, every):
        self.model, self.on_step, self.every = model, on_step, every
        self._latents = None

    def after(self, i, t, latents):
        self._latents = latents

    def info(self, info: StepInfo):
        preview = None
        if self.every and self._latents is not None and (info.step % self.every == 0 or info.step == info.total):
            preview = latent_preview(self.model.family, self._latents)
        self.on_step(StepInfo(info.step, info.total, preview, info.phase))
