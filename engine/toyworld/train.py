"""Train the built-in toy model: ``python -m engine.toyworld.train [--device cuda] [--resume]``.

Phase 1 trains the VAE until its PSNR on held-out renders reaches ``--vae-psnr`` (28 dB) or ``--vae-minutes`` run
out; phase 2 encodes the training renders once and trains UNet + text encoder (v-prediction, min-SNR weighting,
EMA) for ``--minutes`` / ``--steps``. Everything lives in ``--out`` (``runs/toy``): ``vae.pt``, ``latents.pt``,
``unet.pt`` (model, EMA, optimiser, RNG, step, wall time) and ``log.jsonl``; a checkpoint is written every
``--ckpt-minutes`` and at the end, and ``--resume`` continues from them (the data and seeds are fixed, so a
resumed run sees the same stream it would have seen). ``--twins`` (default 0.5) is the share of training pictures
that show identical twins, ``--attn32`` adds attention at the 32x32 level, and ``--pairs`` is the share of each
batch given to paired panels (two pictures of one creature whose decoder self-attention reads both, see
``paired_attention``); ``--pairs-from F`` holds the pairs back for the first F of ``--steps``, so a run from scratch
first learns the look words on fully captioned pictures (pairs are captioned with their scene and kind only), and
``--twins-from F`` likewise draws only one-creature pictures for the first F (twins leave their look unsaid more
often). ``--time-schedule`` lets those shares and the learning-rate decay follow the clock too, so a run cut by
``--minutes`` (a GPU run in minutes, where the speed is not known in advance) still ends fully decayed; its
``--minutes`` count the whole UNet phase, so a resumed run goes on where the clock stood. ``--attn32-from F``
trains the first F without the 32x32 attention (about twice as fast a step on a CPU; it joins as a no-op), and
``--subject-weight W`` weighs the loss on the creature's pixels W times the background's.
Then ``python -m engine.toyworld.export`` ships the EMA weights.

``--init FOLDER`` starts from an exported toy model (a diffusers folder such as ``resources/models/toy``) instead of
random weights: the VAE, UNet and text encoder are loaded from it, and the text encoder's token embeddings are
carried over word by word (new words start at the mean embedding), so a model can be taught a grown vocabulary or
a changed world in a fraction of the from-scratch time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .architecture import build_scheduler, build_text_encoder, build_tokenizer, build_unet, build_vae
from .captions import caption, random_caption, underspecified
from .dataset import HELDOUT_SEED, TRAIN_SEED, make_creatures, make_set, to_tensor
from .device_copy import host_wait_guard, queued_copy
from .paired_attention import draw_pairs, install_paired_attention, pair_index
from .render import render

__all__ = ["main", "vae_psnr"]

_STOP = {"now": False}  # set by SIGTERM/SIGINT: checkpoint and stop at the next step


def _ask_stop(signum, frame) -> None:  # noqa: ARG001
    _STOP["now"] = True


def _log(out: Path, **row) -> None:
    row["time"] = time.strftime("%H:%M:%S")
    print(json.dumps(row), flush=True)
    with open(out / "log.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")


def _save(obj, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


@torch.no_grad()
def vae_psnr(vae, images, device: str, batch: int = 64) -> float:
    """Mean PSNR (dB, on [0, 255]) of the VAE's reconstruction (posterior mean) of uint8 ``images``."""
    vae.eval()
    total = 0.0
    for i in range(0, len(images), batch):
        x = to_tensor(images[i:i + batch]).to(device)
        y = vae.decode(vae.encode(x).latent_dist.mean).sample.clamp(-1, 1)
        mse = ((y - x) / 2).pow(2).flatten(1).mean(1).clamp_min(1e-10)
        total += (-10 * torch.log10(mse)).sum().item()
    vae.train()
    return total / len(images)


def _carry_embeddings(te, old_te, old_vocab: dict[str, int]) -> int:
    """Copy ``old_te``'s weights into ``te``; token embeddings by token string. Returns how many rows were new."""
    old_state = old_te.state_dict()
    emb_key = next(k for k in old_state if k.endswith("token_embedding.weight"))
    state = {k: v for k, v in old_state.items() if k != emb_key}
    te.load_state_dict(state, strict=False)
    new_vocab = build_tokenizer().get_vocab()
    old_emb = old_state[emb_key]
    emb = te.get_input_embeddings().weight
    with torch.no_grad():
        emb.copy_(old_emb.mean(0, keepdim=True).expand_as(emb))
        fresh = 0
        for token, i in new_vocab.items():
            if token in old_vocab:
                emb[i] = old_emb[old_vocab[token]]
            else:
                fresh += 1
    return fresh


def _init_from(folder: str, part: str):
    """One component of an exported toy model (``vae``, ``unet``, ``text_encoder``), or the tokenizer's vocab."""
    folder_p = Path(folder)
    if part == "vocab":
        return json.loads((folder_p / "tokenizer" / "vocab.json").read_text(encoding="utf-8"))
    if part == "text_encoder":
        from transformers import CLIPTextModel

        return CLIPTextModel.from_pretrained(folder_p / part)
    from diffusers import AutoencoderKL, UNet2DConditionModel

    return (AutoencoderKL if part == "vae" else UNet2DConditionModel).from_pretrained(folder_p / part)


def train_vae(args, out: Path, train_images, held) -> "torch.nn.Module":
    ckpt = out / "vae.pt"
    torch.manual_seed(args.seed)
    vae = build_vae().to(args.device)
    if args.init and not ckpt.exists():
        vae.load_state_dict(_init_from(args.init, "vae").state_dict())
        _log(out, phase="vae", msg=f"initialised from {args.init}")
    opt = torch.optim.AdamW(vae.parameters(), lr=args.vae_lr, weight_decay=0.0)
    step, wall = 0, 0.0
    if ckpt.exists():
        state = torch.load(ckpt, map_location=args.device, weights_only=False)
        vae.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, wall = state["step"], state["wall"]
        if state.get("done"):
            _log(out, phase="vae", msg="loaded finished VAE", step=step, psnr=state["psnr"])
            return vae
    gen = torch.Generator().manual_seed(args.seed + step)
    start, last_ckpt = time.time() - wall, time.time()
    psnr = 0.0
    while True:
        idx = torch.randint(0, len(train_images), (args.vae_batch,), generator=gen)
        x = to_tensor(train_images[idx.numpy()]).to(args.device)
        post = vae.encode(x).latent_dist
        y = vae.decode(post.sample()).sample
        kl = post.kl().mean() / x[0].numel()
        loss = F.mse_loss(y, x) + 0.5 * F.l1_loss(y, x) + 1e-6 * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        step += 1
        minutes = (time.time() - start) / 60
        if step % args.vae_eval_every == 0 or _STOP["now"]:
            psnr = vae_psnr(vae, held, args.device)
            _log(out, phase="vae", step=step, loss=round(loss.item(), 5), psnr=round(psnr, 2),
                 minutes=round(minutes, 2))
            done = psnr >= args.vae_psnr or minutes >= args.vae_minutes
            if _STOP["now"] and not done:
                _save({"model": vae.state_dict(), "opt": opt.state_dict(), "step": step,
                       "wall": time.time() - start, "psnr": psnr, "done": False}, ckpt)
                raise SystemExit(0)
            if done or time.time() - last_ckpt > 60 * args.ckpt_minutes:
                _save({"model": vae.state_dict(), "opt": opt.state_dict(), "step": step,
                       "wall": time.time() - start, "psnr": psnr, "done": done}, ckpt)
                last_ckpt = time.time()
            if done:
                return vae
            if step % (4 * args.vae_eval_every) == 0:  # step the learning rate down late in the phase
                for g in opt.param_groups:
                    g["lr"] = args.vae_lr * (0.3 if psnr > args.vae_psnr - 3 else 1.0)


@torch.no_grad()
def encode_latents(vae, images, device: str, batch: int = 256) -> torch.Tensor:
    vae.eval()
    parts = []
    for i in range(0, len(images), batch):
        parts.append(vae.encode(to_tensor(images[i:i + batch]).to(device)).latent_dist.mean.cpu())
    return torch.cat(parts)


def top_attention(unet) -> list[torch.nn.Module]:
    """The transformer blocks of the UNet's 32x32 level (first down block, last up block)."""
    return [*getattr(unet.down_blocks[0], "attentions", []), *getattr(unet.up_blocks[-1], "attentions", [])]


def _skip_block(hidden_states, *args, **kwargs):  # noqa: ARG001
    return (hidden_states,)


def bypass_top(blocks: list[torch.nn.Module], skip: bool) -> None:
    """Skip (``skip``) or run the given transformer blocks; a skipped one passes its input on and costs nothing."""
    for block in blocks:
        if skip:
            block.forward = _skip_block
        else:
            block.__dict__.pop("forward", None)


def train_unet(args, out: Path, latents: torch.Tensor, creatures, masks: torch.Tensor | None = None) -> None:
    """``masks`` (bool, one per training picture) are the creature masks the data phase drew; without them a
    paired picture's mask is rendered when the picture is first drawn."""
    ckpt = out / "unet.pt"
    torch.manual_seed(args.seed + 1)
    unet = build_unet(args.width, args.attn32, args.heads32).to(args.device)
    te = build_text_encoder().to(args.device)
    tok = build_tokenizer()
    ema_unet = build_unet(args.width, args.attn32, args.heads32).to(args.device)
    ema_te = build_text_encoder().to(args.device)
    if args.init and not ckpt.exists():
        missing, unexpected = unet.load_state_dict(_init_from(args.init, "unet").state_dict(), strict=False)
        if unexpected or any(".attentions." not in k for k in missing):
            raise SystemExit(f"{args.init}'s UNet does not fit this architecture: missing {missing[:4]}, "
                             f"unexpected {unexpected[:4]}.")
        with torch.no_grad():  # attention the old model did not have starts as a no-op (its output is zero)
            for name, module in unet.named_modules():
                if name.endswith("proj_out") and f"{name}.weight" in missing:
                    module.weight.zero_()
                    module.bias.zero_()
        fresh = _carry_embeddings(te, _init_from(args.init, "text_encoder"), _init_from(args.init, "vocab"))
        _log(out, phase="unet", msg=f"initialised from {args.init}", new_tokens=fresh)
    ema_unet.load_state_dict(unet.state_dict())
    ema_te.load_state_dict(te.state_dict())
    groups = pair_index(creatures) if args.pairs > 0 else {}
    n_pairs = int(args.batch * args.pairs) // 2
    if args.pairs > 0 and not (groups and n_pairs):
        raise SystemExit(f"--pairs {args.pairs} asks for paired panels, but " + (
            f"a batch of {args.batch} holds none; raise --pairs or --batch." if groups else
            f"no two of the {args.n_train} training pictures show one creature with the same look; raise --n-train."))
    paired = install_paired_attention(unet) if args.pairs > 0 else None
    top = top_attention(unet) if args.attn32_from else []
    if top and not ckpt.exists() and not args.init:  # joins later as a no-op: the model it joins is unchanged
        with torch.no_grad():
            for block in top + top_attention(ema_unet):
                block.proj_out.weight.zero_()
                block.proj_out.bias.zero_()
    attn32_start = math.ceil(args.attn32_from * args.steps)
    if top:
        _log(out, phase="unet", msg="no 32x32 attention first", from_step=attn32_start)
    weights = None
    if args.subject_weight != 1.0:   # the creature's share of each latent pixel (64 px masks → 32x32)
        def weights(indices: torch.Tensor) -> torch.Tensor:
            m = F.avg_pool2d(masks[indices].unsqueeze(1).float(), 2)
            return 1.0 + (args.subject_weight - 1.0) * m
    subject_pairs = paired is not None and args.pair_keys == "subject"
    rendered: dict[int, torch.Tensor] = {}   # without ``masks``: those of the paired pictures, drawn when first met

    def creature_masks(indices: list[int]) -> torch.Tensor:
        if masks is not None:
            return masks[indices]
        for i in indices:
            if i not in rendered:
                rendered[i] = torch.from_numpy(render(creatures[i]).mask)
        return torch.stack([rendered[i] for i in indices])

    pairs_start = math.ceil(args.pairs_from * args.steps) if paired is not None else 0
    twins_start = math.ceil(args.twins_from * args.steps)
    if twins_start:  # the one-creature pictures, drawn from alone until then
        singles = torch.tensor([i for i, c in enumerate(creatures) if c.twin_cx is None])
        if not len(singles):
            raise SystemExit(f"--twins-from {args.twins_from} holds the twins back, but all {len(creatures)} "
                             f"training pictures show twins; lower --twins.")
        _log(out, phase="unet", msg="one creature per picture first", singles=len(singles), from_step=twins_start)
    if paired is not None:
        _log(out, phase="unet", msg="paired panels", pairs_per_batch=n_pairs, looks=len(groups),
             keys=args.pair_keys, dropout=args.pair_dropout if subject_pairs else None, captions=args.pair_captions,
             from_step=pairs_start)
    params = list(unet.parameters()) + list(te.parameters())
    ema_params = list(ema_unet.parameters()) + list(ema_te.parameters())
    cuda = torch.device(args.device).type == "cuda"
    if cuda:  # TF32 matrix products, and one fused kernel for the optimiser instead of a launch per tensor group
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01, fused=cuda or None)
    sched = build_scheduler("ddpm")
    acp = sched.alphas_cumprod.to(args.device)
    step, wall = 0, 0.0
    if ckpt.exists():
        state = torch.load(ckpt, map_location=args.device, weights_only=False)
        if state.get("heads32", 4) != args.heads32:  # same weight shapes: loading would silently change the model
            raise SystemExit(f"{ckpt} was trained with --heads32 {state.get('heads32', 4)}; resume it with that, "
                             f"not {args.heads32}.")
        unet.load_state_dict(state["unet"])
        te.load_state_dict(state["te"])
        ema_unet.load_state_dict(state["ema_unet"])
        ema_te.load_state_dict(state["ema_te"])
        opt.load_state_dict(state["opt"])
        step, wall = state["step"], state["wall"]
        _log(out, phase="unet", msg="resumed", step=step, minutes=round(wall / 60, 2))
    rng = random.Random(args.seed * 1000 + step)
    gen = torch.Generator().manual_seed(args.seed + 7 + step)
    drop_gen = torch.Generator().manual_seed(args.seed + 11 + step)
    start, last_ckpt, run_start = time.time() - wall, time.time(), time.time()
    last_log = run_start
    scale = args.scaling
    guard, first_step = args.check_host_waits, step
    losses: list[torch.Tensor] = []   # kept on the device: reading each step's loss would make the host wait

    def checkpoint() -> None:
        _save({"unet": unet.state_dict(), "te": te.state_dict(), "ema_unet": ema_unet.state_dict(),
               "ema_te": ema_te.state_dict(), "opt": opt.state_dict(), "step": step,
               "wall": time.time() - start, "width": args.width, "scaling": scale, "init": args.init,
               "attn32": args.attn32, "heads32": args.heads32, "twins": args.twins, "pairs": args.pairs,
               "pair_keys": args.pair_keys if args.pairs > 0 else None,
               "pair_captions": args.pair_captions if args.pairs > 0 else None,
               "pairs_from": args.pairs_from if args.pairs > 0 else None, "twins_from": args.twins_from,
               "pair_t_from": args.pair_t_from if args.pairs > 0 else None,
               "pair_weight": args.pair_weight if args.pairs > 0 else None,
               "attn32_from": args.attn32_from, "subject_weight": args.subject_weight,
               "time_schedule": args.time_schedule}, ckpt)

    began: set[str] = set()

    def begin(what: str) -> None:  # with --time-schedule the step where a phase begins is known only then
        if what not in began:
            began.add(what)
            _log(out, phase="unet", msg=f"{what} begin", step=step)

    def spent() -> float:  # minutes counted against --minutes: this run's, or with --time-schedule the whole run's
        return (time.time() - (start if args.time_schedule else run_start)) / 60

    while step < args.steps and (minutes := spent()) < args.minutes and not _STOP["now"]:
        clock = minutes / args.minutes if args.time_schedule else 0.0   # share of the minutes spent
        with host_wait_guard(guard and step > first_step):  # the first step allocates; the others only launch
            alone = step < twins_start and clock < args.twins_from
            if alone:  # one-creature pictures only: their captions say the look more often
                idx = singles[torch.randint(0, len(singles), (args.batch,), generator=gen)]
            else:
                idx = torch.randint(0, len(latents), (args.batch,), generator=gen)
                if twins_start:
                    begin("twins")
            skip = bool(top) and step < attn32_start and clock < args.attn32_from
            bypass_top(top, skip)
            if top and not skip:
                begin("32x32 attention")
            pairing = paired is not None and (step >= pairs_start or clock >= args.pairs_from)
            if pairing:
                begin("pairs")
            if paired is not None:
                paired.n_pairs = n_pairs if pairing else 0
            if pairing:  # the first 2 * n_pairs pictures: first and second pictures of the pairs
                first, second = draw_pairs(groups, n_pairs, rng)
                idx = torch.cat([torch.tensor(first + second), idx[2 * n_pairs:]])
                if subject_pairs:
                    paired.set_subject_masks(creature_masks(first + second), args.pair_dropout, drop_gen)
            z0 = queued_copy(latents[idx], args.device).float() * scale
            caps = [random_caption(creatures[i], rng) for i in idx.tolist()]
            if pairing and args.pair_captions in ("open", "anchor"):  # only the partner can tell a pair its look
                opened = slice(0 if args.pair_captions == "open" else n_pairs, 2 * n_pairs)
                caps[opened] = [
                    underspecified(creatures[i].scene, creatures[i].shape if rng.random() < 0.75 else None)
                    for i in idx[opened].tolist()]
                if args.pair_captions == "anchor":  # the first pictures say their whole look: a look to copy
                    caps[:n_pairs] = [caption(creatures[i]) for i in idx[:n_pairs].tolist()]
            ids = tok(caps, padding="max_length", max_length=tok.model_max_length, truncation=True,
                      return_tensors="pt").input_ids
            ids = queued_copy(ids, args.device)
            noise = queued_copy(torch.randn(z0.shape, generator=gen), args.device)
            t_host = torch.randint(0, 1000, (args.batch,), generator=gen)
            if pairing and args.pair_t_from:  # the pairs at the noise levels where a look is still to be decided
                t_host[:2 * n_pairs] = torch.randint(args.pair_t_from, 1000, (2 * n_pairs,), generator=gen)
            t = queued_copy(t_host, args.device)
            if pairing and subject_pairs:  # as in a ConsiStory batch, both pictures of a pair are at one noise level
                t[n_pairs:2 * n_pairs] = t[:n_pairs]
            a = acp[t].view(-1, 1, 1, 1)
            zt = a.sqrt() * z0 + (1 - a).sqrt() * noise
            v = a.sqrt() * noise - (1 - a).sqrt() * z0
            lr = args.lr * min(1.0, (step + 1) / 200)
            if step > args.decay_from * args.steps or clock > args.decay_from:
                decayed = max((step - args.decay_from * args.steps) / ((1 - args.decay_from) * args.steps),
                              (clock - args.decay_from) / (1 - args.decay_from))
                lr *= 0.5 * (1 + math.cos(math.pi * min(decayed, 1.0)))
            for g in opt.param_groups:
                g["lr"] = lr
            pred = unet(zt, t, te(ids)[0]).sample
            snr = a.flatten() / (1 - a.flatten())
            w = snr.clamp(max=5.0) / (snr + 1)
            err = (pred - v).pow(2)
            if weights is not None:
                wpix = queued_copy(weights(idx), args.device)
                err = err * wpix / wpix.mean(dim=(2, 3), keepdim=True)
            if pairing and args.pair_weight != 1.0:
                w = torch.cat([w[:2 * n_pairs] * args.pair_weight, w[2 * n_pairs:]])
            loss = (err.flatten(1).mean(1) * w).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            step += 1
            decay = min(args.ema, (1 + step) / (10 + step))
            with torch.no_grad():
                torch._foreach_lerp_(ema_params, params, 1 - decay)
            losses.append(loss.detach())
        if step % args.log_every == 0:
            _log(out, phase="unet", step=step, loss=round(torch.stack(losses).mean().item(), 5), lr=round(lr, 7),
                 minutes=round((time.time() - start) / 60, 2),
                 it_s=round(len(losses) / max(time.time() - last_log, 1e-9), 2))
            losses.clear()
            last_log = time.time()
        if time.time() - last_ckpt > 60 * args.ckpt_minutes:
            checkpoint()
            last_ckpt = time.time()
    checkpoint()
    _log(out, phase="unet", msg="stopped", step=step, minutes=round((time.time() - start) / 60, 2))


def main(argv: list[str] | None = None, handle_signals: bool = False) -> int:
    """Run both phases; with ``handle_signals`` SIGTERM/SIGINT checkpoint and stop cleanly."""
    p = argparse.ArgumentParser(prog="python -m engine.toyworld.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/toy", help="checkpoint folder (default runs/toy)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads (default 1: on a busy machine more threads spin and waste CPU)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoints in --out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", help="start from this exported toy model folder (e.g. resources/models/toy)")
    p.add_argument("--n-train", type=int, default=24000, help="training renders")
    p.add_argument("--twins", type=float, default=0.5,
                   help="share of training pictures that show identical twins (teaches self-attention to copy a look)")
    p.add_argument("--pairs", type=float, default=0.0,
                   help="share of each batch in paired panels (self-attention across two pictures of one creature)")
    p.add_argument("--pair-keys", choices=("all", "subject"), default="all",
                   help="what a paired picture reads of its partner: all tokens, or (as ConsiStory shares) its "
                        "creature patches with --pair-dropout, both pictures at one noise level")
    p.add_argument("--pair-captions", choices=("random", "open", "anchor"), default="random",
                   help="captions of paired pictures: drawn like all others, or leaving the look open (scene and, "
                        "mostly, the kind said) so that only the partner tells it; 'anchor': the second picture's "
                        "look open, the first's fully said")
    p.add_argument("--pairs-from", type=float, default=0.0, help="with --pairs: no pairs before this fraction of "
                   "--steps (the look words are learnt first, on full captions)")
    p.add_argument("--twins-from", type=float, default=0.0, help="no twins pictures before this fraction of "
                   "--steps: a run from scratch first learns the look words on one-creature pictures")
    p.add_argument("--pair-t-from", type=int, default=0, help="with --pairs: draw the pairs' timesteps from "
                   "[T, 1000) only, where a look is still open and ConsiStory's sharing acts (default 0: all)")
    p.add_argument("--pair-weight", type=float, default=1.0, help="with --pairs: weight of the paired pictures' "
                   "loss against the others' (min-SNR weighting leaves the noisy timesteps little; default 1)")
    p.add_argument("--pair-dropout", type=float, default=0.5, help="with --pair-keys subject: dropout of the "
                                                                     "partner's creature patches")
    p.add_argument("--n-held", type=int, default=256, help="held-out renders for the VAE's PSNR")
    p.add_argument("--vae-psnr", type=float, default=28.0)
    p.add_argument("--vae-minutes", type=float, default=15.0)
    p.add_argument("--vae-lr", type=float, default=1e-3)
    p.add_argument("--vae-batch", type=int, default=16)
    p.add_argument("--vae-eval-every", type=int, default=100)
    p.add_argument("--attn32-from", type=float, default=0.0, help="with --attn32: train without the 32x32 attention "
                   "for this fraction of --steps (of --minutes too with --time-schedule); it then joins as a no-op and "
                   "learns. Steps without it run about 1.5-2x faster on a CPU")
    p.add_argument("--subject-weight", type=float, default=1.0, help="weight of the loss on the creature's "
                   "pixels against the background's 1 (each picture's loss is the weighted mean)")
    p.add_argument("--width", type=int, default=32, help="UNet base channels")
    p.add_argument("--attn32", action="store_true", help="attention at the 32x32 level too")
    p.add_argument("--heads32", type=int, default=4, help="with --attn32: attention heads at the 32x32 level "
                   "(1 trains about 30 %% faster on a CPU)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--steps", type=int, default=12000, help="total UNet steps (the cosine decay spans these)")
    p.add_argument("--decay-from", type=float, default=0.5, help="fraction of --steps after which lr decays")
    p.add_argument("--minutes", type=float, default=1e9, help="stop this run's UNet phase after so many minutes")
    p.add_argument("--time-schedule", action="store_true", help="with --minutes: --twins-from, --pairs-from and the "
                   "learning-rate decay follow the share of --minutes spent as well as the share of --steps, "
                   "whichever is further, so a run stopped by the clock ends decayed (not repeatable step for step); "
                   "--minutes then counts the whole UNet phase, resumed runs included")
    p.add_argument("--ema", type=float, default=0.998)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--ckpt-minutes", type=float, default=4.0)
    p.add_argument("--check-host-waits", action="store_true", help="CUDA only: fail on any operation in a training "
                   "step (logging and checkpoints aside) that makes the host wait for the GPU")
    args = p.parse_args(argv)
    if not 0.0 <= args.pair_dropout < 1.0:
        p.error(f"--pair-dropout {args.pair_dropout} must be in [0, 1).")
    if args.heads32 < 1 or args.width % args.heads32:
        p.error(f"--heads32 {args.heads32} must divide the {args.width} channels of the 32x32 level (--width).")
    if not 0.0 <= args.pairs_from < 1.0:
        p.error(f"--pairs-from {args.pairs_from} must be in [0, 1): the share of --steps trained before pairs start.")
    if not 0 <= args.pair_t_from < 1000 or args.pair_weight <= 0:
        p.error(f"--pair-t-from {args.pair_t_from} must be in [0, 1000) and --pair-weight {args.pair_weight} positive.")
    if not 0.0 <= args.twins_from < 1.0:
        p.error(f"--twins-from {args.twins_from} must be in [0, 1): the share of --steps trained without twins.")
    if not 0.0 <= args.attn32_from < 1.0 or (args.attn32_from and not args.attn32):
        p.error(f"--attn32-from {args.attn32_from} must be in [0, 1), with --attn32: the share of --steps trained "
                f"without the 32x32 attention.")
    if args.subject_weight <= 0:
        p.error(f"--subject-weight {args.subject_weight} must be positive (1: the creature counts as the background).")
    if args.time_schedule and args.minutes >= 1e9:
        p.error("--time-schedule follows the clock: give the run's length with --minutes.")
    if args.check_host_waits and torch.device(args.device).type != "cuda":
        p.error(f"--check-host-waits watches CUDA's queue; it needs --device cuda, not {args.device}.")
    torch.set_num_threads(args.threads)
    _STOP["now"] = False
    if handle_signals:
        signal.signal(signal.SIGTERM, _ask_stop)
        signal.signal(signal.SIGINT, _ask_stop)
    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.resume:
        p.error(f"{out} already holds a run; pass --resume to continue it or choose another --out.")
    out.mkdir(parents=True, exist_ok=True)
    lat_path = out / "latents.pt"
    if lat_path.exists():  # phase 1 is over: no need to draw the pictures again
        lat = torch.load(lat_path, weights_only=False)
        creatures = make_creatures(args.n_train, TRAIN_SEED, args.twins)
        if len(lat["latents"]) != len(creatures) or lat.get("twins", 0.0) != args.twins:
            p.error(f"{lat_path} holds {len(lat['latents'])} latents with twins {lat.get('twins', 0.0)}, but "
                    f"--n-train is {args.n_train} and --twins {args.twins}.")
    else:
        t0 = time.time()
        train = make_set(args.n_train, TRAIN_SEED, twins=args.twins)
        held = make_set(args.n_held, HELDOUT_SEED)
        creatures = train.creatures
        _log(out, phase="data", n_train=args.n_train, seconds=round(time.time() - t0, 1))
        vae = train_vae(args, out, train.images, held.images)
        z = encode_latents(vae, train.images, args.device)
        lat = {"latents": z.half(), "scaling": float(1.0 / z.float().std()), "twins": args.twins,
               "masks": torch.from_numpy(np.packbits(train.masks, axis=-1))}   # 1 bit per pixel
        _save(lat, lat_path)
        _log(out, phase="latents", n=len(z), std=round(float(z.float().std()), 4), scaling=round(lat["scaling"], 4))
    args.scaling = lat["scaling"]
    masks = None   # only paired panels that read the partner's creature patches, or a weighted loss, need them
    needs_masks = (args.pairs > 0 and args.pair_keys == "subject") or args.subject_weight != 1.0
    if args.subject_weight != 1.0 and "masks" not in lat:
        p.error(f"--subject-weight needs the creature masks that {lat_path} lacks (its data phase predates them); "
                f"draw the data again in a new --out.")
    if "masks" in lat and needs_masks:
        # runs from before the masks were kept render a paired picture's mask when first drawn
        masks = torch.from_numpy(np.unpackbits(lat["masks"].numpy(), axis=-1).astype(bool))
    train_unet(args, out, lat["latents"], creatures, masks)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(handle_signals=True))
