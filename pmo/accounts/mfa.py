"""Pure pieces of the second factor (AUTH-05): who needs it, TOTP codes (RFC 6238), recovery codes,
the enrolment QR code as SVG, and the encryption of the TOTP secret at rest.

No database, no Flask, no clock: the time is passed in.
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import secrets
import unicodedata
from collections.abc import Sequence

import pyotp
import segno
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from pmo.accounts.models import Role

STEP_SECONDS = 30
DIGITS = 6
# A code of the previous or the next 30-second step is also accepted (clock drift of the phone).
VALID_WINDOW = 1
RECOVERY_CODE_COUNT = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"

# Roles that always need a second factor: national and financial reach, publishing, account
# administration (every *_ADMIN role). Body and prefecture staff follow a setting (DECISIONS.md 1).
PRIVILEGED_ROLES = frozenset({Role.MINISTRY_OFFICER, Role.FINANCE_OFFICER, Role.SYSTEM_ADMIN, Role.BODY_ADMIN})
STAFF_ROLES = frozenset({Role.BODY_STAFF, Role.PREFECTURE_STAFF})


def mfa_required(role: Role, enforce: bool, staff_too: bool) -> bool:
    """Whether an account of ``role`` must log in with a second factor under these settings."""
    if not enforce:
        return False
    return role in PRIVILEGED_ROLES or (staff_too and role in STAFF_ROLES)


def new_secret() -> str:
    """A random base32 TOTP secret of 160 bits (RFC 4226's recommended length)."""
    return pyotp.random_base32(32)


def time_step(now: dt.datetime) -> int:
    return int(now.timestamp()) // STEP_SECONDS


def normalize_code(code: str) -> str:
    """Full-width digits and spaces or hyphens typed between groups are accepted."""
    text = unicodedata.normalize("NFKC", code or "")
    return "".join(ch for ch in text if not ch.isspace() and ch != "-").lower()


def code_at(secret: str, step: int) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).generate_otp(step)


def match_step(secret: str, code: str, now: dt.datetime, last_step: int | None) -> int | None:
    """Return the time-step ``code`` belongs to (within the window, after ``last_step``), else None.

    A step at or before ``last_step`` was already used: that code is a replay and does not match.
    """
    code = normalize_code(code)
    if len(code) != DIGITS or not code.isdigit():
        return None
    current = time_step(now)
    found = None
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if hmac.compare_digest(code_at(secret, step), code) and (last_step is None or step > last_step):
            found = step if found is None else found
    return found


def provisioning_uri(secret: str, login_id: str, issuer: str) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=login_id, issuer_name=issuer
    )


def qr_svg(uri: str) -> str:
    """The enrolment QR code as inline SVG, drawn on the server (no third-party service)."""
    return segno.make(uri, error="m").svg_inline(scale=5, border=4, dark="#111", light="#fff",
                                                  title="二要素認証の登録用QRコード")


def grouped(secret: str) -> str:
    """The secret in groups of four, for typing it into an app by hand."""
    return " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))


def new_recovery_codes(count: int = RECOVERY_CODE_COUNT) -> list[str]:
    """Single-use recovery codes like ``k3m9-q7tx-2bcd`` (about 70 bits each)."""
    return [
        "-".join("".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(4)) for _ in range(3))
        for _ in range(count)
    ]


def looks_like_recovery_code(code: str) -> bool:
    text = normalize_code(code)
    return len(text) == 12 and all(ch in _RECOVERY_ALPHABET for ch in text)


def canonical_recovery_code(code: str) -> str:
    text = normalize_code(code)
    return "-".join(text[i:i + 4] for i in range(0, 12, 4))


# --- the secret at rest ---------------------------------------------------------------------------


def _fernet(key_material: str) -> Fernet:
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"pmo-mfa", info=b"totp-secret").derive(
        key_material.encode()
    )
    return Fernet(base64.urlsafe_b64encode(raw))


def secret_box(keys: Sequence[str]) -> MultiFernet:
    """Encrypt with the first key; decrypt with any (key rotation keeps old secrets readable)."""
    usable = [k for k in keys if k]
    if not usable:
        raise ValueError("no key for the MFA secrets")
    return MultiFernet([_fernet(k) for k in usable])


def encrypt_secret(secret: str, keys: Sequence[str]) -> str:
    return secret_box(keys).encrypt(secret.encode()).decode()


def decrypt_secret(token: str, keys: Sequence[str]) -> str | None:
    try:
        return secret_box(keys).decrypt(token.encode()).decode()
    except (InvalidToken, ValueError):
        return None

