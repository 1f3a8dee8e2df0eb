"""Helpers shared by forms: NFKC input, safe redirects, putting domain problems on fields."""

from __future__ import annotations

import re
import unicodedata
from typing import Any
from urllib.parse import unquote, urlsplit

from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, StringField, TextAreaField

from pmo.core import my_number
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


class PortalForm(FlaskForm):
    """A FlaskForm that refuses a 個人番号 in any typed text field (OPT-01, DECISIONS.md 18).

    Every StringField/TextAreaField the user types into is checked after its own validators;
    passwords (hashed, never shown) and hidden fields (tokens, versions) are not free text.
    The number is never quoted in the message, and the form's data is never logged.
    """

    def validate(self, extra_validators: Any = None) -> bool:
        valid = super().validate(extra_validators)
        for field in self:
            if (isinstance(field, (StringField, TextAreaField)) and not isinstance(field, (PasswordField, HiddenField))
                    and my_number.contains_my_number(field.data)):
                field.errors = [*field.errors, my_number.MESSAGE]
                valid = False
        return valid


def refuse_my_numbers(values: dict[str, Any], labels: dict[str, str]) -> None:
    """For handlers that read ``request.form`` directly: raise ``ValidationFailed`` naming each
    field that holds a 個人番号 (OPT-01), before anything is stored or audited."""
    problems = my_number.problems_in(values, labels)
    if problems:
        raise ValidationFailed(problems)


def add_problems(form: FlaskForm, exc: ValidationFailed) -> None:
    """Show each domain problem beside its field (or at the top when no field matches)."""
    for field_name, messages in exc.by_field().items():
        field = getattr(form, field_name, None)
        if field is not None and hasattr(field, "errors"):
            field.errors = list(field.errors) + messages
        else:
            form.form_errors.extend(messages)
