"""Helpers shared by forms: NFKC input, safe redirects, putting domain problems on fields."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote, urlsplit

from flask_wtf import FlaskForm

from pmo.core.errors import ValidationFailed

_UNSAFE = re.compile(r"[\x00-\x20\x7f\\]")


def safe_next(target: str | None, default: str) -> str:
    """Return ``target`` if it is a path on this portal, else ``default`` (INP-01).

    Anything with a scheme, a host, a backslash, whitespace or a control character is refused,
    because browsers repair those into off-site addresses (``/\\evil.com``, ``/\\t/evil.com``).
    """
    if not target or not target.startswith("/") or target.startswith("//") or _UNSAFE.search(target):
        return default
    decoded = unquote(target)  # a proxy or framework that decodes %2F must not find "//" either
    if decoded.startswith("//") or _UNSAFE.search(decoded):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def nfkc(value: str | None) -> str | None:
    return unicodedata.normalize("NFKC", value).strip() if isinstance(value, str) else value


def add_problems(form: FlaskForm, exc: ValidationFailed) -> None:
    """Show each domain problem beside its field (or at the top when no field matches)."""
    for field_name, messages in exc.by_field().items():
        field = getattr(form, field_name, None)
        if field is not None and hasattr(field, "errors"):
            field.errors = list(field.errors) + messages
        else:
            form.form_errors.extend(messages)
