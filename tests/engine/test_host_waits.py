"""No host wait inside a UNet pass. On a GPU, an operator whose result size or value the host needs (``nonzero``,
``item``, ``unique``, ``equal``, a boolean-mask index …) makes the host wait until the GPU has finished all queued
work; inside the 70 attention layers of an SDXL pass that starves the GPU. ConsiStory keeps such work to the step
boundaries (masks, dropout and key indices are built once per step), so a pass only launches kernels. These tests
watch every operator of a whole run on the CPU and count the waiting kinds inside UNet forwards."""

from __future__ import annotations

import contextlib

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from engine.consistory.config import ConsistoryConfig
from engine.generate import generate
from engine.identity.cache_store import AnchorCacheStore
from engine.identity.identities import generate_with_identities, identity_from_set
from engine.request import GenerationSpec

_aten = torch.ops.aten
WAITING_OPS = {_aten.nonzero.default, _aten._local_scalar_dense.default, _aten.unique_dim.default,
               _aten._unique2.default, _aten.equal.default, _aten.is_nonzero.default, _aten.masked_select.default}


class _WaitCounter(TorchDispatchMode):
    """Counts waiting operators while ``inside`` is set (by hooks on the UNet), by operator name."""

    def __init__(self):
        super().__init__()
        self.inside = False
        self.counts: dict[str, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if self.inside and func in WAITING_OPS:
            self.counts[str(func)] = self.counts.get(str(func), 0) + 1
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def _watch_passes(unet):
    counter = _WaitCounter()
    handles = [unet.register_forward_pre_hook(lambda *a: setattr(counter, "inside", True)),
               unet.register_forward_hook(lambda *a: setattr(counter, "inside", False), always_call=True)]
    try:
        with counter:
            yield counter
    finally:
        for h in handles:
            h.remove()


def _spec(**kw) -> GenerationSpec:
    base = dict(prompts=("a photo of a fox", "a fox in the snow", "a fox reads a map", "a fox sleeps"),
                seeds=(1, 2, 3, 4), width=64, height=64, steps=6, subjects=("fox",), consistory=ConsistoryConfig())
    return GenerationSpec(**{**base, **kw})


def test_the_counter_sees_a_wait_inside_a_pass(tiny_sdxl):
    """The instrument itself: a hook that asks for ``nonzero`` inside the UNet is counted; the same call outside is
    not."""
    unet = tiny_sdxl.pipe.unet

    def asks_the_host(module, args, out):
        out[0].nonzero()  # the output is left as it is

    handle = unet.down_blocks[0].register_forward_hook(asks_the_host)
    try:
        with _watch_passes(unet) as counter:
            torch.ones(3).nonzero()
            generate(tiny_sdxl, _spec(consistory=None, steps=2))
    finally:
        handle.remove()
    assert counter.counts == {"aten.nonzero.default": 2 * 1}  # one per pass, 2 steps; the outside call not counted


def test_a_consistory_set_never_waits_inside_a_pass(tiny_sdxl):
    with _watch_passes(tiny_sdxl.pipe.unet) as counter:
        result = generate(tiny_sdxl, _spec())
    assert result.extras["unet_passes"] > 6 and sum(result.extras["injected_patches"]) > 0
    assert counter.counts == {}


def test_panels_of_a_saved_character_never_wait_inside_a_pass(tiny_sdxl):
    spec = _spec(prompts=_spec().prompts[:2], seeds=(1, 2), steps=4)
    ident = identity_from_set(tiny_sdxl, spec, generate(tiny_sdxl, spec), name="Mira", description="a fox")
    store = AnchorCacheStore()
    # two panels read the same saved anchors: one key group of two images
    args = dict(prompts=("a fox reads a map", "a fox sleeps"), seeds=(3, 4), identities=[ident], store=store)
    generate_with_identities(tiny_sdxl, **args)  # builds the anchor cache (its recording may wait: once)
    with _watch_passes(tiny_sdxl.pipe.unet) as counter:
        generate_with_identities(tiny_sdxl, **args)
    assert counter.counts == {}
