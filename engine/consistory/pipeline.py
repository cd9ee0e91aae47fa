"""The ConsiStory driver: one consistent set of images on the engine's own denoising loop.

Schedule for S steps (reference values for S = 50 in brackets):

1. **Run 1** — steps 0 … max(DIFT step, first injection step) [0 … 36]. Shared self-attention from step 1 on
   (masks exist from the end of step 0), vanilla-query blending on steps 1 … ⌊0.1·S⌋ [1 … 5] (one extra UNet pass
   each, without sharing, on the same latents), subject masks from the coarse cross-attention window, DIFT
   features captured at the DIFT step [36, t = 261]. At the start of the first injection step [5] the latents and
   the run state are snapshotted (after that step's vanilla pass).
2. **Correspondences** — nearest-neighbour maps from each image to the anchors it reads, inside their masks.
3. **Run 2** — resumes from the snapshot (identical to run 1 up to there, so nothing is recomputed) and runs to the
   end with feature injection on steps ⌊0.1·S⌋ … ⌊S/3⌋ [5 … 16].

UNet forwards (batch 2N each) for S = 50: run 1 = 37, run 2 = 45 → 82 vs 50 plain. The five vanilla-query passes
do not recompute the encoder: they ride along in the main pass as a second copy of the batch through the decoder
only (``vanilla_stream.py``), and run 1's last pass stops right after the DIFT block. The reference code runs
2 × (50 + 6) = 112 full passes (2.24×). Without injection: 50 forwards, 5 of them with the decoder copy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import AttnProcessor2_0

from ..denoise_loop import _with_preview, decode_latents, denoise, generate_plain, guided_noise, make_scheduler, \
    prepare, recipe_of
from ..errors import OutOfMemoryError
from ..request import GenerationResult, GenerationSpec, StepCallback, StepInfo
from . import gathered_attention as fused
from .cross_attention_store import CrossAttentionRecorder
from .feature_injection import DiftCapture, DiftCaptured, batch_pool, plan_injection
from .freeu import install_freeu
from .run_state import RunState, blend_steps, inject_steps, source_matrix
from .sdsa_processor import SelfAttentionProcessor
from .subject_tokens import subject_token_positions
from .unet_layers import analyse_unet
from .vanilla_stream import VanillaStream

if TYPE_CHECKING:  # pragma: no cover
    from ..model_loader import LoadedModel

__all__ = ["generate_consistent", "dift_step_of", "unet_pass_count"]


def dift_step_of(timesteps, dift_timestep: int) -> int:
    for i, t in enumerate(timesteps):
        if int(t) <= dift_timestep:
            return i
    return len(timesteps) - 1


def unet_pass_count(cfg, timesteps, *, encoder_injection: bool = True) -> int:
    """UNet forwards (each over the whole CFG batch) that ``generate_consistent`` runs for this schedule.

    Vanilla-query passes ride along in the main pass (``vanilla_stream.py``) and cost no forward of their own,
    except on blending steps of run 2 where feature injection also changes the encoder (``encoder_injection``).
    """
    steps = len(timesteps)
    blend = blend_steps(cfg, steps)
    if not cfg.inject:
        return steps
    start = inject_steps(cfg, steps).start
    dift = dift_step_of(timesteps, cfg.dift_timestep)
    end1 = max(dift, start) + 1
    # run 2 reuses run 1's vanilla queries of its first step, unless run 1 stopped that step at the DIFT block
    redone = [s for s in blend if s > start or (s == start and dift == start)]
    separate = len(redone) if encoder_injection else 0
    return end1 + (steps - start) + separate


def _token_weights(positions, n_images: int, n_tokens: int) -> torch.Tensor:
    w = torch.zeros(len(positions), n_images, n_tokens)
    for s, per_image in enumerate(positions):
        for i, pos in enumerate(per_image):
            w[s, i, pos] = 1.0 / len(pos)
    return w


def generate_consistent(model: "LoadedModel", spec: GenerationSpec, *, on_step: StepCallback | None = None,
                        should_cancel: Callable[[], bool] | None = None, noise: torch.Tensor | None = None,
                        preview_every: int = 0, record: dict[str, Any] | None = None,
                        sources: torch.Tensor | None = None, bank=None, fuse_vanilla: bool = True,
                        stop_at_dift: bool = True) -> GenerationResult:
    """Generate ``spec`` as one consistent set (anchors = the first ``spec.consistory.anchors`` prompts).

    ``sources`` (S, N, N) overrides who reads whom per subject (default: everyone reads the anchors, for every
    subject); ``bank`` supplies anchors from a saved identity (``identity_bank.IdentityBank``); ``record`` receives
    debugging probes (``record["state"]`` is the run state). ``fuse_vanilla=False`` runs every vanilla-query pass
    as a UNet forward of its own and ``stop_at_dift=False`` completes run 1's last pass (both only to test and
    measure the savings: the images are the same).
    """
    cfg = spec.consistory
    assert cfg is not None
    if not cfg.enabled:
        result = generate_plain(model, spec, on_step=on_step, should_cancel=should_cancel, noise=noise,
                                preview_every=preview_every)
        result.extras["unet_passes"] = spec.steps
        return result
    spec.validate(model.vae_scale_factor)
    pipe = model.pipe
    unet = pipe.unet
    prompts = list(spec.prompts)
    n = len(prompts)
    positions = subject_token_positions(pipe.tokenizer, prompts, list(spec.subjects))
    cond, scheduler, timesteps, latents, noise = prepare(model, spec, noise)
    layout = analyse_unet(unet)
    n_steps = len(timesteps)
    if sources is None:
        sources = source_matrix(n, cfg.anchors).unsqueeze(0).repeat(len(spec.subjects), 1, 1)
    device = latents.device
    weights = _token_weights(positions, n, cond.prompt_embeds.shape[1])
    cols = weights.sum((0, 1)).nonzero().flatten()   # on the host, before any pass: the subject words' columns
    state = RunState(
        config=cfg, layout=layout, n_images=n, seeds=tuple(spec.seeds), latent_hw=tuple(latents.shape[-2:]),
        n_steps=n_steps, do_cfg=cond.do_cfg, token_weights=weights[..., cols].to(device), token_cols=cols.to(device),
        sources=sources.to(device), device=device, external=bank,
        tables_only=fused.available(torch.empty(0, device=device, dtype=unet.dtype)))
    if record is not None:
        state.record = record
        record["state"] = state
    if bank is not None:
        bank.attach(state)
    state.reads_any  # decided here, before any UNet pass: it reads a device tensor (a host wait inside a pass)

    injection_layers = set(layout.injection_layers()) if cfg.inject else set()
    processors: dict[str, Any] = {}
    for name in unet.attn_processors:
        info = layout.layers.get(name)
        if info is None:
            processors[name] = AttnProcessor2_0()
        elif info.self_attn:
            processors[name] = SelfAttentionProcessor(state, info, sdsa=info.block == "up" and cfg.share,
                                                      inject=name in injection_layers)
        elif info.factor == layout.coarse:
            processors[name] = CrossAttentionRecorder(state, info)
        else:
            processors[name] = AttnProcessor2_0()

    blend = set(blend_steps(cfg, n_steps))
    inj = inject_steps(cfg, n_steps)
    dift_step = dift_step_of(timesteps, cfg.dift_timestep)
    end1 = max(dift_step, inj.start) + 1 if cfg.inject else n_steps
    state.mask_last = end1 - 1
    total = end1 + (n_steps - inj.start if cfg.inject else 0)
    passes = {"n": 0, "decoder_copies": 0}
    snap: dict[str, Any] = {}
    resume_step = {"skip_vanilla": -1}

    last_blend = max(blend, default=-1)

    def before_unet(i, t, lat):
        state.begin_step(i)
        state.dual = False
        if i > last_blend and state.q_cache:
            state.q_cache.clear()  # blending is over: free the cached queries
        if i in blend and i != resume_step["skip_vanilla"]:
            if not fuse_vanilla or (state.run == 2 and i in inj
                                    and any(layout.layers[n].block != "up" for n in injection_layers)):
                # injection changes the encoder here: the vanilla queries need a pass of their own
                state.phase = "vanilla"
                try:
                    guided_noise(model, lat, t, cond, current_scheduler["s"])
                finally:
                    state.phase = "main"
                passes["n"] += 1
            else:
                state.dual = True   # the main pass carries the vanilla copy through the decoder
                passes["decoder_copies"] += 1
        if state.run == 1 and cfg.inject and i == inj.start:
            snap["state"] = state.snapshot()
            snap["latents"] = lat.clone()
            # a vanilla copy riding in the main pass writes this step's queries during that pass: taken after it
            snap["queries_done"] = not state.dual
        passes["n"] += 1  # the main pass that follows

    def after_step(i, t, lat):
        state.end_step()
        if state.run == 1 and i == inj.start and not snap.get("queries_done", True):
            snap["state"]["q_cache"] = dict(state.q_cache)  # run 2 resumes here and blends with these
            snap["queries_done"] = True
        if preview is not None:
            preview.after(i, t, lat)

    preview = _with_preview(model, on_step, preview_every)
    current_scheduler = {"s": scheduler}
    freeu = cfg.freeu if cfg.freeu is not None else model.family == "sdxl"
    freeu_hooks: list = []
    original = unet.attn_processors
    capture = DiftCapture(state, dift_step, stop=stop_at_dift and cfg.inject and dift_step == end1 - 1)
    hook = unet.up_blocks[layout.dift_block].register_forward_hook(capture) if cfg.inject else None
    last_up = max(layout.layers[n].block_index for n in layout.sdsa_layers())
    stream = VanillaStream(state, unet, last_up) if blend else None
    try:
        unet.set_attn_processor(processors)
        if freeu:
            freeu_hooks = install_freeu(unet, *cfg.freeu_params)
        step_cb = None if preview is None else preview.info
        try:
            lat = denoise(model, latents, cond, scheduler, timesteps, stop_step=end1, before_unet=before_unet,
                          after_step=after_step, on_step=step_cb, should_cancel=should_cancel, total_steps=total)
        except DiftCaptured:
            # run 1's last pass ended at the DIFT block: fold that step's maps into the masks as a full step would
            state.dual = False
            state.end_step()
            passes["partial"] = 1
            if step_cb is not None:
                step_cb(StepInfo(step=end1, total=total, preview=None))
        fine = layout.fine
        run1_masks = {f: m.clone() for f, m in state.masks.items()}
        if cfg.inject:
            feats = capture.features
            hf, wf = state.grid(fine)
            if feats.shape[-2:] != (hf, wf):
                feats = F.interpolate(feats, size=(hf, wf), mode="bilinear", align_corners=False)
            src_masks = state.masks.get(fine)
            if src_masks is None:
                src_masks = torch.zeros(len(spec.subjects), n, hf * wf, dtype=torch.bool, device=device)
            target = src_masks
            pool_feats, pool_owner, pool_masks = batch_pool(feats, src_masks)
            pool_sources = state.sources
            if bank is not None:
                pool_feats, pool_owner, pool_masks, pool_sources = bank.extend_pool(
                    pool_feats, pool_owner, pool_masks, pool_sources)
            state.dift = feats
            state.injection = plan_injection(feats, target, pool_feats, pool_owner, pool_masks, pool_sources,
                                             cfg.inject_alpha)
            # run 2: identical to run 1 up to the first injection step, so resume from there
            state.restore(snap["state"])
            resume_latents = snap.pop("latents")
            # the first step's vanilla queries come from run 1 (same latents, no injection) unless that step was cut
            # short at the DIFT block before its vanilla copy reached every decoder layer: then run 2 makes them
            queries_done = snap.get("queries_done", True)
            snap.clear()
            state.run = 2
            state.inject_on = True
            resume_step["skip_vanilla"] = inj.start if queries_done else -1
            scheduler2 = make_scheduler(model, spec.scheduler)
            scheduler2.set_timesteps(n_steps, device=device)
            if hasattr(scheduler2, "set_begin_index"):
                scheduler2.set_begin_index(inj.start)
            current_scheduler["s"] = scheduler2
            lat = denoise(model, resume_latents, cond, scheduler2, scheduler2.timesteps, start_step=inj.start,
                          before_unet=before_unet, after_step=after_step, on_step=step_cb,
                          should_cancel=should_cancel, total_steps=total, step_offset=end1 - inj.start)
        images = decode_latents(model, lat)
    except torch.OutOfMemoryError as exc:  # pragma: no cover - needs a GPU
        raise OutOfMemoryError(model.device) from exc
    finally:
        if hook is not None:
            hook.remove()
        if stream is not None:
            stream.remove()
        state.dual = False
        for handle in freeu_hooks:
            handle.remove()
        unet.set_attn_processor(original)
    hf, wf = state.grid(layout.fine)
    fine_masks = run1_masks.get(layout.fine)
    masks = None if fine_masks is None else [fine_masks[:, i].any(0).reshape(hf, wf).cpu() for i in range(n)]
    recipe = recipe_of(model, spec)
    recipe["consistory_schedule"] = {"dift_step": dift_step if cfg.inject else None,
                                     "inject_steps": [inj.start, inj.stop - 1] if cfg.inject else None,
                                     "blend_steps": sorted(blend), "unet_passes": passes["n"], "freeu": freeu}
    extras = {"unet_passes": passes["n"], "decoder_copies": passes["decoder_copies"],
              "partial_passes": passes.get("partial", 0), "noise": noise,
              "subject_masks": None if fine_masks is None else fine_masks.cpu()}
    if state.injection is not None:
        extras["injected_patches"] = state.injection.selected.sum(1).tolist()
    return GenerationResult(images=images, recipe=recipe, masks=masks, extras=extras)
