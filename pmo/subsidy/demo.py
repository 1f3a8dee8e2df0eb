"""Demo subsidy data around 小樽市 (012033): registrations, a draft application, and vendor estimates of
小樽市 and of peers in the same 人口規模 class, so the peer charts have something to compare.

Every vendor name carries "（デモ）": these estimates are invented for the demonstration.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from pmo.accounts.models import Role
from pmo.accounts.permissions import Actor
from pmo.accounts.service import actor_for
from pmo.orgs.models import Body
from pmo.seeding import DemoContext
from pmo.subsidy import service
from pmo.subsidy.models import Estimate
from pmo.subsidy.rules import System

DEMO_BODY = "012033"  # 小樽市, 10万〜30万人
# Peers of the same class (北海道): 函館市, 釧路市, 帯広市, 苫小牧市, 江別市, 北見市
PEERS = ["012025", "012068", "012076", "012131", "012173", "012084"]
YEAR = 2014
SYSTEM = System.NATIONAL_HEALTH_INSURANCE


def _line(phase: str, item: str, worker: str, price: int | None, unit: str | None, effort: str | None,
          amount: int | None = None) -> service.EstimateLineInput:
    eff = Decimal(effort) if effort is not None else None
    if amount is None:
        amount = int(price * eff) if price is not None and eff is not None else 0
    return service.EstimateLineInput(phase, item, worker, price, unit, eff, amount)


def _peer_lines(scale: str, se_price: int, pg_price: int) -> list[service.EstimateLineInput]:
    k = Decimal(scale)
    return [
        _line("設計", "個人番号の項目追加に係る基本設計", "SE", se_price, "人月", str(Decimal("2.0") * k)),
        _line("設計", "画面・帳票の詳細設計", "SE", se_price, "人月", str(Decimal("1.5") * k)),
        _line("開発", "個人番号検索機能の開発", "PG", pg_price, "人月", str(Decimal("3.0") * k)),
        _line("開発", "中間サーバーへの副本データ抽出", "PG", pg_price, "人月", str(Decimal("2.0") * k)),
        _line("単体テスト", "単体テスト", "PG", pg_price, "人月", str(Decimal("1.5") * k)),
        _line("設計", "プロジェクト管理", "PM", 1_300_000, "人月", str(Decimal("0.5") * k)),
    ]


PEER_ESTIMATES = [
    ("012025", "（デモ）北斗システム", "1.6", 1_000_000, 800_000),
    ("012068", "（デモ）道東情報サービス", "1.1", 950_000, 750_000),
    ("012076", "（デモ）十勝データ", "0.9", 980_000, 780_000),
    ("012131", "（デモ）苫小牧電算", "1.0", 1_020_000, 820_000),
    ("012173", "（デモ）石狩ソフト", "0.8", 900_000, 700_000),
    ("012084", "（デモ）オホーツクIT", "1.0", 1_000_000, 760_000),
]


def _otaru_vendor_a() -> list[service.EstimateLineInput]:
    return [
        _line("設計", "個人番号の項目追加に係る基本設計", "SE", 1_000_000, "人月", "2.5"),
        _line("設計", "画面・帳票の詳細設計", "SE", 1_000_000, "人月", "2.0"),
        _line("開発", "個人番号検索機能の開発", "PG", 800_000, "人月", "3.0"),
        _line("開発", "中間サーバーへの副本データ抽出", "PG", 800_000, "人月", "2.5"),
        _line("単体テスト", "単体テスト", "PG", 800_000, "人月", "2.0"),
        _line("設計", "システム影響度調査", "SE", 1_000_000, "人月", "1.0"),
        _line("総合運用テスト", "総合運用テスト支援", "SE", 1_000_000, "人月", "1.0"),
    ]


def _otaru_vendor_b() -> list[service.EstimateLineInput]:
    return [
        _line("設計", "基本設計・詳細設計", "SE", 2_100_000, "人月", "4.0"),
        _line("開発", "番号制度対応改修", "PG", 1_500_000, "人月", "5.0", amount=7_800_000),
        _line("単体テスト", "単体テスト", "PG", 75_000, "人日", "30"),
        _line("開発", "システム改修費一式", "SE", None, None, None, amount=3_000_000),
    ]


def seed_demo(session: Session, ctx: DemoContext) -> None:
    """Add demo registrations, estimates and a draft application (skipped when already present)."""
    otaru = session.scalar(select(Body).where(Body.code == DEMO_BODY))
    if otaru is None or session.scalar(select(Estimate.id).where(Estimate.body_id == otaru.id).limit(1)):
        return
    staff = ctx.users.get(Role.BODY_STAFF.value)
    otaru_actor = actor_for(staff) if staff is not None else None
    for code, vendor, scale, se, pg in PEER_ESTIMATES:
        peer = session.scalar(select(Body).where(Body.code == code))
        if peer is None:
            continue
        actor = Actor(user_id=0, login_id="demo", role=Role.BODY_STAFF, body=service.body_ref(peer))
        regs = service.registrations(session, peer, YEAR)
        service.register_systems(session, actor, peer, YEAR, {SYSTEM, System.NATIONAL_PENSION} | set(regs),
                                 service.registration_token(regs))
        service.create_estimate(session, actor, peer, service.EstimateInput(
            SYSTEM, YEAR, vendor, None, _peer_lines(scale, se, pg), "デモデータ"), demo=True)
    if otaru_actor is None:
        otaru_actor = Actor(user_id=0, login_id="demo", role=Role.BODY_STAFF, body=service.body_ref(otaru))
    regs = service.registrations(session, otaru, YEAR)
    service.register_systems(session, otaru_actor, otaru, YEAR,
                             {SYSTEM, System.LONG_TERM_CARE, System.NATIONAL_PENSION, System.PUBLIC_ASSISTANCE},
                             service.registration_token(regs))
    a = service.create_estimate(session, otaru_actor, otaru, service.EstimateInput(
        SYSTEM, YEAR, "（デモ）小樽情報システム", None, _otaru_vendor_a(), "デモデータ"), demo=True)
    service.create_estimate(session, otaru_actor, otaru, service.EstimateInput(
        SYSTEM, YEAR, "（デモ）運河ソリューションズ", 24_000_000, _otaru_vendor_b(), "デモデータ"), demo=True)
    app = service.create_application(session, otaru_actor, otaru, YEAR)
    lines = [service.LineInput(System(line.system), {
        System.LONG_TERM_CARE: 6_500_000, System.NATIONAL_PENSION: 2_400_000,
        System.PUBLIC_ASSISTANCE: 4_000_000}.get(System(line.system), 0), 0,
        a.id if line.system == SYSTEM.value else None) for line in app.lines]
    service.update_lines(session, otaru_actor, app, lines, app.version)
