"""Pure account rules: password policy, initial passwords, throttling decisions."""

from __future__ import annotations

import datetime as dt
import secrets
import unicodedata
from dataclasses import dataclass

# A short list of passwords that appear in every breach corpus, plus Japanese office favourites.
COMMON_PASSWORDS = frozenset(
    {
        "password", "password1", "password123", "password1234", "password12345", "password123456",
        "12345678", "123456789", "1234567890", "qwertyuiop", "qwerty123", "iloveyou", "11111111",
        "00000000", "abc12345", "abcd1234", "admin123", "administrator", "letmein1", "welcome1",
        "passw0rd", "p@ssw0rd", "sunshine", "princess", "football", "baseball", "trustno1",
        "mynumber", "mynumber1", "kojinbango", "soumu123", "yakusho1", "shiyakusho", "kenchou1",
    }
)


@dataclass(frozen=True)
class PasswordPolicy:
    min_length: int = 8
    max_length: int = 128


def password_problems(password: str, policy: PasswordPolicy, context_words: list[str]) -> list[str]:
    """Return the Japanese reasons a new password is refused; empty when it is acceptable.

    No composition rule (ASVS V6.2): length, a breach list, and words of the user's own context.
    The password is compared byte-exact later: no truncation, no case folding.
    """
    problems = []
    length = len(password)
    if length < policy.min_length:
        problems.append(f"パスワードは{policy.min_length}文字以上にしてください（現在{length}文字）。")
    if length > policy.max_length:
        problems.append(f"パスワードは{policy.max_length}文字以内にしてください。")
    folded = unicodedata.normalize("NFKC", password).lower()
    if folded in COMMON_PASSWORDS or folded.rstrip("0123456789!") in COMMON_PASSWORDS and len(folded) < 16:
        problems.append("よく使われるパスワードのため使用できません。")
    for word in context_words:
        word = unicodedata.normalize("NFKC", word or "").lower().strip()
        if len(word) >= 2 and word in folded:
            problems.append("ログインID・氏名・団体名などを含むパスワードは使用できません。")
            break
    return problems


_ALPHABET = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def generate_initial_password(length: int = 16) -> str:
    """Return a random initial password without look-alike characters (0/O, 1/l/I)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


@dataclass(frozen=True)
class ThrottleState:
    user_failures: int
    ip_failures: int


def is_throttled(state: ThrottleState, max_per_user: int, max_per_ip: int) -> bool:
    """Refuse further tries once an account or a client address has failed too often in the window."""
    return state.user_failures >= max_per_user or state.ip_failures >= max_per_ip


def session_expired(
    now: dt.datetime, created: dt.datetime, last_seen: dt.datetime, idle: dt.timedelta, absolute: dt.timedelta
) -> str | None:
    """Return why a session has expired ('idle' or 'absolute'), or None if it is still good."""
    if now - created >= absolute:
        return "absolute"
    if now - last_seen >= idle:
        return "idle"
    return None
