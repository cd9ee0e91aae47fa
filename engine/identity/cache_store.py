"""Where anchor caches live: in memory (per process, bounded) and optionally as safetensors files in the user
cache dir, keyed by a fingerprint of the recipe, the noise, the model and the library versions.

A cache file that does not match its key, fails its checksum or cannot be parsed is never trusted: it is deleted,
reported (``events``) and rebuilt.

GPU memory: at 1024² a cache is several GB (README). ``offload`` keeps its per-layer, per-step tensors in host
memory (pinned when CUDA is there) and the panel copies each one to the device when its layer runs
(``IdentityBank``); ``None`` (default) offloads when the cache would take more than a quarter of the free device
memory, ``True``/``False`` force it. On a CPU model it changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch

from ..errors import OutOfMemoryError
from .anchor_build import build_anchor_cache
from .anchor_cache import AnchorCache
from .identity_file import Identity

if TYPE_CHECKING:  # pragma: no cover
    from ..model_loader import LoadedModel
    from ..request import StepCallback

__all__ = ["AnchorCacheStore", "default_cache_dir", "CACHE_LAYOUT"]

# What a cache holds and how the engine records it; bumped whenever recording changes (2: run 1's last pass
# ends at the DIFT block, vanilla queries ride along in the decoder; 3: FreeU's filter as a projection and the subject
# maps' softmax from half-precision logits, which round differently; 4: run 2's first step blends with that step's
# vanilla queries), so older files are rebuilt, never trusted.
CACHE_LAYOUT = 4


def default_cache_dir() -> Path:
    home = os.environ.get("CONSISTORY_STUDIO_HOME")
    if home:
        return Path(home) / "cache" / "anchor-cache"
    import platformdirs

    return Path(platformdirs.user_cache_dir("ConsistoryStudio", appauthor=False)) / "anchor-cache"  # = app.user_dirs


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(tensors):
        h.update(k.encode())
        h.update(tensors[k].contiguous().view(torch.uint8).reshape(-1).numpy().tobytes())
    return h.hexdigest()


class AnchorCacheStore:
    _default: "AnchorCacheStore | None" = None

    def __init__(self, disk_dir: str | Path | None = None, max_memory_bytes: int = 2 << 30,
                 offload: bool | None = None):
        self.disk_dir = Path(disk_dir) if disk_dir is not None else None
        self.offload = offload
        self.max_memory_bytes = max_memory_bytes
        self._memory: "OrderedDict[str, AnchorCache]" = OrderedDict()
        self.events: list[str] = []   # "hit-memory", "hit-disk", "built", "rebuilt-damaged:<why>"
        self.last_drift: int | None = None

    @classmethod
    def default(cls) -> "AnchorCacheStore":
        if cls._default is None:
            cls._default = cls(disk_dir=None)
        return cls._default

    def key(self, model: "LoadedModel", identity: Identity) -> str:
        h = hashlib.sha256(json.dumps(identity.recipe(), sort_keys=True).encode())
        if identity.noise is not None:
            h.update(identity.noise.to(torch.float32).contiguous().numpy().tobytes())
        import diffusers

        h.update(json.dumps([CACHE_LAYOUT, model.fingerprint, str(model.dtype), model.device, torch.__version__,
                             diffusers.__version__]).encode())
        return h.hexdigest()[:24]

    def get(self, model: "LoadedModel", identity: Identity, *, should_cancel: Callable[[], bool] | None = None,
            on_step: "StepCallback | None" = None) -> AnchorCache:
        key = self.key(model, identity)
        if key in self._memory:
            self._memory.move_to_end(key)
            self.events.append("hit-memory")
            return self._memory[key]
        cache = self._load_disk(key, model)
        if cache is None:
            cache, self.last_drift = build_anchor_cache(model, identity, should_cancel=should_cancel, on_step=on_step)
            self.events.append("built")
            try:
                self._save_disk(key, cache)
            except OSError as exc:  # the disk copy only saves time later: a full or read-only disk loses nothing
                self.events.append(f"save-failed: {exc.strerror or exc}")
        cache = self._place(cache, model)
        self._remember(key, cache)
        return cache

    def _place(self, cache: AnchorCache, model: "LoadedModel") -> AnchorCache:
        """Put the cache on the model's device (one read from disk arrives in host memory), or its per-layer tensors
        in host memory when offloading (see the module doc). Running out of device memory here is the engine's
        ``OutOfMemoryError``; the file on disk stays."""
        device = torch.device(model.pipe._execution_device)
        offload = self.offload
        if offload is None:
            offload = device.type == "cuda" and cache.nbytes() > 0.25 * torch.cuda.mem_get_info(device)[0]
        try:
            for name in ("dift", "masks", "owner"):
                t = getattr(cache, name)
                if t is not None:
                    setattr(cache, name, t.to(device))
            if not offload:
                cache.tokens = {k: t.to(device) for k, t in cache.tokens.items()}
                cache.outputs = {k: t.to(device) for k, t in cache.outputs.items()}
                return cache
        except torch.OutOfMemoryError as exc:
            raise OutOfMemoryError(str(device)) from exc
        pin = torch.cuda.is_available()
        host = lambda t: t.to("cpu").pin_memory() if pin else t.to("cpu")  # noqa: E731
        cache.tokens = {k: host(t) for k, t in cache.tokens.items()}
        cache.outputs = {k: host(t) for k, t in cache.outputs.items()}
        cache.offloaded = True
        self.events.append("offloaded")
        return cache

    def _remember(self, key: str, cache: AnchorCache) -> None:
        self._memory[key] = cache
        while len(self._memory) > 1 and sum(c.nbytes() for c in self._memory.values()) > self.max_memory_bytes:
            self._memory.popitem(last=False)

    def clear_memory(self) -> None:
        self._memory.clear()

    def path(self, key: str) -> Path | None:
        return None if self.disk_dir is None else self.disk_dir / f"{key}.safetensors"

    def _save_disk(self, key: str, cache: AnchorCache) -> None:
        from safetensors.torch import save_file

        path = self.path(key)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors: dict[str, torch.Tensor] = {}
        index = {"tokens": [], "outputs": []}
        for n, ((layer, run, step), t) in enumerate(cache.tokens.items()):
            tensors[f"t{n}"] = t.detach().cpu().contiguous()
            index["tokens"].append([layer, run, step])
        for n, ((layer, step), t) in enumerate(cache.outputs.items()):
            tensors[f"o{n}"] = t.detach().cpu().contiguous()
            index["outputs"].append([layer, step])
        for name in ("dift", "masks", "owner"):
            t = getattr(cache, name)
            if t is not None:
                tensors[name] = t.detach().cpu().contiguous()
        meta = {"key": key, "index": json.dumps(index), "subjects": json.dumps(list(cache.subjects)),
                "n_anchors": str(cache.n_anchors), "n_steps": str(cache.n_steps), "sha256": _digest(tensors)}
        tmp = path.with_name(path.name + ".tmp")
        try:
            save_file(tensors, str(tmp), metadata=meta)
            tmp.replace(path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _load_disk(self, key: str, model: "LoadedModel") -> AnchorCache | None:
        from safetensors import safe_open

        path = self.path(key)
        if path is None or not path.exists():
            return None
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}
            if meta.get("key") != key:
                raise ValueError("it belongs to another recipe")
            if meta.get("sha256") != _digest(tensors):
                raise ValueError("its checksum does not match")
            index = json.loads(meta["index"])
            # kept in host memory here: _place puts it on the device, or offloads it, as it does a new one
            cache = AnchorCache(tuple(json.loads(meta["subjects"])), int(meta["n_anchors"]), int(meta["n_steps"]))
            for n, (layer, run, step) in enumerate(index["tokens"]):
                cache.tokens[(layer, int(run), int(step))] = tensors[f"t{n}"]
            for n, (layer, step) in enumerate(index["outputs"]):
                cache.outputs[(layer, int(step))] = tensors[f"o{n}"]
            for name in ("dift", "masks", "owner"):
                if name in tensors:
                    setattr(cache, name, tensors[name])
        except OSError as exc:  # the disk, not the file: keep it for next time
            self.events.append(f"unreadable:{exc.strerror or exc}")
            return None
        except Exception as exc:  # damaged, truncated, foreign: never trusted
            self.events.append(f"rebuilt-damaged:{exc}")
            try:
                path.unlink()
            except OSError:
                pass
            return None
        self.events.append("hit-disk")
        return cache
