"""Pure rules: when a document is live and who may see it."""

from __future__ import annotations

import datetime as dt

import pytest

from pmo.accounts.models import Role
from pmo.accounts.permissions import Actor, BodyRef
from pmo.documents import rules
from pmo.documents.models import Audience, DocumentKind, DocumentStatus

NOW = dt.datetime(2015, 12, 15, 3, 0, tzinfo=dt.UTC)
TODAY = dt.date(2015, 12, 15)
CITY = Actor(1, "city", Role.BODY_STAFF, body=BodyRef(10, "012033", "01"))
PREF = Actor(2, "pref", Role.PREFECTURE_STAFF, body=BodyRef(11, "010006", "01", is_prefecture=True))
MHLW = Actor(3, "mhlw", Role.MINISTRY_OFFICER, ministry_id=3)
MIC = Actor(4, "mic", Role.MINISTRY_OFFICER, ministry_id=2)


def facts(status=DocumentStatus.PUBLISHED, audience=Audience.ALL, start=None, until=None, kind=DocumentKind.NOTICE,
          ministry_id=3, body_code=None):
    return rules.DocFacts(kind, status, audience, ministry_id, body_code, start, until)


@pytest.mark.parametrize("f,live", [
    (facts(), True),
    (facts(status=DocumentStatus.DRAFT), False),
    (facts(status=DocumentStatus.WITHDRAWN), False),
    (facts(start=NOW + dt.timedelta(minutes=1)), False),
    (facts(start=NOW), True),
    (facts(until=TODAY), True),
    (facts(until=TODAY - dt.timedelta(days=1)), False),
])
def test_is_live(f, live):
    assert rules.is_live(f, NOW, TODAY) is live


@pytest.mark.parametrize("actor,audience,sees", [
    (CITY, Audience.ALL, True), (CITY, Audience.PREFECTURES, False), (CITY, Audience.MINISTRIES, False),
    (PREF, Audience.PREFECTURES, True), (PREF, Audience.MINISTRIES, False), (MIC, Audience.MINISTRIES, True),
])
def test_audience(actor, audience, sees):
    assert rules.can_see(actor, facts(audience=audience), NOW, TODAY) is sees


def test_a_draft_is_seen_only_by_its_own_ministry():
    draft = facts(status=DocumentStatus.DRAFT)
    assert rules.can_see(MHLW, draft, NOW, TODAY)
    assert not rules.can_see(MIC, draft, NOW, TODAY)
    assert not rules.can_see(CITY, draft, NOW, TODAY)


def test_a_pending_practice_is_seen_by_its_body_and_the_ministries_only():
    pending = facts(kind=DocumentKind.PRACTICE, status=DocumentStatus.PENDING, ministry_id=None, body_code="012033")
    assert rules.can_see(CITY, pending, NOW, TODAY)
    assert rules.can_see(MIC, pending, NOW, TODAY)
    assert not rules.can_see(PREF, pending, NOW, TODAY)


def test_only_the_owning_ministry_manages_a_document():
    assert rules.can_manage(MHLW, facts())
    assert not rules.can_manage(MIC, facts())
    assert not rules.can_manage(CITY, facts())


def test_tags_are_normalised():
    assert rules.parse_tags("中間サーバー、情報連携, ＦＡＱ  中間サーバー") == "中間サーバー,情報連携,FAQ"
