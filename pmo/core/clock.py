"""The only place that reads the wall clock, so tests can freeze it."""

from __future__ import annotations

import datetime as dt

JST = dt.timezone(dt.timedelta(hours=9), "JST")
_frozen: dt.datetime | None = None


def now() -> dt.datetime:
    """Return the current time, timezone-aware UTC."""
    return _frozen if _frozen is not None else dt.datetime.now(dt.timezone.utc)


def today() -> dt.date:
    """Return today's date in Japan, where every user of the portal works."""
    return now().astimezone(JST).date()


def freeze(moment: dt.datetime | None) -> None:
    """Freeze the clock at ``moment`` (None unfreezes); for tests and demos."""
    global _frozen
    if moment is not None and moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    _frozen = moment


def advance(delta: dt.timedelta) -> None:
    """Move a frozen clock forward."""
    global _frozen
    _frozen = (_frozen or now()) + delta
