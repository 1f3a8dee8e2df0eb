"""AC-02: the permission table, cell by cell, against the pure ``can()``.

MATRIX below is the source of truth, written by hand from DOMAIN.md §1: one row per permission,
one column per role, each cell the scope in which the role holds the permission. ROLE_PERMISSIONS
must equal it exactly, so a role or permission added without matrix entries fails here. Then every
actor × permission × target cell is checked against ``can()``, with the expected value worked out
below from the scope semantics alone (none of ``can``'s helpers is called).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from pmo.accounts.models import Role
from pmo.accounts.permissions import (
    GRANTABLE_ROLES,
    MINISTRY_RECORD_EDITS,
    ROLE_PERMISSIONS,
    Actor,
    BodyRef,
    Permission,
    Scope,
    can,
    visible_prefecture,
)

ROLES = ("body_staff", "body_admin", "prefecture_staff", "ministry_officer", "finance_officer", "system_admin")
# o = own body, p = the prefecture and its bodies, a = by affiliation (ministry: national; prefecture:
# prefecture-wide; other body: own), n = national, - = not held.
MATRIX_TEXT = """
permission                              staff admin pref  min   fin   sys
orgs:body:view                          o     o     p     n     a     n
accounts:user:manage                    -     o     -     -     -     n
accounts:ministry_user:manage           -     -     -     -     -     n
audit:entry:view                        -     o     -     -     -     n
accounts:token:own                      o     o     o     o     o     o
catalog:subtask:edit                    -     -     -     -     -     n
plans:plan:view                         o     o     p     n     a     n
plans:plan:edit                         o     o     o     -     -     -
plans:plan:import_national              -     -     -     n     -     -
plans:comment:add                       -     -     p     -     -     -
plans:snapshot:close                    -     -     -     n     -     -
delays:signal:view                      o     o     p     n     -     -
reports:dashboard:national              -     -     -     n     -     -
delays:case:view                        o     o     p     n     -     -
delays:case:manage                      -     -     -     n     -     -
delays:case:answer                      o     o     o     -     -     -
reports:steering:produce                -     -     -     n     -     -
documents:document:read                 n     n     n     n     n     n
documents:document:publish              -     -     -     n     -     -
documents:practice:submit               o     o     o     -     -     -
documents:practice:approve              -     -     -     n     -     -
faq:faq:read                            n     n     n     n     n     n
faq:faq:manage                          -     -     -     n     -     -
faq:inquiry:ask                         o     o     o     -     -     -
faq:inquiry:answer                      -     -     -     n     -     -
procedures:procedure:read               n     n     n     n     n     n
procedures:dataset:publish              -     -     -     n     -     -
search:index:query                      n     n     n     n     n     n
subsidy:application:view                o     o     p     n     a     -
subsidy:application:apply               o     o     o     -     -     -
subsidy:application:prefecture_check    -     -     p     -     a     -
subsidy:application:approve             -     -     -     -     a     -
subsidy:base_table:manage               -     -     -     -     n     n
subsidy:estimate:submit                 o     o     o     -     -     -
subsidy:estimate:review                 -     -     -     -     a     -
admin:settings:manage                   -     -     -     -     -     n
"""
CODES = {"o": Scope.OWN, "p": Scope.PREFECTURE, "a": Scope.AFFILIATION, "n": Scope.NATIONAL}


def parse_matrix() -> dict[Role, dict[str, str]]:
    lines = [line.split() for line in MATRIX_TEXT.strip().splitlines()[1:]]
    table: dict[Role, dict[str, str]] = {Role(r): {} for r in ROLES}
    for perm, *cells in lines:
        assert len(cells) == len(ROLES), perm
        for role, cell in zip(ROLES, cells):
            table[Role(role)][perm] = cell
    return table


MATRIX = parse_matrix()


def test_matrix_lists_every_permission_and_role_once():
    perms = [line.split()[0] for line in MATRIX_TEXT.strip().splitlines()[1:]]
    assert len(perms) == len(set(perms))
    assert set(perms) == {p.value for p in Permission}
    assert set(MATRIX) == set(Role)


def test_role_permissions_equal_the_matrix_exactly():
    expected = {
        role: {Permission(p): CODES[c] for p, c in cells.items() if c != "-"} for role, cells in MATRIX.items()
    }
    assert set(ROLE_PERMISSIONS) == set(Role)
    for role in Role:
        assert ROLE_PERMISSIONS[role] == expected[role], role


# --- actors and targets (real codes; ids are arbitrary but distinct) ---------------------------

OTARU = BodyRef(id=1, code="012033", prefecture_code="01")
HAKODATE = BodyRef(id=2, code="012025", prefecture_code="01")
HOKKAIDO = BodyRef(id=3, code="010006", prefecture_code="01", is_prefecture=True)
AOMORI_CITY = BodyRef(id=4, code="022012", prefecture_code="02")
MIC, MHLW = 11, 12  # 総務省, 厚生労働省

ACTORS = {
    "staff@小樽市": Actor(1, "a1", Role.BODY_STAFF, body=OTARU),
    "admin@小樽市": Actor(2, "a2", Role.BODY_ADMIN, body=OTARU),
    "pref@北海道": Actor(3, "a3", Role.PREFECTURE_STAFF, body=HOKKAIDO),
    "ministry@総務省": Actor(4, "a4", Role.MINISTRY_OFFICER, ministry_id=MIC),
    "finance@厚労省": Actor(5, "a5", Role.FINANCE_OFFICER, ministry_id=MHLW),
    "finance@北海道": Actor(6, "a6", Role.FINANCE_OFFICER, body=HOKKAIDO),
    "sysadmin": Actor(7, "a7", Role.SYSTEM_ADMIN),
}
TARGETS = {"own body": OTARU, "same prefecture": HAKODATE, "the prefecture": HOKKAIDO,
           "other prefecture": AOMORI_CITY, "no target": None}


@dataclass(frozen=True)
class Reach:
    """What an actor reaches with one permission, worked out from the scope code alone."""

    everywhere: bool = False
    prefecture: str | None = None  # a prefecture code
    body_id: int | None = None
    anywhere: bool = False  # holds the permission at all (for a body or nationally)


def reach(actor: Actor, code: str) -> Reach:
    if code == "-":
        return Reach()
    national_actor = actor.ministry_id is not None or actor.role is Role.SYSTEM_ADMIN
    if code == "a":
        if national_actor:
            code = "n"
        elif actor.body is None:
            return Reach()
        else:
            code = "p" if actor.body.is_prefecture else "o"
    if code == "n":
        return Reach(everywhere=True, anywhere=True)
    if actor.body is None:
        return Reach()
    if code == "o":
        return Reach(body_id=actor.body.id, anywhere=True)
    # "p": the prefecture's own staff reach every body of that prefecture
    return Reach(prefecture=actor.body.prefecture_code if actor.body.is_prefecture else None, anywhere=True)


# Permissions over one's own account: whoever holds them holds them without a body (an officer's API token).
SELF_SERVICE = {Permission.API_TOKEN_OWN}


def held_without_target(actor: Actor, permission: Permission) -> bool:
    code = MATRIX[actor.role][permission.value]
    return reach(actor, code).anywhere or (permission in SELF_SERVICE and code != "-")


def expected(actor: Actor, permission: Permission, target: BodyRef | None) -> bool:
    r = reach(actor, MATRIX[actor.role][permission.value])
    if target is None:
        return held_without_target(actor, permission)
    return r.everywhere or r.body_id == target.id or (r.prefecture is not None and r.prefecture == target.prefecture_code)


def expected_ministry(actor: Actor, permission: Permission, owner: int) -> bool:
    if not held_without_target(actor, permission):
        return False
    if permission in MINISTRY_EDITS:
        return actor.role is Role.SYSTEM_ADMIN or actor.ministry_id == owner
    return True


# Changing a ministry's records is for that ministry's officers (and system admins); reading is not limited.
MINISTRY_EDITS = {Permission.DOCUMENT_PUBLISH, Permission.FAQ_MANAGE, Permission.DATASET_PUBLISH}
CELLS_PER_CASE = len(TARGETS) + 2
CELL_COUNT = len(ACTORS) * len(Permission) * CELLS_PER_CASE


def test_ministry_record_edits_are_the_publishing_permissions():
    assert set(MINISTRY_RECORD_EDITS) == MINISTRY_EDITS


@pytest.mark.parametrize("permission", list(Permission), ids=lambda p: p.value)
@pytest.mark.parametrize("actor_name", list(ACTORS))
def test_every_cell_of_can(actor_name, permission):
    actor = ACTORS[actor_name]
    wrong = []
    for target_name, target in TARGETS.items():
        want = expected(actor, permission, target)
        if can(actor, permission, target) is not want:
            wrong.append(f"{target_name}: expected {want}")
    for owner_name, owner in (("own ministry", actor.ministry_id or MIC), ("other ministry", MHLW + 100)):
        want = expected_ministry(actor, permission, owner)
        if can(actor, permission, ministry_id=owner) is not want:
            wrong.append(f"{owner_name} record: expected {want}")
    assert not wrong, f"{actor_name} × {permission.value}: " + "; ".join(wrong)


def test_cell_count_is_reported():
    # 7 actors × 36 permissions × (5 body targets + 2 ministry records)
    assert CELL_COUNT == len(ACTORS) * len(Permission) * 7 >= 1700


def test_anonymous_can_nothing():
    assert not any(can(None, p, t) for p in Permission for t in TARGETS.values())


@pytest.mark.parametrize("actor_name", list(ACTORS))
def test_visible_prefecture_follows_the_scope(actor_name):
    actor = ACTORS[actor_name]
    for permission in Permission:
        r = reach(actor, MATRIX[actor.role][permission.value])
        if r.everywhere:
            want: object = True
        elif r.prefecture is not None:
            want = r.prefecture
        elif r.body_id is not None:
            want = None
        else:
            want = False
        assert visible_prefecture(actor, permission) == want, permission


def test_a_prefecture_scope_held_by_a_municipality_user_gives_no_other_body():
    # A prefecture_staff wrongly placed at a city (the issue screen refuses it) must not see its neighbours.
    odd = Actor(9, "odd", Role.PREFECTURE_STAFF, body=OTARU)
    assert not can(odd, Permission.BODY_VIEW, HAKODATE)
    assert not can(odd, Permission.BODY_VIEW, HOKKAIDO)


def test_grantable_roles():
    assert GRANTABLE_ROLES[Role.BODY_ADMIN] == {Role.BODY_STAFF, Role.BODY_ADMIN}
    assert GRANTABLE_ROLES[Role.SYSTEM_ADMIN] == set(Role)
    for role in (Role.BODY_STAFF, Role.PREFECTURE_STAFF, Role.MINISTRY_OFFICER, Role.FINANCE_OFFICER):
        assert not GRANTABLE_ROLES.get(role)
