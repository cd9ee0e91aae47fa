"""Every model source the tests can reach offline: folders, single-file checkpoints (both families, written here
from the tiny models), the HF cache, and one clear sentence for each way loading can fail."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.checkpoint_convert import export_single_file, pipeline_to_original
from engine.denoise_loop import generate_plain
from engine.errors import ModelLoadError
from engine.model_loader import load_model
from engine.request import GenerationSpec

SPEC = GenerationSpec(prompts=("a red fox in the snow", "a robot reads"), seeds=(4, 5), width=64, height=32, steps=2)


def _pixels(model) -> np.ndarray:
    return np.stack([np.asarray(im, dtype=np.int16) for im in generate_plain(model, SPEC).images])


@pytest.fixture(scope="module")
def saved(tmp_path_factory, tiny_sdxl, tiny_sd15):
    """Each tiny model as a diffusers folder and as an original-format single-file checkpoint."""
    base = tmp_path_factory.mktemp("sources")
    out = {}
    for name, model in (("sdxl", tiny_sdxl), ("sd15", tiny_sd15)):
        folder = base / f"{name}-folder"
        model.pipe.save_pretrained(folder)
        out[name] = (folder, export_single_file(model.pipe, base / f"{name}.safetensors"))
    return out


# --- single-file checkpoints -------------------------------------------------------------------------------------

@pytest.mark.parametrize("family", ["sdxl", "sd15"])
def test_single_file_round_trip_gives_the_same_weights_and_images(saved, request, family):
    original = request.getfixturevalue("tiny_sdxl" if family == "sdxl" else "tiny_sd15")
    folder, ckpt = saved[family]
    loaded = load_model(str(ckpt), config_dir=folder)
    assert loaded.family == family
    assert loaded.fingerprint == original.fingerprint
    for part in ("unet", "vae", "text_encoder", "text_encoder_2"):
        a, b = getattr(original.pipe, part, None), getattr(loaded.pipe, part, None)
        assert (a is None) == (b is None)
        if a is not None:
            sa, sb = a.state_dict(), b.state_dict()
            assert sa.keys() == sb.keys()
            assert all(torch.equal(sa[k], sb[k]) for k in sa), part
    assert np.abs(_pixels(loaded) - _pixels(original)).max() <= 1


def test_a_single_file_load_says_each_part_and_can_be_cancelled_between_parts(saved):
    """The file is read, then each part built, each announced first; a cancel raised there stops the load as a
    cancel (not as "does not match the architecture")."""
    from engine.errors import Cancelled

    folder, ckpt = saved["sdxl"]
    said: list[tuple[str, float]] = []
    load_model(str(ckpt), config_dir=folder, progress=lambda text, fraction: said.append((text, fraction)))
    assert said == [(f"Loading {ckpt}", 0.0), (f"Reading {ckpt.name}", 0.0), ("Building the unet", 0.2),
                    ("Building the vae", 0.4), ("Building the text encoder", 0.6),
                    ("Building the text encoder 2", 0.8), (f"Loaded {ckpt}", 1.0)]

    def cancel_at_the_vae(text, fraction):
        said.append((text, fraction))
        if text == "Building the vae":
            raise Cancelled("Cancelled while the model was loading.")

    said.clear()
    with pytest.raises(Cancelled):
        load_model(str(ckpt), config_dir=folder, progress=cancel_at_the_vae)
    assert said[-1] == ("Building the vae", 0.4) and len(said) == 4


def test_single_file_key_layout_is_the_original_one(tiny_sdxl, tiny_sd15):
    xl = pipeline_to_original(tiny_sdxl.pipe)
    assert "model.diffusion_model.input_blocks.0.0.weight" in xl
    assert "model.diffusion_model.label_emb.0.0.weight" in xl  # SDXL's text-time embedding
    assert "first_stage_model.decoder.mid.attn_1.q.weight" in xl
    assert xl["first_stage_model.decoder.mid.attn_1.q.weight"].ndim == 4  # LDM stores VAE attention as 1x1 convs
    assert "conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight" in xl
    hidden = tiny_sdxl.pipe.text_encoder_2.config.hidden_size
    fused = xl["conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight"]
    assert tuple(fused.shape) == (3 * hidden, hidden)
    sd = pipeline_to_original(tiny_sd15.pipe)
    assert "cond_stage_model.transformer.text_model.final_layer_norm.weight" in sd
    assert not any(k.startswith("conditioner.") for k in sd)
    n_params = sum(p.numel() for part in ("unet", "vae", "text_encoder") for p in getattr(tiny_sd15.pipe, part).parameters())
    assert sum(v.numel() for v in sd.values()) == n_params


def test_shipped_configs_and_clip_vocabulary_load_offline():
    from engine.single_file import CONFIG_DIRS, tokenizer_from_config

    tok = tokenizer_from_config(CONFIG_DIRS["sdxl"], "tokenizer")
    tok2 = tokenizer_from_config(CONFIG_DIRS["sdxl"], "tokenizer_2")
    sd = tokenizer_from_config(CONFIG_DIRS["sd15"], "tokenizer")
    assert len(tok) == len(tok2) == len(sd) == 49408
    # CLIP's published ids for this phrase; SDXL's second tokenizer pads with '!' (id 0), the first with EOS.
    ids = tok("a photo of a cat", padding="max_length", max_length=10).input_ids
    assert ids == [49406, 320, 1125, 539, 320, 2368, 49407, 49407, 49407, 49407]
    assert tok2("a photo of a cat", padding="max_length", max_length=10).input_ids[-3:] == [0, 0, 0]
    assert tok.model_max_length == tok2.model_max_length == 77
    from diffusers import DDIMScheduler

    from engine.single_file import scheduler_from_config

    for family, cls in (("sdxl", "StableDiffusionXLPipeline"), ("sd15", "StableDiffusionPipeline")):
        index = json.loads((CONFIG_DIRS[family] / "model_index.json").read_text())
        assert index["_class_name"] == cls
        # the engine's DDIM is built from this config: it must not clip samples (the published configs say so)
        ddim = DDIMScheduler.from_config(scheduler_from_config(CONFIG_DIRS[family], index).config)
        assert (ddim.config.clip_sample, ddim.config.set_alpha_to_one, ddim.config.steps_offset) == (False, False, 1)
        assert ddim.config.timestep_spacing == "leading" and ddim.config.beta_schedule == "scaled_linear"


def test_single_file_detects_the_family_from_keys():
    from engine.single_file import detect_family

    unet = {"model.diffusion_model.input_blocks.0.0.weight"}
    assert detect_family(unet | {"conditioner.embedders.1.model.positional_embedding"}) == "sdxl"
    assert detect_family(unet | {"cond_stage_model.transformer.text_model.x"}) == "sd15"
    with pytest.raises(ModelLoadError, match="Stable Diffusion 2.x"):
        detect_family(unet | {"cond_stage_model.model.token_embedding.weight"})
    with pytest.raises(ModelLoadError, match="unknown family"):
        detect_family({"lora_unet_down_blocks_0.alpha"}, "x.safetensors")


def _write(path: Path, tensors: dict) -> Path:
    from safetensors.torch import save_file

    save_file(tensors, str(path))
    return path


def test_single_file_errors_are_one_sentence_each(tmp_path, saved):
    folder, ckpt = saved["sdxl"]
    cases = []
    # missing file
    cases.append((str(tmp_path / "missing.safetensors"), "does not exist"))
    # truncated: header says more bytes than the file holds
    data = ckpt.read_bytes()
    (tmp_path / "truncated.safetensors").write_bytes(data[: len(data) // 2])
    cases.append((str(tmp_path / "truncated.safetensors"), "not a readable .safetensors checkpoint"))
    # garbage
    (tmp_path / "garbage.safetensors").write_bytes(b"\x00\x01not a checkpoint at all" * 10)
    cases.append((str(tmp_path / "garbage.safetensors"), "not a readable .safetensors checkpoint"))
    # valid safetensors of an unknown family (a LoRA-like file)
    _write(tmp_path / "lora.safetensors", {"lora_unet_down.weight": torch.zeros(2, 2)})
    cases.append((str(tmp_path / "lora.safetensors"), "unknown family"))
    # a pickle checkpoint is refused before it is opened
    (tmp_path / "model.ckpt").write_bytes(b"PK\x03\x04 pickle")
    cases.append((str(tmp_path / "model.ckpt"), ".ckpt (pickle) checkpoint"))
    for source, words in cases:
        with pytest.raises(ModelLoadError) as err:
            load_model(source, config_dir=folder)
        assert words in str(err.value), source
        assert "\n" not in str(err.value)


def test_single_file_that_lacks_a_component_or_does_not_fit_the_configs(tmp_path, saved, tiny_sdxl, tiny_sd15):
    folder, _ = saved["sdxl"]
    state = {k: v.contiguous() for k, v in pipeline_to_original(tiny_sdxl.pipe).items()}
    no_te2 = {k: v for k, v in state.items() if not k.startswith("conditioner.embedders.1.")}
    no_te2["conditioner.embedders.1.model.ln_final.weight"] = state["conditioner.embedders.1.model.ln_final.weight"]
    with pytest.raises(ModelLoadError, match="has no weight .* for its text encoder 2|does not match the SDXL"):
        load_model(str(_write(tmp_path / "partial.safetensors", no_te2)), config_dir=folder)
    # an SD 1.x file with the SDXL configs forced on it: shapes differ -> one sentence, not a traceback
    sd_state = {k: v.contiguous() for k, v in pipeline_to_original(tiny_sd15.pipe).items()}
    sd_file = _write(tmp_path / "sd.safetensors", sd_state)
    with pytest.raises(ModelLoadError, match="does not match the SD 1.x architecture"):
        load_model(str(sd_file), config_dir=folder)


# --- folders ----------------------------------------------------------------------------------------------------

def test_folder_errors_are_one_sentence_each(tmp_path, saved):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(str(tmp_path / "no-such-folder"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="has no model_index.json"):
        load_model(str(tmp_path / "empty"))
    folder, _ = saved["sd15"]
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    weights = next((broken / "unet").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ModelLoadError) as err:
        load_model(str(broken))
    assert "could not be loaded" in str(err.value) and "\n" not in str(err.value)


def test_a_folder_of_fp16_variant_files_only_loads(tmp_path, saved, tiny_sd15):
    """As saved by ``save_pretrained(variant="fp16")`` or fetched for a GPU: ``*.fp16.safetensors`` only."""
    folder = tmp_path / "fp16-only"
    shutil.copytree(saved["sd15"][0], folder)
    for weights in folder.rglob("*.safetensors"):
        weights.rename(weights.with_name(f"{weights.stem}.fp16.safetensors"))
    loaded = load_model(str(folder), dtype="fp32")
    assert loaded.family == "sd15" and loaded.fingerprint == tiny_sd15.fingerprint


def test_a_folder_is_read_one_weighted_part_at_a_time_and_gives_the_same_model(saved, tiny_sdxl):
    """Each part that holds weights is announced before it is read; the pipeline is the one saved, image for image."""
    folder, _ = saved["sdxl"]
    said: list[tuple[str, float]] = []
    loaded = load_model(str(folder), dtype="fp32", progress=lambda text, fraction: said.append((text, fraction)))
    name = folder.name
    assert [t for t, _ in said] == [f"Loading {folder}", f"Loading {name}: unet", f"Loading {name}: text encoder",
                                    f"Loading {name}: text encoder 2", f"Loading {name}: vae", f"Loaded {folder}"]
    assert [f for _, f in said] == [0.0, 0.0, 0.2, 0.4, 0.6, 1.0]
    assert loaded.family == "sdxl" and loaded.fingerprint == tiny_sdxl.fingerprint
    assert np.array_equal(_pixels(loaded), _pixels(tiny_sdxl))


def test_a_cancel_during_a_folder_load_stops_before_the_next_part(saved, monkeypatch):
    """"Cancel now" raises from the progress callback: the load stops there as a cancel (not as a damaged model),
    and neither the later parts nor the pipeline are read."""
    import diffusers
    import transformers

    from engine.errors import Cancelled

    folder, _ = saved["sd15"]
    read: list[str] = []
    real_te = transformers.CLIPTextModel.from_pretrained.__func__
    monkeypatch.setattr(transformers.CLIPTextModel, "from_pretrained",
                        classmethod(lambda cls, *a, **k: read.append("text_encoder") or real_te(cls, *a, **k)))
    monkeypatch.setattr(diffusers.DiffusionPipeline, "from_pretrained",
                        classmethod(lambda cls, *a, **k: read.append("pipeline")))

    def cancel_at_the_vae(text, fraction):
        if text.endswith(": vae"):
            raise Cancelled("Cancelled while the model was loading.")

    with pytest.raises(Cancelled, match="while the model was loading"):
        load_model(str(folder), dtype="fp32", progress=cancel_at_the_vae)
    assert read == ["text_encoder"]   # the unet and the text encoder were read; the vae and the rest were not


def test_a_device_this_computer_lacks_is_refused_before_anything_loads():
    import torch

    import engine.model_loader as loader

    if not (torch.backends.mps.is_available() or torch.cuda.is_available()):
        with pytest.raises(ModelLoadError, match=r"Apple GPU \(MPS\) was requested but this computer has none"):
            load_model("tiny", device="mps")
        with pytest.raises(ModelLoadError, match="CUDA was requested but no CUDA GPU is available"):
            load_model("tiny", device="cuda:0")
    for bad in ("gpu", "cuda0", "tpu"):
        with pytest.raises(ModelLoadError, match=f"Unknown device '{bad}'"):
            loader.pick_device(bad)
    assert loader.pick_device("cpu", "bf16") == ("cpu", torch.bfloat16)


def test_unknown_source_names_what_is_accepted():
    with pytest.raises(ModelLoadError, match="Unknown model source 'not a model'"):
        load_model("not a model")


# --- Hugging Face hub ids ---------------------------------------------------------------------------------------

def test_hub_id_offline_gives_a_clear_error_quickly(tmp_path, monkeypatch):
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path))
    start = time.monotonic()
    with pytest.raises(ModelLoadError) as err:
        load_model("someone/not-downloaded-model")
    message = str(err.value)
    assert "someone/not-downloaded-model" in message
    assert "not in the local Hugging Face cache" in message and "HF_HUB_OFFLINE" in message
    assert ".safetensors" in message and "folder" in message
    assert "\n" not in message
    assert time.monotonic() - start < 30  # never waits on the network


def test_hub_id_in_the_local_cache_loads_offline(tmp_path, monkeypatch, saved, tiny_sdxl):
    import huggingface_hub.constants as hub_constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--someone--tiny-xl"
    shutil.copytree(saved["sdxl"][0], repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path))
    messages = []
    loaded = load_model("someone/tiny-xl", progress=lambda msg, frac: messages.append((msg, frac)))
    assert loaded.family == "sdxl" and loaded.source == "someone/tiny-xl"
    assert loaded.fingerprint == tiny_sdxl.fingerprint
    assert messages[0][1] == 0.0 and messages[-1][1] == 1.0
    parts = [(m, round(f, 3)) for m, f in messages if m.startswith("Loading someone/tiny-xl: ")]
    assert parts == [("Loading someone/tiny-xl: unet", 0.9), ("Loading someone/tiny-xl: text encoder", 0.92),
                     ("Loading someone/tiny-xl: text encoder 2", 0.94), ("Loading someone/tiny-xl: vae", 0.96)]
    from engine.errors import Cancelled

    def cancel_at_the_vae(msg, frac):
        if msg.endswith(": vae"):
            raise Cancelled("Cancelled while the model was loading.")

    with pytest.raises(Cancelled):   # a cancel, not "the cached files may be incomplete"
        load_model("someone/tiny-xl", progress=cancel_at_the_vae)


def test_hub_download_patterns_fetch_one_weight_set_only():
    from huggingface_hub.utils import filter_repo_objects

    from engine.hub_download import choose_variant, download_patterns

    files = ["model_index.json", "sd_xl_base_1.0.safetensors", "unet/config.json",
             "unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors",
             "unet/diffusion_pytorch_model.bin", "vae/diffusion_pytorch_model.fp16.safetensors",
             "vae/diffusion_pytorch_model.safetensors", "text_encoder/model.fp16.safetensors",
             "text_encoder/model.safetensors", "tokenizer/vocab.json", "scheduler/scheduler_config.json",
             "vae_1_0/diffusion_pytorch_model.safetensors", "text_encoder/model.onnx",
             "unet/diffusion_pytorch_model.non_ema.safetensors", "text_encoder_2/model-00001-of-00002.safetensors",
             "text_encoder_2/model-00002-of-00002.safetensors", "text_encoder_2/model.safetensors.index.json"]
    assert choose_variant(files, torch.float16) == "fp16"
    assert choose_variant(files, torch.float32) is None
    picked = {v: set(filter_repo_objects(files, allow_patterns=download_patterns(v)[0],
                                         ignore_patterns=download_patterns(v)[1])) for v in (None, "fp16")}
    common = {"model_index.json", "unet/config.json", "tokenizer/vocab.json", "scheduler/scheduler_config.json"}
    assert picked["fp16"] == common | {"text_encoder_2/model.safetensors.index.json",
                                       "unet/diffusion_pytorch_model.fp16.safetensors",
                                       "vae/diffusion_pytorch_model.fp16.safetensors",
                                       "text_encoder/model.fp16.safetensors"}
    shards = {"text_encoder_2/model-00001-of-00002.safetensors", "text_encoder_2/model-00002-of-00002.safetensors"}
    assert picked[None] == common | shards | {"unet/diffusion_pytorch_model.safetensors",
                                              "vae/diffusion_pytorch_model.safetensors",
                                              "text_encoder/model.safetensors",
                                              "text_encoder_2/model.safetensors.index.json"}


def test_hub_progress_reports_downloaded_bytes():
    from huggingface_hub.utils.tqdm import _create_progress_bar

    from engine.hub_download import _ProgressBar

    seen = []
    cls = _ProgressBar.make("org/model", lambda msg, frac: seen.append((msg, frac)))
    bar = _create_progress_bar(cls=cls, log_level=30, name="x", desc="Reconstructing (incomplete total...)",
                               total=0, initial=0, unit="B", unit_scale=True)
    bar.total = 2_000_000_000
    bar.update(500_000_000)
    bar.update(1_500_000_000)
    assert [round(f, 3) for _, f in seen] == [0.225, 0.9]
    assert seen[-1][0] == "Downloading org/model: 2.00 of 2.00 GB"
    files_bar = _create_progress_bar(cls=cls, log_level=30, desc="Fetching 3 files", total=3)
    files_bar.update(1)
    assert len(seen) == 2  # only the byte bar reports


def test_tiny_builds_quickly_after_imports(tiny_sdxl):
    """Not a timing assertion: prints the build time of `tiny` (the target is < 1 s once torch is imported)."""
    start = time.perf_counter()
    model = load_model("tiny")
    elapsed = time.perf_counter() - start
    print(f"\nload_model('tiny') took {elapsed:.2f} s")
    assert model.fingerprint == tiny_sdxl.fingerprint  # deterministic: the same weights every build


def test_hub_download_size_is_unknown_offline():
    from engine.hub_download import hub_download_size, hub_is_offline

    assert hub_is_offline()
    assert hub_download_size("someone/any-model") is None


def test_a_download_cancelled_through_its_progress_is_not_reported_as_unreachable(tmp_path, monkeypatch):
    import huggingface_hub

    import engine.hub_download as hub
    from engine.errors import Cancelled

    index = tmp_path / "model_index.json"
    index.write_text(json.dumps({"_class_name": "StableDiffusionXLPipeline"}))
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda repo_id, filename, **k: str(index))

    def stop(*a, progress=None, **k):
        progress("Downloading someone/model: 0.10 of 6.90 GB", 0.01)

    def cancel(message, fraction):
        raise Cancelled("Cancelled while the model was loading.")

    monkeypatch.setattr(hub, "hub_is_offline", lambda: False)
    monkeypatch.setattr(hub, "_remote_files", lambda repo_id: {"model_index.json": 1,
                                                               "unet/diffusion_pytorch_model.safetensors": 1})
    monkeypatch.setattr(hub, "_snapshot", stop)
    with pytest.raises(Cancelled, match="while the model was loading"):
        hub.load_from_hub("someone/model", torch.float32, progress=cancel)


def test_a_hub_model_the_app_cannot_run_is_refused_before_its_weights_download(tmp_path, monkeypatch):
    import huggingface_hub

    import engine.hub_download as hub

    index = tmp_path / "model_index.json"
    index.write_text(json.dumps({"_class_name": "FluxPipeline"}))
    monkeypatch.setattr(hub, "hub_is_offline", lambda: False)
    monkeypatch.setattr(hub, "_remote_files", lambda repo_id: {"model_index.json": 1,
                                                               "transformer/model.safetensors": 9_500_000_000})
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda repo_id, filename, **k: str(index))
    monkeypatch.setattr(hub, "_snapshot", lambda *a, **k: pytest.fail("the weights were downloaded"))
    with pytest.raises(ModelLoadError, match="someone/flux is a FluxPipeline model; only SDXL and SD 1.x"):
        hub.load_from_hub("someone/flux", torch.float16)


def test_a_hub_repository_without_a_pipeline_or_a_full_disk_is_named_not_called_unreachable(tmp_path, monkeypatch):
    import huggingface_hub

    import engine.hub_download as hub

    monkeypatch.setattr(hub, "hub_is_offline", lambda: False)
    monkeypatch.setattr(hub, "_remote_files", lambda repo_id: {"lora.safetensors": 1})
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: pytest.fail("nothing is downloaded"))
    with pytest.raises(ModelLoadError, match="someone/lora is not a diffusers pipeline") as info:
        hub.load_from_hub("someone/lora", torch.float16)
    assert "cannot be reached" not in str(info.value)

    index = tmp_path / "model_index.json"
    index.write_text(json.dumps({"_class_name": "StableDiffusionXLPipeline"}))
    monkeypatch.setattr(hub, "_remote_files", lambda repo_id: {"model_index.json": 1, "unet/x.safetensors": 1})
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda repo_id, filename, **k: str(index))

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(hub, "_snapshot", full)
    with pytest.raises(ModelLoadError,
                       match=rf"someone/xl could not be downloaded: the disk holding {tmp_path} is full"):
        hub.load_from_hub("someone/xl", torch.float16, cache_dir=tmp_path)
