"""Identities on the tiny models: a later panel equals the same panel in the original batch, cache hit/miss/
damage, the file format and its refusals, and two characters in one panel reading only their own anchors."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.consistory.config import ConsistoryConfig
from engine.generate import generate
from engine.identity import IdentityError, read_identity, write_identity
from engine.identity.cache_store import AnchorCacheStore
from engine.identity.identities import check_model, create_identity, generate_with_identities, identity_from_set
from engine.request import GenerationSpec

STEPS = 5


def _px(im) -> np.ndarray:
    return np.asarray(im, dtype=np.int16)


@pytest.fixture(scope="module")
def batch(tiny_sdxl):
    spec = GenerationSpec(prompts=("a photo of a fox", "a fox in the snow", "a fox reads a map",
                                   "a fox sleeps at night"),
                          seeds=(5, 6, 7, 8), width=64, height=64, steps=STEPS, subjects=("fox",),
                          consistory=ConsistoryConfig())
    return spec, generate(tiny_sdxl, spec)


@pytest.fixture(scope="module")
def fox(tiny_sdxl, batch, tmp_path_factory):
    spec, result = batch
    ident = identity_from_set(tiny_sdxl, spec, result, name="Mira", description="a small red fox")
    path = write_identity(ident, tmp_path_factory.mktemp("id") / "mira.character")
    return read_identity(path), path


def test_file_round_trip_keeps_recipe_images_and_noise(fox, batch):
    ident, path = fox
    spec, result = batch
    assert ident.name == "Mira" and ident.subjects == ("fox",)
    assert ident.anchor_prompts == spec.prompts[:2] and ident.anchor_seeds == spec.seeds[:2]
    assert ident.steps == STEPS and ident.width == 64 and ident.config["dropout"] == 0.5
    assert torch.equal(ident.noise, result.extras["noise"][:2].float().cpu())
    assert all(np.array_equal(_px(a), _px(b)) for a, b in zip(ident.anchor_images, result.images[:2]))
    assert path.stat().st_size < 5_000_000
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["anchors/anchor_0.png", "anchors/anchor_1.png", "identity.json",
                                         "noise.safetensors"]


def test_later_panels_equal_the_same_panels_in_the_original_batch(tiny_sdxl, fox, batch, tmp_path):
    ident, _ = fox
    spec, result = batch
    store = AnchorCacheStore(disk_dir=tmp_path / "cache")
    later = generate_with_identities(tiny_sdxl, prompts=spec.prompts[2:], seeds=spec.seeds[2:],
                                     identities=[ident], store=store)
    for got, want in zip(later.images, result.images[2:]):
        assert np.abs(_px(got) - _px(want)).max() <= 2
    assert store.events == ["built"] and store.last_drift <= 2  # anchors re-created alone (batch of 2, not 4)
    one = generate_with_identities(tiny_sdxl, prompts=spec.prompts[3:], seeds=spec.seeds[3:],
                                   identities=[ident], store=store)
    assert store.events == ["built", "hit-memory"]
    assert np.abs(_px(one.images[0]) - _px(result.images[3])).max() <= 2


def test_a_set_or_a_character_with_every_part_off_is_refused_in_one_sentence(tiny_sdxl, fox, batch):
    import dataclasses

    from engine.errors import InvalidRequestError

    spec, result = batch
    off = dataclasses.replace(spec, consistory=ConsistoryConfig.off())
    with pytest.raises(InvalidRequestError, match="all off has no anchors to save"):
        identity_from_set(tiny_sdxl, off, result, name="Mira")
    ident, _ = fox
    plain_character = dataclasses.replace(ident, config=ConsistoryConfig.off().to_dict())
    store = AnchorCacheStore()
    with pytest.raises(IdentityError, match="'Mira' has sharing, injection and query blending all off"):
        generate_with_identities(tiny_sdxl, prompts=("a fox reads a map",), seeds=(7,), identities=[plain_character],
                                 store=store)
    assert store.events == []  # nothing half-built is kept


def test_a_panel_without_the_subject_word_is_refused_before_any_anchor_is_built(tiny_sdxl, fox, monkeypatch):
    from engine.errors import SubjectNotInPromptError

    ident, _ = fox
    store = AnchorCacheStore()
    monkeypatch.setattr(store, "get", lambda *a, **k: pytest.fail("the anchors were built"))
    with pytest.raises(SubjectNotInPromptError, match="fox"):
        generate_with_identities(tiny_sdxl, prompts=("a cat in the snow",), seeds=(1,), identities=[ident],
                                 store=store)


def test_building_the_anchor_cache_reports_progress_as_its_own_phase(tiny_sdxl, fox):
    ident, _ = fox
    seen: list[tuple[str, int, int]] = []
    generate_with_identities(tiny_sdxl, prompts=("a fox reads a map",), seeds=(7,), identities=[ident],
                             store=AnchorCacheStore(), on_step=lambda i: seen.append((i.phase, i.step, i.total)))
    phases = [p for p, _, _ in seen]
    assert phases[0] == "anchors" and phases[-1] == "denoise"
    assert phases == sorted(phases)  # every anchor step first, then the panel's
    assert [s for p, s, _ in seen if p == "denoise"][-1] == seen[-1][2]


def test_running_out_of_device_memory_loading_a_disk_cache_keeps_the_file(tiny_sdxl, fox, tmp_path, monkeypatch):
    from engine.errors import OutOfMemoryError

    ident, _ = fox
    store = AnchorCacheStore(disk_dir=tmp_path / "cache", offload=False)
    store.get(tiny_sdxl, ident)
    path = store.path(store.key(tiny_sdxl, ident))
    data = path.read_bytes()
    store.clear_memory()
    key = store.key(tiny_sdxl, ident)
    monkeypatch.setattr(store, "key", lambda *_a: key)
    real_to = torch.Tensor.to

    def no_room(self, *a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(torch.Tensor, "to", no_room)
    with pytest.raises(OutOfMemoryError, match="ran out of memory"):
        store.get(tiny_sdxl, ident)
    monkeypatch.setattr(torch.Tensor, "to", real_to)
    assert path.read_bytes() == data and not any(e.startswith("rebuilt") for e in store.events)
    assert store.get(tiny_sdxl, ident) is not None and store.events[-1] == "hit-disk"


def test_a_disk_cache_that_cannot_be_written_still_draws_the_panel(tiny_sdxl, fox, tmp_path, monkeypatch):
    ident, _ = fox
    (tmp_path / "f").write_bytes(b"a file where the cache folder should be")
    store = AnchorCacheStore(disk_dir=tmp_path / "f" / "cache")
    out = generate_with_identities(tiny_sdxl, prompts=("a fox reads a map",), seeds=(7,), identities=[ident],
                                   store=store)
    assert len(out.images) == 1
    assert store.events[0] == "built" and store.events[1].startswith("save-failed: ")
    full = tmp_path / "full"
    full.mkdir()
    store = AnchorCacheStore(disk_dir=full)

    def no_room(_tensors, path, metadata=None):
        Path(path).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    import safetensors.torch
    monkeypatch.setattr(safetensors.torch, "save_file", no_room)
    store.get(tiny_sdxl, ident)
    assert store.events == ["built", "save-failed: No space left on device"]
    assert list(full.iterdir()) == []  # the partial .tmp is gone


def test_disk_cache_hit_equals_miss_and_damage_is_rebuilt(tiny_sdxl, fox, tmp_path):
    ident, _ = fox
    store = AnchorCacheStore(disk_dir=tmp_path / "cache")
    kw = dict(prompts=("a fox reads a map",), seeds=(7,), identities=[ident], store=store)
    miss = generate_with_identities(tiny_sdxl, **kw)
    store.clear_memory()
    hit = generate_with_identities(tiny_sdxl, **kw)
    assert store.events == ["built", "hit-disk"]
    assert np.array_equal(_px(miss.images[0]), _px(hit.images[0]))
    path = store.path(store.key(tiny_sdxl, ident))
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF  # flip a byte inside the tensors
    path.write_bytes(bytes(data))
    store.clear_memory()
    again = generate_with_identities(tiny_sdxl, **kw)
    assert store.events[-2].startswith("rebuilt-damaged") and store.events[-1] == "built"
    assert np.array_equal(_px(again.images[0]), _px(miss.images[0]))


def _rewrite(src, dst, *, json_patch=None, extra=None, drop=()):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            if item.filename in drop:
                continue
            data = zin.read(item.filename)
            if item.filename == "identity.json" and json_patch:
                d = json.loads(data)
                d.update(json_patch)
                data = json.dumps(d).encode()
            zout.writestr(item.filename, data)
        for name, data in (extra or {}).items():
            zout.writestr(name, data)
    return dst


@pytest.mark.parametrize("case, message", [
    ({"extra": {"anchors/evil.pkl": b"\x80\x04K\x01."}}, "pickles are refused"),
    ({"extra": {"../../escape.png": b"x"}}, "unsafe path"),
    ({"json_patch": {"schema_version": 99}}, "newer version"),
    ({"json_patch": {"format": "something-else"}}, "not a Consistory Studio character"),
    ({"json_patch": {"steps": "many"}}, "'steps' has the wrong type"),
    ({"json_patch": {"config": {"dropout": None}}}, r"settings are damaged: .*'dropout' has the wrong type: None"),
    ({"json_patch": {"config": {"freeu_params": [1, 2]}}}, "'freeu_params' has the wrong type"),
    ({"json_patch": {"config": {"dropout": 1.5}}}, r"settings are damaged: The attention dropout 1\.5"),
    ({"json_patch": {"config": {"share": "yes"}}}, "'share' has the wrong type"),
    ({"drop": ("identity.json",)}, "has no identity.json"),
])
def test_bad_identity_files_are_refused_with_a_sentence(fox, tmp_path, case, message):
    _, path = fox
    bad = _rewrite(path, tmp_path / "bad.character", **case)
    with pytest.raises(IdentityError, match=message):
        read_identity(bad)


def test_corrupt_zip_and_damaged_noise_are_reported(fox, tmp_path):
    _, path = fox
    junk = tmp_path / "junk.character"
    junk.write_bytes(path.read_bytes()[:200])
    with pytest.raises(IdentityError, match="not a character file"):
        read_identity(junk)
    bad = _rewrite(path, tmp_path / "noise.character", drop=("noise.safetensors",),
                   extra={"noise.safetensors": b"\x00" * 64})
    with pytest.raises(IdentityError, match="noise is damaged"):
        read_identity(bad)


def test_an_identity_from_another_model_is_refused(tiny_sdxl, tiny_sd15, fox):
    ident, _ = fox
    check_model(ident, tiny_sdxl)
    with pytest.raises(IdentityError, match="another model"):
        check_model(ident, tiny_sd15)


def test_two_characters_in_one_panel_read_only_their_own_anchors(tiny_sdxl, fox, tmp_path):
    from engine.consistory.pipeline import generate_consistent
    from engine.identity.anchor_cache import IdentityBank

    mira, _ = fox
    bo = create_identity(tiny_sdxl, name="Bo", description="a big bear", subjects=("bear",),
                         anchor_prompts=("a photo of a bear", "a bear in the forest"), anchor_seeds=(40, 41),
                         width=64, height=64, steps=STEPS)
    store = AnchorCacheStore()
    caches = [store.get(tiny_sdxl, mira), store.get(tiny_sdxl, bo)]
    assert [c.subjects for c in caches] == [("fox",), ("bear",)]
    for cache in caches:  # cached keys are exactly the anchors' dropped subject patches of that character
        for (layer, run, step), tokens in cache.tokens.items():
            factor = 4 if layer.startswith("up_blocks.0") else 2
            assert tokens.shape[1] == int(cache.selection[(run, step, factor)].any(0).sum())
    spec = GenerationSpec(prompts=("a fox and a bear in the forest",), seeds=(9,), width=64, height=64,
                          steps=STEPS, subjects=("fox", "bear"), consistory=ConsistoryConfig(anchors=0))
    record: dict = {}
    result = generate_consistent(tiny_sdxl, spec, bank=IdentityBank(caches, ("fox", "bear")), record=record)
    assert len(result.images) == 1
    st = record["state"]
    plan = st.injection
    # pool: [panel (1 image)] + Mira's 2 anchors (owners 1, 2) + Bo's 2 anchors (owners 3, 4)
    masks = result.extras["subject_masks"][:, 0]  # (2, P): fox, bear
    fox_only = masks[0] & ~masks[1]
    bear_only = masks[1] & ~masks[0]
    owners = dict(zip(plan.tgt_patch.tolist(), plan.src_owner.tolist()))
    assert owners, "nothing was injected"
    for patch, owner in owners.items():
        if fox_only[patch]:
            assert owner in (1, 2)
        if bear_only[patch]:
            assert owner in (3, 4)
    assert any(fox_only[p] for p in owners) or any(bear_only[p] for p in owners)


def test_an_offloaded_cache_gives_the_same_panel(tiny_sdxl, fox):
    ident, _ = fox
    kept, offloaded = AnchorCacheStore(offload=False), AnchorCacheStore(offload=True)
    a = generate_with_identities(tiny_sdxl, prompts=("a fox reads a map",), seeds=(7,), identities=[ident],
                                 store=kept)
    b = generate_with_identities(tiny_sdxl, prompts=("a fox reads a map",), seeds=(7,), identities=[ident],
                                 store=offloaded)
    cache = offloaded.get(tiny_sdxl, ident)
    assert cache.offloaded and "offloaded" in offloaded.events and "offloaded" not in kept.events
    assert all(t.device.type == "cpu" for t in [*cache.tokens.values(), *cache.outputs.values()])
    assert np.array_equal(_px(a.images[0]), _px(b.images[0]))
    # automatic: a CPU model never offloads (nothing to gain)
    auto = AnchorCacheStore()
    auto.get(tiny_sdxl, ident)
    assert "offloaded" not in auto.events


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_an_offloaded_cache_lives_in_pinned_host_memory_on_a_gpu(fox):
    from engine.model_loader import load_model

    ident, _ = fox
    model = load_model("tiny", device="cuda")
    kept, offloaded = AnchorCacheStore(offload=False), AnchorCacheStore(offload=True)
    args = dict(prompts=("a fox reads a map",), seeds=(7,), identities=[ident])
    a = generate_with_identities(model, store=kept, **args)
    b = generate_with_identities(model, store=offloaded, **args)
    cache = offloaded.get(model, ident)
    assert all(t.device.type == "cpu" and t.is_pinned() for t in cache.tokens.values())
    assert all(t.device.type == "cuda" for t in kept.get(model, ident).tokens.values())
    assert np.abs(_px(a.images[0]) - _px(b.images[0])).max() <= 2
