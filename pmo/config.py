"""Settings: defaults here, then ``PMO_*`` environment variables, then a test mapping."""

from __future__ import annotations

import datetime as dt
import os
import secrets
from pathlib import Path
from typing import Any, Mapping

WEAK_KEYS = {"", "dev", "secret", "change-me", "changeme", "development", "test", "key", "password"}
MIN_SECRET_KEY_BYTES = 32


class ConfigError(RuntimeError):
    """The configuration is unsafe or incomplete; the app refuses to start."""


class DefaultConfig:
    ENV = "development"  # "production" turns on every refusal below
    DATABASE_URL: str | None = None  # default: sqlite file in the instance folder
    SECRET_KEY: str | None = None
    SECRET_KEY_FALLBACKS: list[str] = []
    DEMO = False  # demo data present; refused in production

    # Sessions (SECURITY.md SESS-03/05): server-side, 30 min idle, 12 h absolute, no remember-me.
    SESSION_IDLE_MINUTES = 30
    SESSION_ABSOLUTE_HOURS = 12
    SESSION_TOUCH_SECONDS = 60  # how often last_seen is written
    SESSION_COOKIE_NAME = "__Host-pmo_session"
    SESSION_COOKIE_SECURE = True
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_PATH = "/"
    PERMANENT_SESSION_LIFETIME = dt.timedelta(hours=12)
    # The cookie is re-signed only when it changes: idle and absolute expiry are enforced on the
    # server-side session row, so re-sending it on every response bought nothing.
    SESSION_REFRESH_EACH_REQUEST = False
    REMEMBER_COOKIE_DURATION = dt.timedelta(seconds=0)
    REMEMBER_COOKIE_SECURE = True
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"

    # CSRF: token lifetime at least the idle timeout (CSRF-01).
    WTF_CSRF_TIME_LIMIT = 12 * 3600
    WTF_CSRF_SSL_STRICT = True

    # Login throttling (AUTH-02): per account and per client address, in a sliding window.
    LOGIN_WINDOW_MINUTES = 5
    LOGIN_MAX_FAILURES_PER_USER = 5
    LOGIN_MAX_FAILURES_PER_IP = 20
    PASSWORD_HASH_CONCURRENCY = 2  # argon2 computations at once per process (64 MiB each): about the cores
    # Second factor (AUTH-05, DECISIONS.md 1): TOTP required for privileged roles; body and
    # prefecture staff only when MFA_FOR_STAFF is on. MFA_ENFORCE=false (no one is required to use
    # it) is for the local demo only: production refuses to start with it.
    MFA_ENFORCE = True
    MFA_FOR_STAFF = False
    MFA_ISSUER = "デジタルPMO"
    MFA_ENCRYPTION_KEY: str | None = None  # default: derived from SECRET_KEY (and its fallbacks)
    MFA_MAX_FAILURES_PER_USER = 5
    MFA_MAX_FAILURES_PER_IP = 20
    MFA_PENDING_MINUTES = 5  # time to enter the code after the password
    REAUTH_MINUTES = 5  # SESS-06: changing one's own MFA needs a login or re-authentication this recent
    PASSWORD_MIN_LENGTH = 8
    PASSWORD_MAX_LENGTH = 128
    INITIAL_PASSWORD_HOURS = 72
    INACTIVE_ACCOUNT_DAYS = 90

    # Request limits (INP-04).
    MAX_CONTENT_LENGTH = 50 * 1024 * 1024
    MAX_FORM_MEMORY_SIZE = 512 * 1024  # one text field, and any body that is not a file upload
    MAX_FORM_PARTS = 2000

    # Per-user quotas (INP-04 d), in a sliding window; 0 turns one off. Shared through Redis when set.
    UPLOAD_QUOTA_PER_MINUTE = 50
    EXPORT_QUOTA_PER_MINUTE = 20
    QUOTA_WINDOW_SECONDS = 60
    QUOTA_REDIS_PREFIX: str | None = None  # default: REDIS_PREFIX + "quota:"

    TRUSTED_PROXIES = 0  # number of reverse proxies in front (ProxyFix x_for)
    REDIS_URL: str | None = None  # shared /metrics counters of all workers (pmo.ops.metrics)
    REDIS_PREFIX = "pmo:"  # key prefix, for a Redis shared with other services
    METRICS_INSTANCE: str | None = None  # the Redis counters' machine name; default the host name
    METRICS_FLUSH_SECONDS = 1  # how often each worker sends its counts to Redis
    ROLLUP_CACHE = True  # share dashboard roll-ups between requests and workers (Redis when REDIS_URL is set)
    ROLLUP_CACHE_SECONDS = 3600
    ROLLUP_CACHE_LOCAL_SIZE = 24
    # /metrics answers a Bearer METRICS_TOKEN, or a scraper whose own TCP address (never a forwarded
    # header) is in METRICS_ALLOW; nobody by default. Never list the reverse proxy's address.
    METRICS_TOKEN: str | None = None
    METRICS_ALLOW: list[str] = []
    LOG_LEVEL = "INFO"
    ITEMS_PER_PAGE = 50
    DEMO_DATE = "2015-12-15"

    # Files and the search index: by default in the instance folder (instance/uploads, instance/search).
    # With several app servers, point UPLOAD_DIR at shared storage (NFS) mounted on every server, and
    # SEARCH_INDEX_DIR at storage that the one indexer writes and every server reads (docs/DEPLOYMENT.md).
    UPLOAD_DIR: str | None = None
    DOCUMENT_MAX_MB = 30
    INQUIRY_REPLY_DAYS = 14
    SEARCH_INDEX_DIR: str | None = None
    SEARCH_INDEX_AFTER_COMMIT = True  # embedded default: index in-process after each commit
    SEARCH_LOCK_TIMEOUT = 1
    # "whoosh" (embedded index in the instance folder) or "postgresql" (a table in the database; several servers).
    SEARCH_BACKEND = "whoosh"
    SMTP_HOST: str | None = None  # e-mail notices to subscribers only when set
    SMTP_PORT = 25
    SMTP_STARTTLS = False
    SMTP_USER: str | None = None
    SMTP_PASSWORD: str | None = None
    MAIL_FROM = "noreply@pmo.example.jp"
    PORTAL_URL: str | None = None  # base URL written in e-mails

    # Virus scanning of uploads (FILE-08): clamd's unix socket; unset = no scanning. Fail closed:
    # while clamd does not answer, every upload is refused (docs/DECISIONS.md 6).
    CLAMD_SOCKET: str | None = None
    CLAMD_TIMEOUT = 30


def load_config(app_config: dict[str, Any], instance_path: Path, overrides: Mapping[str, Any] | None) -> None:
    """Fill ``app_config`` from defaults, the environment and ``overrides``, then check it."""
    for key in dir(DefaultConfig):
        if key.isupper():
            app_config[key] = getattr(DefaultConfig, key)
    for key, raw in os.environ.items():
        if key.startswith("PMO_") and key not in {"PMO_INSTANCE_PATH"}:
            app_config[key[4:]] = _coerce(raw, app_config.get(key[4:]))
    if overrides:
        app_config.update(overrides)
    if not app_config.get("DATABASE_URL"):
        app_config["DATABASE_URL"] = f"sqlite:///{instance_path / 'pmo.sqlite3'}"
    _check_secret(app_config, instance_path)


def upload_dir(app_config: Mapping[str, Any], instance_path: str | Path) -> Path:
    """Where uploaded files are stored: ``PMO_UPLOAD_DIR``, or ``uploads/`` in the instance folder."""
    return Path(app_config.get("UPLOAD_DIR") or Path(instance_path) / "uploads")


def search_index_dir(app_config: Mapping[str, Any], instance_path: str | Path) -> Path:
    """Where the embedded search index lives: ``PMO_SEARCH_INDEX_DIR``, or ``search/`` in the instance folder."""
    return Path(app_config.get("SEARCH_INDEX_DIR") or Path(instance_path) / "search")


def _coerce(raw: str, default: Any) -> Any:
    if isinstance(default, bool):
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if isinstance(default, int) and not isinstance(default, bool):
        try:
            return int(raw)
        except ValueError:
            return raw
    if isinstance(default, list):
        return [part for part in raw.split(",") if part] if raw.startswith("[") is False else raw
    return raw


def _check_secret(app_config: dict[str, Any], instance_path: Path) -> None:
    fallbacks = app_config.get("SECRET_KEY_FALLBACKS")
    if isinstance(fallbacks, str):
        # Flask would treat every character as a valid key (SECURITY.md CFG-04).
        raise ConfigError("SECRET_KEY_FALLBACKS must be a list, not a string")
    if app_config["ENV"] == "production":
        key = app_config.get("SECRET_KEY") or ""
        if key.lower() in WEAK_KEYS or len(key.encode()) < MIN_SECRET_KEY_BYTES:
            raise ConfigError("production needs PMO_SECRET_KEY of at least 32 bytes of random data")
        if app_config.get("DEMO"):
            raise ConfigError("demo data cannot be used in production")
        if not app_config.get("MFA_ENFORCE", True):
            raise ConfigError("production requires MFA for privileged roles: PMO_MFA_ENFORCE cannot be false")
        return
    if not app_config.get("SECRET_KEY"):
        app_config["SECRET_KEY"] = _instance_secret(instance_path)


def _instance_secret(instance_path: Path) -> str:
    """Create once and keep a random development key in the instance folder (mode 0600)."""
    instance_path.mkdir(parents=True, exist_ok=True)
    path = instance_path / "secret_key"
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key
