"""Test-wide setup: headless Qt, no network, and small shared fixtures (tiny models are cached per session)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_sdxl():
    """The ``tiny`` SDXL-layout model (random weights), loaded once per test session. Do not mutate it."""
    from engine.model_loader import load_model

    return load_model("tiny")


@pytest.fixture(scope="session")
def tiny_sd15():
    from engine.model_loader import load_model

    return load_model("tiny-sd15")


@pytest.fixture(scope="session")
def load_bench():
    """``load_bench("bench_engine")``: a script of ``tests/bench`` as a module (they are scripts, not a package)."""
    import importlib.util
    from pathlib import Path

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parent / "bench" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory, monkeypatch):
    """Keep every test away from the real user data/cache/config dirs (library, caches, settings)."""
    base = tmp_path_factory.mktemp("userdirs")
    monkeypatch.setenv("CONSISTORY_STUDIO_HOME", str(base))
    monkeypatch.setenv("XDG_DATA_HOME", str(base / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(base / "cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(base / "config"))
    yield
