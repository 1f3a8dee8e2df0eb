"""CFG-04: production refuses unsafe settings; development keeps its own random key."""

from __future__ import annotations

import os
import stat

import pytest

from pmo import create_app
from pmo.config import ConfigError
from pmo.settings.service import set_setting

GOOD_KEY = "9f" * 32


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch):
    for key in list(os.environ):
        if key.startswith("PMO_"):
            monkeypatch.delenv(key)


def production(tmp_path, **config):
    return create_app({"ENV": "production", "INSTANCE_PATH": str(tmp_path / "instance"),
                       "DATABASE_URL": f"sqlite:///{tmp_path / 'prod.sqlite3'}", **config})


@pytest.mark.parametrize("key", [None, "", "dev", "change-me", "secret", "0123456789abcdef", "x" * 31])
def test_production_refuses_a_missing_or_weak_secret_key(tmp_path, key):
    config = {} if key is None else {"SECRET_KEY": key}
    with pytest.raises(ConfigError):
        production(tmp_path, **config)
    assert not (tmp_path / "instance" / "secret_key").exists()  # no quiet fallback to a generated key


def test_production_refuses_a_weak_key_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PMO_SECRET_KEY", "dev")
    with pytest.raises(ConfigError):
        production(tmp_path)


@pytest.mark.parametrize("env", ["production", "development"])
def test_string_fallbacks_are_refused(tmp_path, env):
    with pytest.raises(ConfigError, match="list"):
        create_app({"ENV": env, "SECRET_KEY": GOOD_KEY, "SECRET_KEY_FALLBACKS": "old",
                    "INSTANCE_PATH": str(tmp_path / "i"), "DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}"})


def test_string_fallbacks_from_the_environment_are_refused_or_split(tmp_path, monkeypatch):
    monkeypatch.setenv("PMO_SECRET_KEY_FALLBACKS", "old")
    try:
        app = production(tmp_path, SECRET_KEY=GOOD_KEY)
    except ConfigError:
        return
    assert app.config["SECRET_KEY_FALLBACKS"] == ["old"]  # a list, never a string of characters


def test_production_accepts_a_strong_key_with_list_fallbacks(tmp_path):
    app = production(tmp_path, SECRET_KEY=GOOD_KEY, SECRET_KEY_FALLBACKS=["a" * 64])
    assert app.config["SECRET_KEY"] == GOOD_KEY and not app.debug


def test_production_refuses_demo_data(connection, db_session, tmp_path):
    set_setting(db_session, "demo", True)
    db_session.commit()
    with pytest.raises(ConfigError, match="demo"):
        create_app({"ENV": "production", "SECRET_KEY": GOOD_KEY, "DB_BIND": connection,
                    "INSTANCE_PATH": str(tmp_path / "i"),
                    "DATABASE_URL": connection.engine.url.render_as_string(hide_password=False)})
    with pytest.raises(ConfigError, match="demo"):
        production(tmp_path, SECRET_KEY=GOOD_KEY, DEMO=True)


def test_production_refuses_to_load_demo_data(tmp_path, monkeypatch):
    app = production(tmp_path, SECRET_KEY=GOOD_KEY)
    result = app.test_cli_runner().invoke(args=["demo", "--password", "demo-pass-2015"])
    assert result.exit_code != 0 and "本番環境" in result.output


def test_development_creates_and_keeps_a_private_random_key(tmp_path):
    instance = tmp_path / "instance"
    config = {"INSTANCE_PATH": str(instance), "DATABASE_URL": f"sqlite:///{tmp_path / 'dev.sqlite3'}"}
    first = create_app(config)
    key_file = instance / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(first.config["SECRET_KEY"]) >= 64 and first.config["SECRET_KEY"] == key_file.read_text().strip()
    second = create_app(config)
    assert second.config["SECRET_KEY"] == first.config["SECRET_KEY"]
    other = create_app({**config, "INSTANCE_PATH": str(tmp_path / "elsewhere")})
    assert other.config["SECRET_KEY"] != first.config["SECRET_KEY"]


def test_cookie_and_session_settings_are_production_values(tmp_path):
    app = production(tmp_path, SECRET_KEY=GOOD_KEY)
    cfg = app.config
    assert cfg["SESSION_COOKIE_SECURE"] and cfg["SESSION_COOKIE_HTTPONLY"]
    assert cfg["SESSION_COOKIE_SAMESITE"] == "Lax" and cfg["SESSION_COOKIE_NAME"].startswith("__Host-")
    assert cfg.get("SESSION_COOKIE_DOMAIN") in (None, False)
    assert cfg["SESSION_IDLE_MINUTES"] == 30 and cfg["SESSION_ABSOLUTE_HOURS"] == 12
    assert cfg["WTF_CSRF_SSL_STRICT"]
