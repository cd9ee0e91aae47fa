"""User data/cache/config/library locations: platformdirs by default, all under CONSISTORY_STUDIO_HOME when set."""

from __future__ import annotations

from pathlib import Path

from app import user_dirs


def test_home_override_puts_every_dir_under_it(tmp_path, monkeypatch):
    monkeypatch.setenv("CONSISTORY_STUDIO_HOME", str(tmp_path / "home"))
    home = tmp_path / "home"
    assert user_dirs.data_dir() == home / "data"
    assert user_dirs.cache_dir() == home / "cache"
    assert user_dirs.config_dir() == home / "config"
    assert user_dirs.library_dir() == home / "data" / "library"
    assert not home.exists()  # asking creates nothing
    assert user_dirs.ensure_dir(user_dirs.library_dir()).is_dir()


def test_without_override_platformdirs_locations_are_used(tmp_path, monkeypatch):
    monkeypatch.delenv("CONSISTORY_STUDIO_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdata"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xcache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xconfig"))
    import platformdirs

    assert user_dirs.data_dir() == Path(platformdirs.user_data_dir("ConsistoryStudio", appauthor=False))
    if platformdirs.user_data_dir("x").startswith(str(tmp_path)):  # Linux/XDG: the variables are honoured
        assert user_dirs.data_dir() == tmp_path / "xdata" / "ConsistoryStudio"
        assert user_dirs.cache_dir() == tmp_path / "xcache" / "ConsistoryStudio"
        assert user_dirs.config_dir() == tmp_path / "xconfig" / "ConsistoryStudio"
        assert user_dirs.library_dir() == tmp_path / "xdata" / "ConsistoryStudio" / "library"
