"""Subsidy use cases: base tables, bases per body, registration and 配分, union transfers, applications
with their workflow, estimates and their review. Flask-free; every function takes ``(session, actor)``,
checks scope, flushes and writes an audit entry. The arithmetic is ``pmo.subsidy.rules``.
"""

from __future__ import annotations

import hashlib
import re
import threading
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, selectinload

from pmo.accounts.permissions import Actor, Permission, can
from pmo.accounts.service import body_ref
from pmo.audit import service as audit
from pmo.core import clock, my_number
from pmo.core.errors import Conflict, NotFound, PermissionDenied, Problem, ValidationFailed
from pmo.orgs.models import Body, BodyKind as OrgKind
from pmo.subsidy import rules
from pmo.subsidy.models import (
    Application,
    ApplicationEvent,
    ApplicationKind,
    ApplicationLine,
    ApplicationState,
    BaseTable,
    BaseTableRow,
    Budget,
    Estimate,
    EstimateLine,
    EstimateNote,
    NoncoveredKeyword,
    Registration,
    UnionTransfer,
)
from pmo.subsidy.rules import Category, System

PEER_SETTINGS = rules.PeerSettings()
ESTIMATE_HEADERS = ("工程", "作業項目", "作業者区分", "単価", "単位", "工数", "金額")


# --------------------------------------------------------------------------------------------
# Scope helpers


def ensure_can(session: Session, actor: Actor, permission: Permission, body: Body) -> None:
    """Raise NotFound (and audit the refusal) unless ``actor`` holds ``permission`` on ``body``."""
    if not can(actor, permission, body_ref(body)):
        audit.record(session, actor, "authz.denied", outcome="denied", target=body, target_body_code=body.code,
                     detail=str(permission))
        raise NotFound("見つかりません。閲覧権限のない団体の情報の可能性があります。")


def find_body(session: Session, code: str) -> Body:
    """Load a body by code without a scope check (the CLI acts as the operator); NotFound if unknown."""
    body = session.scalar(select(Body).where(Body.code == code))
    if body is None:
        raise NotFound(f"団体コード「{code}」の団体はありません。")
    return body


def get_body(session: Session, actor: Actor, code: str, permission: Permission = Permission.SUBSIDY_VIEW) -> Body:
    """Load a body by code within the actor's scope for ``permission``."""
    body = session.scalar(select(Body).where(Body.code == code))
    if body is None:
        raise NotFound(f"団体コード「{code}」の団体はありません。")
    ensure_can(session, actor, permission, body)
    return body


def body_kind(body: Body) -> rules.BodyKind:
    """The body kind of the base tables (特別区 count as municipality)."""
    if body.kind is OrgKind.UNION:
        return rules.BodyKind.UNION
    return rules.BodyKind(body.kind.subsidy_kind)


def check_fiscal_year(fiscal_year: int) -> int:
    if fiscal_year not in rules.FISCAL_PROJECTS:
        years = "、".join(str(y) for y in rules.FISCAL_PROJECTS)
        raise ValidationFailed([Problem("fiscal_year", f"{fiscal_year}年度の年度事業はありません（{years}のいずれか）。")])
    return fiscal_year


def _check_version(kind: str, current: int, given: int | None, mine: str = "", theirs: str = "") -> None:
    if given is not None and given != current:
        detail = f"{kind}は他のユーザーが先に更新しました（あなたが読み込んだ版: {given}、現在の版: {current}）。"
        if mine or theirs:
            detail += f" 現在の内容: {theirs} ／ あなたの送信内容: {mine}"
        raise Conflict(detail + " 画面を再読み込みしてから、もう一度操作してください。")


# --------------------------------------------------------------------------------------------
# Base tables


def decode_upload(data: bytes, filename: str) -> str:
    """Check an uploaded CSV by its content and decode it (UTF-8 with or without BOM, or cp932)."""
    from pmo.core import files

    try:
        info = files.inspect_upload(data, filename, {"csv"}, 5 * 1024 * 1024)
    except files.UploadRejected as exc:
        raise ValidationFailed([Problem("file", exc.message)]) from exc
    encoding = "utf-8-sig" if (info.encoding or "utf-8") == "utf-8" else info.encoding
    return data.decode(encoding or "utf-8-sig")


def tables_in_force(session: Session, *, with_rows: bool = True) -> dict[int, BaseTable]:
    """The base table in force per fiscal year (``with_rows=False``: the tables' own fields only)."""
    stmt = select(BaseTable).where(BaseTable.in_force.is_(True))
    rows = session.scalars(stmt.options(selectinload(BaseTable.rows)) if with_rows else stmt)
    return {t.fiscal_year: t for t in rows}


def rules_table(session: Session) -> rules.BaseTable:
    """The tables in force as one validated ``rules.BaseTable``.

    Every subsidy page needs it, and its rows never change once stored (a new upload is a new table),
    so it is built once per process per set of tables in force. The key also sums the rows, so a
    reused id (SQLite after a rolled-back upload) cannot return another table's curves.
    """
    key = tuple(tuple(row) for row in session.execute(
        select(BaseTable.id, BaseTable.fiscal_year, func.count(BaseTableRow.id), func.sum(BaseTableRow.population),
               func.sum(BaseTableRow.amount))
        .join(BaseTableRow, BaseTableRow.table_id == BaseTable.id, isouter=True)
        .where(BaseTable.in_force.is_(True)).group_by(BaseTable.id, BaseTable.fiscal_year).order_by(BaseTable.id)
    ))
    cached = _RULES_TABLE_CACHE.get(key)
    if cached is not None:
        return cached
    curves: dict[rules.CurveKey, list[rules.Breakpoint]] = defaultdict(list)
    for table in tables_in_force(session).values():
        for row in table.rows:
            key_ = rules.CurveKey(table.fiscal_year, rules.BodyKind(row.body_kind), System(row.system))
            curves[key_].append(rules.Breakpoint(row.population, row.amount))
    built = rules.BaseTable({k: tuple(sorted(v, key=lambda p: p.population)) for k, v in curves.items()})
    with _RULES_TABLE_LOCK:
        _RULES_TABLE_CACHE[key] = built
        while len(_RULES_TABLE_CACHE) > 8:
            _RULES_TABLE_CACHE.pop(next(iter(_RULES_TABLE_CACHE)))
    return built


_RULES_TABLE_CACHE: dict[tuple[Any, ...], rules.BaseTable] = {}
_RULES_TABLE_LOCK = threading.Lock()


def table_csv(table: BaseTable) -> str:
    """The table in the exchange format of SUBSIDY.md §3 (amounts in 千円)."""
    lines = [",".join(rules.TABLE_COLUMNS)]
    for row in table.rows:
        thousand = Decimal(row.amount).scaleb(-3).normalize()
        lines.append(f"{table.fiscal_year},{row.body_kind},{row.system},{row.population},{thousand:f}")
    return "\n".join(lines) + "\n"


def _store_table(session: Session, actor: Actor | None, parsed: rules.BaseTable, source_name: str,
                 illustrative: bool) -> list[BaseTable]:
    years = sorted({key.fiscal_year for key in parsed.curves})
    current = tables_in_force(session)
    stored = []
    for year in years:
        old = current.get(year)
        if old is not None:
            old.in_force = False
        table = BaseTable(
            fiscal_year=year, in_force=True, illustrative=illustrative, source_name=source_name[:200],
            loaded_dt=clock.now(), loaded_by_id=actor.user_id if actor and actor.user_id else None,
            loaded_by_login=actor.login_id if actor else "seed", version=(old.version + 1) if old else 1,
        )
        points = [(key, p) for key, curve in parsed.curves.items() if key.fiscal_year == year for p in curve]
        points.sort(key=lambda kp: (kp[1].row or 0, list(rules.System).index(kp[0].system), kp[1].population))
        for position, (key, point) in enumerate(points, start=1):
            table.rows.append(BaseTableRow(position=position, body_kind=key.body_kind.value, system=key.system.value,
                                           population=point.population, amount=point.amount))
        session.add(table)
        stored.append(table)
        session.flush()
        audit.record(session, actor, "subsidy.base_table_loaded", target=table,
                     after={"fiscal_year": year, "rows": len(points), "source": source_name,
                            "illustrative": illustrative, "replaced": old.id if old else None})
    return stored


def load_base_table(session: Session, actor: Actor, text: str, source_name: str, *,
                    illustrative: bool = False) -> list[BaseTable]:
    """Validate a base table (CSV text) and put it in force for each fiscal year it covers.

    Raises ``rules.BaseTableError`` (every problem with its row) and stores nothing then: the
    tables in force stay.
    """
    if not can(actor, Permission.BASE_TABLE_MANAGE):
        raise PermissionDenied("基準額表を登録する権限がありません。")
    parsed = rules.parse_base_table(text)
    return _store_table(session, actor, parsed, source_name, illustrative)


def edit_base_table(session: Session, actor: Actor, fiscal_year: int, text: str, version: int) -> BaseTable:
    """Replace one fiscal year's table with the edited rows; refuse rows of other years or a stale version."""
    if not can(actor, Permission.BASE_TABLE_MANAGE):
        raise PermissionDenied("基準額表を編集する権限がありません。")
    current = tables_in_force(session).get(fiscal_year)
    _check_version("基準額表", current.version if current else 0, version)
    parsed = rules.parse_base_table(text, fiscal_years=(fiscal_year,))
    return _store_table(session, actor, parsed, f"画面で編集（{fiscal_year}年度）", illustrative=False)[0]


def seed_base_table(session: Session, seed_dir: Any) -> str:
    """Load the illustrative table and the keyword dictionary unless something is already in force."""
    text = (seed_dir / "subsidy" / "base_table_illustrative.csv").read_text(encoding="utf-8")
    parsed = rules.parse_base_table(text)
    have = tables_in_force(session)
    missing = {k: v for k, v in parsed.curves.items() if k.fiscal_year not in have}
    loaded = 0
    if missing:
        loaded = len(_store_table(session, None, rules.BaseTable(missing), "base_table_illustrative.csv（例示）", True))
    added = 0
    if session.scalar(select(func.count(NoncoveredKeyword.id))) == 0:
        words = rules.parse_keywords((seed_dir / "subsidy" / "noncovered_keywords.txt").read_text(encoding="utf-8"))
        session.add_all(NoncoveredKeyword(word=w) for w in words)
        added = len(words)
    session.flush()
    return f"基準額表 {loaded}年度分を登録、対象外キーワード {added}件を登録"


def set_budget(session: Session, actor: Actor, fiscal_year: int, category: Category, amount: int | None,
               version: int | None) -> Budget | None:
    """Set (or, with None, clear) the national budget of a fiscal-year project and category."""
    if not can(actor, Permission.BASE_TABLE_MANAGE):
        raise PermissionDenied("予算額を設定する権限がありません。")
    check_fiscal_year(fiscal_year)
    if amount is not None and (amount < 0):
        raise ValidationFailed([Problem("amount", "予算額は0円以上で入力してください。")])
    budget = session.scalar(select(Budget).where(Budget.fiscal_year == fiscal_year, Budget.category == category.value))
    _check_version("予算額", budget.version if budget else 0, version,
                   mine=f"{amount:,}円" if amount is not None else "なし",
                   theirs=f"{budget.amount:,}円" if budget else "なし")
    before = {"amount": budget.amount} if budget else None
    if amount is None:
        if budget is not None:
            session.delete(budget)
        result = None
    elif budget is None:
        result = Budget(fiscal_year=fiscal_year, category=category.value, amount=amount)
        session.add(result)
    else:
        budget.amount, budget.version = amount, budget.version + 1
        result = budget
    session.flush()
    audit.record(session, actor, "subsidy.budget_set", target_type="subsidy_budgets",
                 target_id=f"{fiscal_year}:{category.value}", before=before, after={"amount": amount})
    return result


def budgets(session: Session, fiscal_year: int) -> dict[Category, Budget]:
    rows = session.scalars(select(Budget).where(Budget.fiscal_year == fiscal_year))
    return {Category(b.category): b for b in rows}


# --------------------------------------------------------------------------------------------
# Bases of a body


@dataclass(frozen=True)
class BudgetFactor:
    category: Category
    budget: int | None
    total: int  # Σ table bases of every registered body in the category
    factor: Fraction  # 1 when the budget is not exceeded


@dataclass(frozen=True)
class SystemBase:
    system: System
    category: Category
    registered: bool
    working: rules.BaseWorking | None  # None for a union (no table base)
    table_base: int
    scaled: int  # after budget scaling
    transfers: int  # signed: a member's are negative, a union's positive
    effective: int  # scaled + transfers
    allocated: int  # 配分 (= effective when not allocated)
    allocation_set: bool


@dataclass(frozen=True)
class BodyBases:
    body: Body
    fiscal_year: int
    kind: rules.BodyKind
    population: int
    table: BaseTable | None
    systems: tuple[SystemBase, ...]
    factors: Mapping[Category, BudgetFactor]
    missing: tuple[str, ...] = ()  # messages when the table lacks a curve

    @property
    def illustrative(self) -> bool:
        return bool(self.table and self.table.illustrative)

    def category_totals(self) -> dict[Category, dict[str, int]]:
        """Per category: table base, scaled, effective and allocated totals of registered systems."""
        totals = {c: {"table_base": 0, "scaled": 0, "effective": 0, "allocated": 0} for c in Category}
        for s in self.systems:
            if s.registered:
                for key in totals[s.category]:
                    totals[s.category][key] += getattr(s, key)
        return totals

    def effective_bases(self) -> dict[System, int]:
        return {s.system: s.effective for s in self.systems if s.registered}

    def allocations(self) -> dict[System, int]:
        return {s.system: s.allocated for s in self.systems if s.registered and s.allocation_set}

    def allocated_bases(self) -> dict[System, int]:
        return {s.system: s.allocated for s in self.systems if s.registered}

    def get(self, system: System) -> SystemBase | None:
        return next((s for s in self.systems if s.system == system), None)


def registrations(session: Session, body: Body, fiscal_year: int) -> dict[System, Registration]:
    rows = session.scalars(select(Registration).where(Registration.body_id == body.id,
                                                      Registration.fiscal_year == fiscal_year))
    return {System(r.system): r for r in rows}


def transfer_adjustments(session: Session, body: Body, fiscal_year: int) -> dict[System, int]:
    """Signed base changes from union transfers: what a member handed over, what a union received."""
    out: dict[System, int] = defaultdict(int)
    rows = session.scalars(select(UnionTransfer).where(
        UnionTransfer.fiscal_year == fiscal_year,
        (UnionTransfer.member_id == body.id) | (UnionTransfer.union_id == body.id)))
    for t in rows:
        out[System(t.system)] += t.amount if t.union_id == body.id else -t.amount
    return dict(out)


_FACTOR_CACHE: dict[str, dict[Category, int]] = {}


def budget_factors(session: Session, table: rules.BaseTable, fiscal_year: int) -> dict[Category, BudgetFactor]:
    """The budget factor of each category: budget / Σ bases of every registered body when exceeded.

    Summing every body's bases takes about a second nationwide, so the sum is kept per process,
    keyed by a digest of exactly what it depends on: the curves, and every registered body's kind,
    population and system (one query, read on every call).
    """
    set_budgets = budgets(session, fiscal_year)
    out = {c: BudgetFactor(c, None, 0, Fraction(1)) for c in Category}
    if not set_budgets:
        return out
    rows = session.execute(select(Registration.body_id, Registration.system, Body.kind, Body.population)
                           .join(Body, Body.id == Registration.body_id)
                           .where(Registration.fiscal_year == fiscal_year)
                           .order_by(Registration.body_id, Registration.system)).all()
    digest = hashlib.sha256(repr((
        fiscal_year, [(r[0], r[1], r[2].value, r[3]) for r in rows],
        sorted((str(k), tuple((p.population, p.amount) for p in v)) for k, v in table.curves.items()
               if k.fiscal_year == fiscal_year))).encode()).hexdigest()
    totals = _FACTOR_CACHE.get(digest)
    if totals is None:
        bases: dict[Category, dict[tuple[int, System], int]] = {c: {} for c in Category}
        for body_id, system_name, kind, population in rows:
            if kind is OrgKind.UNION:
                continue
            system = System(system_name)
            try:
                amount = rules.base_amount(table, fiscal_year, kind.subsidy_kind, system, population or 0).amount
            except rules.SubsidyInputError:
                continue
            bases[rules.SYSTEM_CATEGORY[system]][(body_id, system)] = amount
        totals = {c: sum(bases[c].values()) for c in Category}
        if len(_FACTOR_CACHE) > 32:
            _FACTOR_CACHE.clear()
        _FACTOR_CACHE[digest] = totals
    for category, budget in set_budgets.items():
        # scale_to_budget decides the factor from the total alone (budget / sum when exceeded).
        _, factor = rules.scale_to_budget({category: totals[category]}, budget.amount)
        out[category] = BudgetFactor(category, budget.amount, totals[category], factor)
    return out


@dataclass
class Preloaded:
    """Everything ``body_bases`` reads, loaded once for many bodies (reports, benchmarks)."""

    table: rules.BaseTable
    tables: Mapping[int, BaseTable]
    factors: Mapping[Category, BudgetFactor]
    registrations: Mapping[int, dict[System, Registration]]
    adjustments: Mapping[int, dict[System, int]]


def preload(session: Session, fiscal_year: int) -> Preloaded:
    """Load the tables, budget factors, registrations and transfers of a fiscal year in a few queries."""
    table = rules_table(session)
    regs: dict[int, dict[System, Registration]] = defaultdict(dict)
    for reg in session.scalars(select(Registration).where(Registration.fiscal_year == fiscal_year)):
        regs[reg.body_id][System(reg.system)] = reg
    adjust: dict[int, dict[System, int]] = defaultdict(lambda: defaultdict(int))
    for t in session.scalars(select(UnionTransfer).where(UnionTransfer.fiscal_year == fiscal_year)):
        adjust[t.member_id][System(t.system)] -= t.amount
        adjust[t.union_id][System(t.system)] += t.amount
    return Preloaded(table, tables_in_force(session, with_rows=False), budget_factors(session, table, fiscal_year), regs, adjust)


def body_bases(session: Session, actor: Actor | None, body: Body, fiscal_year: int,
               *, table: rules.BaseTable | None = None, loaded: Preloaded | None = None) -> BodyBases:
    """Compute the base of every eligible system of ``body``: table → budget → transfers → 配分."""
    if actor is not None:
        ensure_can(session, actor, Permission.SUBSIDY_VIEW, body)
    check_fiscal_year(fiscal_year)
    kind = body_kind(body)
    if loaded is not None:
        table, tables, factors = loaded.table, loaded.tables, loaded.factors
        regs = loaded.registrations.get(body.id, {})
        adjust = dict(loaded.adjustments.get(body.id, {}))
    else:
        table = table if table is not None else rules_table(session)
        tables = tables_in_force(session, with_rows=False)
        regs = registrations(session, body, fiscal_year)
        adjust = transfer_adjustments(session, body, fiscal_year)
        factors = budget_factors(session, table, fiscal_year)
    population = body.population or 0
    systems = [s for s in System if s in rules.ELIGIBLE_SYSTEMS[kind] or s in adjust or s in regs]
    out, missing = [], []
    for system in systems:
        working = None
        table_base = scaled = 0
        if system in rules.ELIGIBLE_SYSTEMS[kind]:
            try:
                working = rules.base_amount(table, fiscal_year, kind, system, population)
                table_base = working.amount
            except rules.SubsidyInputError as exc:
                missing.extend(p.message for p in exc.problems)
            factor = factors[rules.SYSTEM_CATEGORY[system]].factor
            scaled = table_base if factor == 1 else rules.floor_to_1000(table_base * factor)
        effective = scaled + adjust.get(system, 0)
        reg = regs.get(system)
        allocation_set = reg is not None and reg.allocated is not None
        allocated = reg.allocated if allocation_set else effective  # type: ignore[union-attr]
        out.append(SystemBase(system, rules.SYSTEM_CATEGORY[system], reg is not None, working, table_base, scaled,
                              adjust.get(system, 0), effective, allocated or 0, allocation_set))
    return BodyBases(body, fiscal_year, kind, population, tables.get(fiscal_year), tuple(out), factors, tuple(missing))


def registration_token(regs: Mapping[System, Registration]) -> str:
    """A short fingerprint of a body's registrations and 配分, to detect a concurrent edit."""
    text = "|".join(f"{s}:{r.allocated}" for s, r in sorted(regs.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _registration_text(regs: Mapping[System, Registration]) -> str:
    return "、".join(f"{s}" + (f"（配分{r.allocated:,}円）" if r.allocated is not None else "")
                    for s, r in sorted(regs.items())) or "なし"


def register_systems(session: Session, actor: Actor, body: Body, fiscal_year: int, systems: Iterable[System],
                     token: str) -> dict[System, Registration]:
    """様式1: set the systems ``body`` registers for a fiscal-year project.

    Changing the set clears the 配分 of the body's categories whose systems changed.
    """
    ensure_can(session, actor, Permission.SUBSIDY_APPLY, body)
    check_fiscal_year(fiscal_year)
    regs = registrations(session, body, fiscal_year)
    wanted = set(systems)
    if registration_token(regs) != token:
        raise Conflict(f"登録システムは他のユーザーが先に更新しました。現在の登録: {_registration_text(regs)} ／ "
                       f"あなたの送信内容: {'、'.join(sorted(wanted)) or 'なし'}。画面を再読み込みしてください。")
    kind = body_kind(body)
    adjust = transfer_adjustments(session, body, fiscal_year)
    problems = [Problem(f"systems.{s}", f"「{s}」は{rules.BODY_KIND_LABELS[kind]}の補助対象システムではありません。")
                for s in sorted(wanted) if s not in rules.ELIGIBLE_SYSTEMS[kind] and adjust.get(s, 0) <= 0]
    if problems:
        raise ValidationFailed(problems)
    before = _registration_text(regs)
    changed = {rules.SYSTEM_CATEGORY[s] for s in wanted.symmetric_difference(regs)}
    for system, reg in list(regs.items()):
        if system not in wanted:
            session.delete(reg)
            del regs[system]
    for system in wanted - set(regs):
        regs[system] = Registration(body_id=body.id, fiscal_year=fiscal_year, system=system.value)
        session.add(regs[system])
    for system, reg in regs.items():
        if rules.SYSTEM_CATEGORY[system] in changed and reg.allocated is not None:
            reg.allocated = None
    session.flush()
    audit.record(session, actor, "subsidy.systems_registered", target=body, target_body_code=body.code,
                 before={"systems": before}, after={"systems": _registration_text(regs), "fiscal_year": fiscal_year})
    return regs


def set_allocations(session: Session, actor: Actor, body: Body, fiscal_year: int,
                    allocations: Mapping[System, int], token: str) -> dict[System, Registration]:
    """配分: move base between registered systems inside a category; the total may not exceed the category base."""
    ensure_can(session, actor, Permission.SUBSIDY_APPLY, body)
    regs = registrations(session, body, fiscal_year)
    if registration_token(regs) != token:
        raise Conflict(f"配分は他のユーザーが先に更新しました。現在の内容: {_registration_text(regs)}。画面を再読み込みしてください。")
    bases = body_bases(session, None, body, fiscal_year)
    rules.allocate_bases(bases.effective_bases(), allocations)  # raises SubsidyInputError with a reason
    before = _registration_text(regs)
    for system, reg in regs.items():
        reg.allocated = allocations.get(system)
        reg.version += 1
    session.flush()
    audit.record(session, actor, "subsidy.allocated", target=body, target_body_code=body.code,
                 before={"allocations": before}, after={"allocations": _registration_text(regs)})
    return regs


def unions_of(session: Session, body: Body) -> list[Body]:
    """The unions ``body`` is a member of."""
    from pmo.orgs.models import UnionMember

    return list(session.scalars(select(Body).join(UnionMember, UnionMember.union_id == Body.id)
                                .where(UnionMember.member_id == body.id).order_by(Body.code)))


def transfer_base(session: Session, actor: Actor, member: Body, union_code: str, fiscal_year: int,
                  system: System, amount: int) -> UnionTransfer:
    """§4: hand ``amount`` of ``member``'s base of ``system`` to a union it belongs to.

    The union is registered for the system if it was not. Raises ValidationFailed when the member
    is not in the union or would hand over more than it has.
    """
    ensure_can(session, actor, Permission.SUBSIDY_APPLY, member)
    check_fiscal_year(fiscal_year)
    union = next((u for u in unions_of(session, member) if u.code == union_code), None)
    if union is None:
        raise ValidationFailed([Problem("union", "移管先は、自団体が構成団体となっている一部事務組合・広域連合から選んでください。")])
    regs = registrations(session, member, fiscal_year)
    if system not in regs:
        raise ValidationFailed([Problem("system", f"「{system}」は登録（様式1）していないため移管できません。")])
    mine = body_bases(session, None, member, fiscal_year)
    theirs = body_bases(session, None, union, fiscal_year)
    rules.transfer_to_union(mine.effective_bases(), theirs.effective_bases(), {system: amount})
    allocated = mine.get(system)
    if allocated is not None and allocated.allocation_set and allocated.allocated > allocated.effective - amount:
        raise ValidationFailed([Problem("amount", f"「{system}」に配分した額（{allocated.allocated:,}円）が移管後の基準額を"
                                                   "上回ります。先に配分を見直してください。")])
    transfer = UnionTransfer(fiscal_year=fiscal_year, member_id=member.id, union_id=union.id, system=system.value,
                             amount=amount, created_dt=clock.now(), created_by_id=actor.user_id or None)
    session.add(transfer)
    if system not in registrations(session, union, fiscal_year):
        session.add(Registration(body_id=union.id, fiscal_year=fiscal_year, system=system.value))
    session.flush()
    audit.record(session, actor, "subsidy.union_transfer", target=transfer, target_body_code=member.code,
                 after={"member": member.code, "union": union.code, "system": system.value, "amount": amount,
                        "fiscal_year": fiscal_year})
    return transfer


def transfers_of(session: Session, body: Body, fiscal_year: int) -> list[UnionTransfer]:
    return list(session.scalars(select(UnionTransfer).where(
        UnionTransfer.fiscal_year == fiscal_year,
        (UnionTransfer.member_id == body.id) | (UnionTransfer.union_id == body.id)).order_by(UnionTransfer.id)))


# --------------------------------------------------------------------------------------------
# Grant from a request (CLI and API)


def grant_for_request(session: Session, actor: Actor | None, data: Any) -> dict[str, Any]:
    """Compute the grant of the request JSON of the CLI and the API, with stored transfers and budget.

    Raises ``rules.SubsidyInputError`` (field paths, Japanese) on bad input.
    """
    if not isinstance(data, Mapping):
        raise rules.SubsidyInputError([Problem("", "リクエストはオブジェクト（キーと値の組）で指定してください。")])
    code = data.get("body")
    body = session.scalar(select(Body).where(Body.code == code)) if isinstance(code, str) else None
    if body is None:
        raise rules.SubsidyInputError([Problem("body", f"団体コード「{code}」の団体はありません。")])
    if actor is not None:
        ensure_can(session, actor, Permission.SUBSIDY_VIEW, body)
    fiscal_year = data.get("fiscal_year")
    table = rules_table(session)
    adjustments: dict[System, int] = {}
    if isinstance(fiscal_year, int) and fiscal_year in rules.FISCAL_PROJECTS:
        bases = body_bases(session, None, body, fiscal_year, table=table)
        # Budget scaling and union transfers, as signed changes from the table's base.
        adjustments = {s.system: s.effective - s.table_base for s in bases.systems if s.effective != s.table_base}
    kind = body_kind(body)
    return rules.grant_from_request(data, body.population or 0, kind, table, base_adjustments=adjustments)


# --------------------------------------------------------------------------------------------
# Applications


def get_application(session: Session, actor: Actor, application_id: int) -> Application:
    """Load an application within the actor's scope (others are NotFound)."""
    app = session.get(Application, application_id)
    if app is None:
        raise NotFound("申請が見つかりません。")
    ensure_can(session, actor, Permission.SUBSIDY_VIEW, app.body)
    return app


def applications_of(session: Session, body: Body, fiscal_year: int | None = None) -> list[Application]:
    stmt = select(Application).where(Application.body_id == body.id)
    if fiscal_year is not None:
        stmt = stmt.where(Application.fiscal_year == fiscal_year)
    return list(session.scalars(stmt.order_by(Application.fiscal_year, Application.round, Application.kind)))


def _event(session: Session, actor: Actor, app: Application, action: str, before: ApplicationState,
           comment: str | None) -> None:
    app.events.append(ApplicationEvent(
        action=action, from_state=before.value, to_state=app.state.value, comment=comment or None,
        actor_id=actor.user_id or None, actor_login=actor.login_id, at_dt=clock.now()))
    session.flush()
    audit.record(session, actor, f"subsidy.application_{action}", target=app, target_body_code=app.body.code,
                 before={"state": before.value}, after={"state": app.state.value, "comment": comment})


def create_application(session: Session, actor: Actor, body: Body, fiscal_year: int) -> Application:
    """Open the next round's 交付申請, with a line per registered system (cost 0 to fill in)."""
    ensure_can(session, actor, Permission.SUBSIDY_APPLY, body)
    check_fiscal_year(fiscal_year)
    regs = registrations(session, body, fiscal_year)
    if not regs:
        raise ValidationFailed([Problem("systems", "先に補助対象システムを登録（様式1）してください。")])
    existing = [a for a in applications_of(session, body, fiscal_year) if a.kind is ApplicationKind.APPLICATION]
    if any(a.state is not ApplicationState.APPROVED for a in existing):
        raise ValidationFailed([Problem("round", "承認されていない申請があります。その申請を承認まで進めてから次の回を作成してください。")])
    app = Application(body_id=body.id, fiscal_year=fiscal_year, kind=ApplicationKind.APPLICATION,
                      round=len(existing) + 1, created_dt=clock.now())
    app.body = body
    for system in sorted(regs, key=list(System).index):
        app.lines.append(ApplicationLine(system=system.value, cost=0, other_income=0))
    session.add(app)
    session.flush()
    _event(session, actor, app, "created", ApplicationState.DRAFT, None)
    return app


def create_settlement(session: Session, actor: Actor, application: Application) -> Application:
    """Open the 実績報告 of an approved application, its lines copied as the starting actuals."""
    ensure_can(session, actor, Permission.SUBSIDY_APPLY, application.body)
    if application.kind is not ApplicationKind.APPLICATION or application.state is not ApplicationState.APPROVED:
        raise ValidationFailed([Problem("state", "実績報告は承認された交付申請についてのみ作成できます。")])
    exists = session.scalar(select(Application).where(Application.settles_id == application.id))
    if exists is not None:
        raise ValidationFailed([Problem("state", "この申請の実績報告はすでにあります。")])
    report = Application(body_id=application.body_id, fiscal_year=application.fiscal_year,
                         kind=ApplicationKind.SETTLEMENT, round=application.round, settles_id=application.id,
                         created_dt=clock.now())
    report.body = application.body
    for line in application.lines:
        report.lines.append(ApplicationLine(system=line.system, cost=line.cost, other_income=line.other_income))
    session.add(report)
    session.flush()
    _event(session, actor, report, "created", ApplicationState.DRAFT, None)
    return report


@dataclass(frozen=True)
class LineInput:
    system: System
    cost: int
    other_income: int
    estimate_id: int | None = None


def update_lines(session: Session, actor: Actor, app: Application, lines: Sequence[LineInput],
                 version: int) -> Application:
    """Replace the cost and other income of each system; only while 作成中 or 差戻し.

    A line with an estimate takes the estimate's eligible cost (補助対象外 and wrong-project lines removed).
    """
    ensure_can(session, actor, Permission.SUBSIDY_APPLY, app.body)
    _check_version("申請", app.version, version)
    if not app.state.editable:
        raise ValidationFailed([Problem("state", f"{app.state.label}の申請は編集できません。")])
    problems: list[Problem] = []
    by_system = {System(line.system): line for line in app.lines}
    resolved = []
    for item in lines:
        if item.system not in by_system:
            problems.append(Problem(f"costs.{item.system}", f"「{item.system}」は登録されたシステムではありません。"))
            continue
        for name, value in (("cost", item.cost), ("other_income", item.other_income)):
            if value < 0:
                problems.append(Problem(f"{name}.{item.system}", f"{item.system}の金額は0円以上で入力してください。"))
        cost = item.cost
        if item.estimate_id is not None:
            estimate = session.get(Estimate, item.estimate_id)
            if (estimate is None or estimate.body_id != app.body_id or estimate.system != item.system.value
                    or estimate.fiscal_year != app.fiscal_year):
                problems.append(Problem(f"estimate.{item.system}", f"{item.system}の見積は、同じ団体・システム・年度事業のものを選んでください。"))
                continue
            cost = review_estimate(session, None, estimate).eligible_amount
        resolved.append((item, cost))
    if problems:
        raise ValidationFailed(problems)
    before = {line.system: [line.cost, line.other_income] for line in app.lines}
    for item, cost in resolved:
        line = by_system[item.system]
        line.cost, line.other_income, line.estimate_id = cost, item.other_income, item.estimate_id
    app.version += 1
    session.flush()
    audit.record(session, actor, "subsidy.application_lines", target=app, target_body_code=app.body.code,
                 before=before, after={line.system: [line.cost, line.other_income] for line in app.lines})
    return app


@dataclass(frozen=True)
class ApplicationGrant:
    result: rules.GrantResult
    bases: BodyBases
    settlement: dict[Category, rules.Settlement] = field(default_factory=dict)

    def granted(self, category: Category) -> int:
        if self.settlement:
            return self.settlement[category].settled
        return self.result.categories[category].grant


def _earlier_grants(session: Session, app: Application) -> dict[Category, int]:
    if app.round <= 1:
        return {c: 0 for c in Category}
    rows = session.scalars(select(Application).where(
        Application.body_id == app.body_id, Application.fiscal_year == app.fiscal_year,
        Application.kind == ApplicationKind.APPLICATION, Application.state == ApplicationState.APPROVED,
        Application.round < app.round))
    out = {c: 0 for c in Category}
    for row in rows:
        out[Category.GENERAL] += row.granted_general or 0
        out[Category.PENSION_AND_CHILD_ALLOWANCE] += row.granted_pension or 0
    return out


def application_grant(session: Session, app: Application, *, loaded: Preloaded | None = None,
                      bases: BodyBases | None = None) -> ApplicationGrant:
    """Compute §5 for an application (or the recomputed grant and settlement of a 実績報告)."""
    bases = bases if bases is not None else body_bases(session, None, app.body, app.fiscal_year, loaded=loaded)
    allocated = bases.allocated_bases()
    lines = [line for line in app.lines if System(line.system) in allocated]
    costs = {System(line.system): line.cost for line in lines}
    income = {System(line.system): line.other_income for line in lines}
    used = {s: allocated[s] for s in costs}
    result = rules.compute_grant(used, costs, income, _earlier_grants(session, app))
    settlement: dict[Category, rules.Settlement] = {}
    if app.kind is ApplicationKind.SETTLEMENT and app.settles is not None:
        granted = {Category.GENERAL: app.settles.granted_general or 0,
                   Category.PENSION_AND_CHILD_ALLOWANCE: app.settles.granted_pension or 0}
        settlement = {c: rules.settle_grant(granted[c], result.categories[c].grant) for c in Category}
    return ApplicationGrant(result, bases, settlement)


ACTION_NAMES = {"submitted": "提出", "prefecture_checked": "都道府県確認", "approved": "承認", "returned": "差戻し"}


def _transition(session: Session, actor: Actor, app: Application, version: int, action: str,
                allowed_from: Sequence[ApplicationState], to: ApplicationState, comment: str | None) -> Application:
    _check_version("申請", app.version, version,
                   mine=f"操作「{ACTION_NAMES.get(action, action)}」", theirs=f"状態「{app.state.label}」")
    if app.state not in allowed_from:
        raise Conflict(f"この申請は現在「{app.state.label}」のため、この操作はできません。画面を再読み込みしてください。")
    if my_number.contains_my_number(comment):
        raise ValidationFailed([Problem("comment", f"コメントに{my_number.MESSAGE}")])
    before = app.state
    app.state = to
    app.version += 1
    _event(session, actor, app, action, before, comment)
    return app


def submit_application(session: Session, actor: Actor, app: Application, version: int,
                       comment: str | None = None) -> Application:
    """作成中/差戻し → 提出, by the body itself."""
    ensure_can(session, actor, Permission.SUBSIDY_APPLY, app.body)
    if app.state.editable and not any(line.cost > 0 for line in app.lines):
        raise ValidationFailed([Problem("costs", "補助対象経費を1件以上入力してから提出してください。")])
    _transition(session, actor, app, version, "submitted", (ApplicationState.DRAFT, ApplicationState.RETURNED),
                ApplicationState.SUBMITTED, comment)
    app.submitted_by_id, app.submitted_dt = actor.user_id or None, clock.now()
    session.flush()
    return app


def needs_prefecture_check(app: Application) -> bool:
    return app.body.kind.is_municipality


def prefecture_check(session: Session, actor: Actor, app: Application, version: int,
                     comment: str | None = None) -> Application:
    """提出 → 都道府県確認, by the prefecture of a municipality (委任)."""
    ensure_can(session, actor, Permission.SUBSIDY_PREFECTURE_CHECK, app.body)
    if not needs_prefecture_check(app):
        raise ValidationFailed([Problem("state", "都道府県確認は市区町村の申請についてのみ行います。")])
    _ensure_not_submitter(actor, app)
    return _transition(session, actor, app, version, "prefecture_checked", (ApplicationState.SUBMITTED,),
                       ApplicationState.PREFECTURE_CHECKED, comment)


def _ensure_not_submitter(actor: Actor, app: Application) -> None:
    if app.submitted_by_id is not None and app.submitted_by_id == actor.user_id:
        raise PermissionDenied("自分が提出した申請を確認・承認することはできません。")


def approve_application(session: Session, actor: Actor, app: Application, version: int,
                        comment: str | None = None) -> Application:
    """→ 承認, by a finance officer who did not submit it; fixes the granted (or settled) amount."""
    ensure_can(session, actor, Permission.SUBSIDY_APPROVE, app.body)
    _ensure_not_submitter(actor, app)
    ready = ApplicationState.PREFECTURE_CHECKED if needs_prefecture_check(app) else ApplicationState.SUBMITTED
    grant = application_grant(session, app)
    _transition(session, actor, app, version, "approved", (ready,), ApplicationState.APPROVED, comment)
    app.granted_general = grant.granted(Category.GENERAL)
    app.granted_pension = grant.granted(Category.PENSION_AND_CHILD_ALLOWANCE)
    app.approved_by_id, app.approved_dt = actor.user_id or None, clock.now()
    session.flush()
    return app


def return_application(session: Session, actor: Actor, app: Application, version: int, comment: str) -> Application:
    """差戻し with a reason: by the prefecture (from 提出) or the approver (from 提出/都道府県確認)."""
    if not (comment or "").strip():
        raise ValidationFailed([Problem("comment", "差戻しの理由を入力してください。")])
    body = body_ref(app.body)
    approver = can(actor, Permission.SUBSIDY_APPROVE, body)
    checker = can(actor, Permission.SUBSIDY_PREFECTURE_CHECK, body) and needs_prefecture_check(app)
    if not (approver or checker):
        ensure_can(session, actor, Permission.SUBSIDY_APPROVE, app.body)
    _ensure_not_submitter(actor, app)
    allowed = [ApplicationState.SUBMITTED]
    if approver:
        allowed.append(ApplicationState.PREFECTURE_CHECKED)
    return _transition(session, actor, app, version, "returned", allowed, ApplicationState.RETURNED, comment.strip())


def available_actions(actor: Actor, app: Application) -> list[str]:
    """The workflow buttons this actor may press on this application now."""
    body = body_ref(app.body)
    out = []
    mine = app.submitted_by_id is not None and app.submitted_by_id == actor.user_id
    if app.state.editable and can(actor, Permission.SUBSIDY_APPLY, body):
        out.append("submit")
    if (app.state is ApplicationState.SUBMITTED and needs_prefecture_check(app) and not mine
            and can(actor, Permission.SUBSIDY_PREFECTURE_CHECK, body)):
        out += ["check", "return"]
    ready = ApplicationState.PREFECTURE_CHECKED if needs_prefecture_check(app) else ApplicationState.SUBMITTED
    if app.state is ready and not mine and can(actor, Permission.SUBSIDY_APPROVE, body):
        out += ["approve"] + ([] if "return" in out else ["return"])
    return out


def pending_applications(session: Session, actor: Actor) -> list[Application]:
    """Applications waiting for this actor: 提出 for a prefecture, ready-to-approve for finance."""
    from pmo.orgs.service import scope_filter

    stmt = select(Application).join(Body, Body.id == Application.body_id).where(
        Application.state.in_([ApplicationState.SUBMITTED, ApplicationState.PREFECTURE_CHECKED]))
    permission = Permission.SUBSIDY_APPROVE if can(actor, Permission.SUBSIDY_APPROVE) else Permission.SUBSIDY_PREFECTURE_CHECK
    stmt = scope_filter(stmt, actor, permission)
    return [a for a in session.scalars(stmt.order_by(Application.submitted_dt)) if available_actions(actor, a)]


def visible_applications(session: Session, actor: Actor, fiscal_year: int | None = None) -> list[Application]:
    from pmo.orgs.service import scope_filter

    stmt = scope_filter(select(Application).join(Body, Body.id == Application.body_id), actor, Permission.SUBSIDY_VIEW)
    if fiscal_year is not None:
        stmt = stmt.where(Application.fiscal_year == fiscal_year)
    return list(session.scalars(stmt.order_by(Body.code, Application.fiscal_year, Application.round)))


# --------------------------------------------------------------------------------------------
# Estimates


@dataclass(frozen=True)
class EstimateLineInput:
    phase: str
    work_item: str
    worker_class: str
    unit_price: int | None
    unit: str | None
    effort: Decimal | None
    amount: int


_INT_RE = re.compile(r"-?[0-9]+")
_DEC_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def _clean(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        value = Decimal(str(value)).normalize()  # xlsx numbers arrive as floats: read them as their decimal text
        value = f"{value:f}"
    return unicodedata.normalize("NFKC", str(value)).replace(",", "").replace("円", "").strip()


def parse_estimate_rows(rows: Iterable[tuple[int, Mapping[str, Any]]], *, where: str = "") -> list[EstimateLineInput]:
    """Turn table rows (row number, cells by header) into estimate lines; refuse all on any problem.

    Raises ValidationFailed listing every problem as ``<where> N行目 列: 理由``.
    """
    problems: list[Problem] = []
    lines: list[EstimateLineInput] = []

    def bad(row: int, column: str, message: str) -> None:
        problems.append(Problem(f"{where}{row}行目 {column}", message))

    for number, cells in rows:
        values = {h: _clean(cells.get(h)) for h in ESTIMATE_HEADERS}
        if not any(values.values()):
            continue
        before = len(problems)
        for column in ("工程", "作業項目", "作業者区分"):
            if my_number.contains_my_number(values[column]):
                bad(number, column, f"{column}に{my_number.MESSAGE}")
            elif not values[column]:
                bad(number, column, f"{column}を入力してください。")
            elif len(values[column]) > (200 if column == "作業項目" else 40):
                bad(number, column, f"{column}が長すぎます。")
        price = unit = effort = None
        if values["単価"]:
            if _INT_RE.fullmatch(values["単価"]) and int(values["単価"]) >= 0:
                price = int(values["単価"])
            else:
                bad(number, "単価", f"単価「{my_number.mask(values['単価'])}」は0以上の円単位の整数で入力してください。")
        if values["単位"]:
            if values["単位"] in ("人月", "人日"):
                unit = values["単位"]
            else:
                bad(number, "単位", f"単位「{my_number.mask(values['単位'])}」は「人月」か「人日」で入力してください。")
        if values["工数"]:
            if _DEC_RE.fullmatch(values["工数"]):
                try:
                    effort = Decimal(values["工数"])
                except InvalidOperation:
                    bad(number, "工数", "工数を数値として読めません。")
                if effort is not None and effort.as_tuple().exponent < -3:  # type: ignore[operator]
                    bad(number, "工数", "工数は小数3桁までで入力してください。")
            else:
                bad(number, "工数", f"工数「{my_number.mask(values['工数'])}」は0以上の数値（例: 1.5）で入力してください。")
        if (price is not None or effort is not None) and unit is None and not values["単位"]:
            bad(number, "単位", "単価・工数を入れた行は単位（人月・人日）も入力してください。")
        amount = 0
        if not values["金額"]:
            bad(number, "金額", "金額を入力してください。")
        elif _INT_RE.fullmatch(values["金額"]):
            amount = int(values["金額"])
        else:
            bad(number, "金額", f"金額「{my_number.mask(values['金額'])}」は円単位の整数で入力してください（値引きは負の数）。")
        if len(problems) == before:
            lines.append(EstimateLineInput(values["工程"], values["作業項目"], values["作業者区分"], price, unit,
                                           effort, amount))
    if not lines and not problems:
        problems.append(Problem(f"{where}明細", "明細行がありません。"))
    if len(lines) > 500:
        problems.append(Problem(f"{where}明細", "明細は500行までです。"))
    if problems:
        raise ValidationFailed(problems)
    return lines


@dataclass(frozen=True)
class EstimateInput:
    system: System
    fiscal_year: int
    vendor: str
    stated_total: int | None
    lines: Sequence[EstimateLineInput]
    source_name: str | None = None


def _apply_lines(estimate: Estimate, lines: Sequence[EstimateLineInput]) -> None:
    estimate.lines.clear()
    for number, line in enumerate(lines, start=1):
        estimate.lines.append(EstimateLine(line_no=number, phase=line.phase, work_item=line.work_item,
                                           worker_class=line.worker_class, unit_price=line.unit_price,
                                           unit=line.unit, effort=line.effort, amount=line.amount))


def create_estimate(session: Session, actor: Actor, body: Body, data: EstimateInput, *, demo: bool = False) -> Estimate:
    """Store a vendor estimate of ``body`` (its lines already parsed)."""
    ensure_can(session, actor, Permission.ESTIMATE_SUBMIT, body)
    check_fiscal_year(data.fiscal_year)
    problems = []
    if not data.vendor.strip():
        problems.append(Problem("vendor", "事業者名を入力してください。"))
    elif my_number.contains_my_number(data.vendor):
        problems.append(Problem("vendor", f"事業者名に{my_number.MESSAGE}"))
    if data.system not in rules.ELIGIBLE_SYSTEMS[body_kind(body)] and data.system not in registrations(session, body, data.fiscal_year):
        problems.append(Problem("system", f"「{data.system}」はこの団体の補助対象システムではありません。"))
    if data.stated_total is not None and data.stated_total < 0:
        problems.append(Problem("stated_total", "見積合計は0円以上で入力してください。"))
    if problems:
        raise ValidationFailed(problems)
    estimate = Estimate(body_id=body.id, system=data.system.value, fiscal_year=data.fiscal_year,
                        vendor=data.vendor.strip()[:100], stated_total=data.stated_total, source_name=data.source_name,
                        is_demo=demo, created_dt=clock.now(), created_by_id=actor.user_id or None)
    estimate.body = body
    _apply_lines(estimate, data.lines)
    session.add(estimate)
    session.flush()
    audit.record(session, actor, "subsidy.estimate_created", target=estimate, target_body_code=body.code,
                 after={"vendor": estimate.vendor, "system": estimate.system, "fiscal_year": estimate.fiscal_year,
                        "lines": len(data.lines), "total": estimate.total})
    return estimate


def replace_estimate_lines(session: Session, actor: Actor, estimate: Estimate, lines: Sequence[EstimateLineInput],
                           stated_total: int | None, version: int) -> Estimate:
    """Replace the lines of an estimate entered on screen; refuse a stale version."""
    ensure_can(session, actor, Permission.ESTIMATE_SUBMIT, estimate.body)
    _check_version("見積", estimate.version, version, mine=f"{len(lines)}行",
                   theirs=f"{len(estimate.lines)}行・合計{estimate.total:,}円")
    before = {"lines": len(estimate.lines), "total": estimate.total}
    _apply_lines(estimate, lines)
    estimate.stated_total = stated_total
    estimate.version += 1
    session.flush()
    audit.record(session, actor, "subsidy.estimate_lines", target=estimate, target_body_code=estimate.body.code,
                 before=before, after={"lines": len(estimate.lines), "total": estimate.total})
    return estimate


def get_estimate(session: Session, actor: Actor, estimate_id: int) -> Estimate:
    estimate = session.get(Estimate, estimate_id)
    if estimate is None:
        raise NotFound("見積が見つかりません。")
    ensure_can(session, actor, Permission.SUBSIDY_VIEW, estimate.body)
    return estimate


def estimates_of(session: Session, body: Body, fiscal_year: int | None = None) -> list[Estimate]:
    stmt = select(Estimate).where(Estimate.body_id == body.id)
    if fiscal_year is not None:
        stmt = stmt.where(Estimate.fiscal_year == fiscal_year)
    return list(session.scalars(stmt.order_by(Estimate.fiscal_year, Estimate.system, Estimate.vendor)))


def keywords(session: Session) -> list[str]:
    return list(session.scalars(select(NoncoveredKeyword.word).order_by(NoncoveredKeyword.id)))


def keywords_token(words: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(words).encode()).hexdigest()[:16]


def save_keywords(session: Session, actor: Actor, text: str, token: str) -> list[str]:
    """Replace the 補助対象外 keyword dictionary (one word per line); refuse a stale edit."""
    if not can(actor, Permission.BASE_TABLE_MANAGE):
        raise PermissionDenied("対象外キーワードを編集する権限がありません。")
    current = keywords(session)
    words = list(rules.parse_keywords(text))
    if my_number.contains_my_number(text):  # checked first: the conflict message below quotes the words
        raise ValidationFailed([Problem("keywords", f"対象外キーワードに{my_number.MESSAGE}")])
    if keywords_token(current) != token:
        raise Conflict(f"キーワードは他のユーザーが先に更新しました。現在: {'、'.join(current)} ／ あなたの送信内容: {'、'.join(words)}")
    problems = [Problem("keywords", f"「{w}」は長すぎます（100文字まで）。") for w in words if len(w) > 100]
    if not words:
        problems.append(Problem("keywords", "キーワードを1つ以上入力してください。"))
    if problems:
        raise ValidationFailed(problems)
    session.execute(delete(NoncoveredKeyword))
    session.add_all(NoncoveredKeyword(word=w) for w in words)
    session.flush()
    audit.record(session, actor, "subsidy.keywords_saved", target_type="subsidy_noncovered_keywords",
                 before={"words": current}, after={"words": words})
    return words


def to_rule_line(line: EstimateLine) -> rules.EstimateLine:
    return rules.EstimateLine(line.phase, line.work_item, line.worker_class, line.unit_price,
                              Decimal(line.effort) if line.effort is not None else None, line.amount,
                              line.unit)  # type: ignore[arg-type]


def monthly_price(line: EstimateLine) -> Fraction | None:
    """単価 in 円/人月 (人日 × days per month), for comparing rates."""
    if line.unit_price is None or line.unit is None:
        return None
    return Fraction(line.unit_price) * (PEER_SETTINGS.days_per_month if line.unit == "人日" else 1)


def effort_months(estimate: Estimate) -> Fraction:
    total = Fraction(0)
    for line in estimate.lines:
        if line.effort is not None and line.unit is not None:
            effort = Fraction(Decimal(line.effort))
            total += effort / PEER_SETTINGS.days_per_month if line.unit == "人日" else effort
    return total


def peer_estimates(session: Session, estimate: Estimate) -> list[Estimate]:
    """Estimates of other bodies in the same 人口規模 class, for the same system and fiscal-year project."""
    cls = rules.population_class(estimate.body.population or 0)
    upper = cls.upper if cls.upper is not None else 10**12
    stmt = (select(Estimate).join(Body, Body.id == Estimate.body_id)
            .where(Estimate.system == estimate.system, Estimate.fiscal_year == estimate.fiscal_year,
                   Estimate.body_id != estimate.body_id, Body.population >= cls.lower, Body.population < upper)
            .options(selectinload(Estimate.lines), selectinload(Estimate.body)))
    return list(session.scalars(stmt.order_by(Estimate.id)))


def peer_unit_prices(session: Session, estimate: Estimate) -> dict[str, list[Fraction]]:
    """Other estimates' 単価 (円/人月) by 作業者区分, any body, same fiscal-year project."""
    out: dict[str, list[Fraction]] = defaultdict(list)
    rows = session.scalars(select(EstimateLine).join(Estimate).where(
        Estimate.id != estimate.id, Estimate.fiscal_year == estimate.fiscal_year))
    for line in rows:
        price = monthly_price(line)
        if price is not None:
            out[line.worker_class].append(price)
    return dict(out)


@dataclass(frozen=True)
class EstimateReview:
    estimate: Estimate
    flags: tuple[rules.EstimateFlag, ...]
    peers: tuple[Estimate, ...]
    population_class: rules.PopulationClass

    def line_flags(self, line_no: int) -> list[rules.EstimateFlag]:
        return [f for f in self.flags if f.line == line_no]

    @property
    def estimate_flags(self) -> list[rules.EstimateFlag]:
        return [f for f in self.flags if f.line is None]

    @property
    def excluded_lines(self) -> set[int]:
        """Lines that cannot count: 補助対象外 work or work of another fiscal-year project."""
        return {f.line for f in self.flags if f.line is not None
                and f.code in (rules.FlagCode.NONCOVERED, rules.FlagCode.WRONG_PHASE)}

    @property
    def eligible_amount(self) -> int:
        """The estimate's total without excluded lines (never below 0): what flows into an application."""
        excluded = self.excluded_lines
        return max(0, sum(line.amount for line in self.estimate.lines if line.line_no not in excluded))


def may_read_review(actor: Actor | None, body: Body) -> bool:
    """Reviewers' notes and the names behind the peer comparison (which body, which vendor) are
    finance-internal: the body and its prefecture see the flags and the anonymous spread of peers,
    not the review (SECURITY.md AC-06)."""
    return can(actor, Permission.ESTIMATE_REVIEW, body_ref(body))


def estimate_notes(actor: Actor, estimate: Estimate) -> list[EstimateNote]:
    """Return the reviewers' notes on an estimate that the actor may read."""
    return list(estimate.notes) if may_read_review(actor, estimate.body) else []


def review_estimate(session: Session, actor: Actor | None, estimate: Estimate) -> EstimateReview:
    """Run the §6 checks on an estimate against the keyword dictionary and its peers."""
    if actor is not None:
        ensure_can(session, actor, Permission.SUBSIDY_VIEW, estimate.body)
    peers = peer_estimates(session, estimate)
    flags = rules.check_estimate(
        [to_rule_line(line) for line in estimate.lines], fiscal_year=estimate.fiscal_year,
        stated_total=estimate.stated_total, noncovered_keywords=keywords(session),
        peer_unit_prices=peer_unit_prices(session, estimate),
        peer_efforts=[effort_months(p) for p in peers if p.lines], peer_costs=[p.total for p in peers if p.lines],
        settings=PEER_SETTINGS,
    )
    return EstimateReview(estimate, tuple(flags), tuple(peers), rules.population_class(estimate.body.population or 0))


def add_estimate_note(session: Session, actor: Actor, estimate: Estimate, text: str, line_no: int | None) -> EstimateNote:
    """Add a reviewer's note to an estimate (or one of its lines)."""
    ensure_can(session, actor, Permission.ESTIMATE_REVIEW, estimate.body)
    text = (text or "").strip()
    problems = []
    if not text:
        problems.append(Problem("text", "所見を入力してください。"))
    if len(text) > 2000:
        problems.append(Problem("text", "所見は2,000文字までです。"))
    if my_number.contains_my_number(text):
        problems.append(Problem("text", f"所見に{my_number.MESSAGE}"))
    if line_no is not None and not any(line.line_no == line_no for line in estimate.lines):
        problems.append(Problem("line_no", f"{line_no}行目の明細はありません。"))
    if problems:
        raise ValidationFailed(problems)
    note = EstimateNote(estimate_id=estimate.id, line_no=line_no, text=text, author_id=actor.user_id or None,
                        author_login=actor.login_id, at_dt=clock.now())
    estimate.notes.append(note)
    session.flush()
    audit.record(session, actor, "subsidy.estimate_note", target=estimate, target_body_code=estimate.body.code,
                 after={"line_no": line_no, "text": text})
    return note
