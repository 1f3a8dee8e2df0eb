"""The one permission table and the one pure ``can()`` that holds the scope rules.

A permission is ``"<domain>:<resource>:<action>"``. Each role holds a permission with a scope:

- ``OWN``: the actor's own body only;
- ``PREFECTURE``: the actor's prefecture and every body in it (管下市区町村);
- ``AFFILIATION``: national for an actor at a ministry, prefecture-wide for an actor at a prefecture,
  own body otherwise (finance staff sit at 厚労省 or, by delegation, at a prefecture: slide 20);
- ``NATIONAL``: every body.

Ministry-owned records (documents, FAQs) add a second rule: a publisher edits only its own
ministry's records, unless it is a system admin.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from pmo.accounts.models import Role


class Permission(enum.StrEnum):
    # orgs and accounts
    BODY_VIEW = "orgs:body:view"
    ACCOUNT_MANAGE = "accounts:user:manage"
    MINISTRY_ACCOUNT_MANAGE = "accounts:ministry_user:manage"
    AUDIT_VIEW = "audit:entry:view"
    API_TOKEN_OWN = "accounts:token:own"
    # catalog, plans
    CATALOG_EDIT = "catalog:subtask:edit"
    PLAN_VIEW = "plans:plan:view"
    PLAN_EDIT = "plans:plan:edit"
    PLAN_IMPORT_NATIONAL = "plans:plan:import_national"
    PLAN_COMMENT = "plans:comment:add"
    MONTHLY_CLOSE = "plans:snapshot:close"
    # delays, cases, reports
    DELAY_VIEW = "delays:signal:view"
    DASHBOARD_NATIONAL = "reports:dashboard:national"
    CASE_VIEW = "delays:case:view"
    CASE_MANAGE = "delays:case:manage"
    CASE_ANSWER = "delays:case:answer"
    REPORT_STEERING = "reports:steering:produce"
    # information
    DOCUMENT_READ = "documents:document:read"
    DOCUMENT_PUBLISH = "documents:document:publish"
    PRACTICE_SUBMIT = "documents:practice:submit"
    PRACTICE_APPROVE = "documents:practice:approve"
    FAQ_READ = "faq:faq:read"
    FAQ_MANAGE = "faq:faq:manage"
    INQUIRY_ASK = "faq:inquiry:ask"
    INQUIRY_ANSWER = "faq:inquiry:answer"
    PROCEDURE_READ = "procedures:procedure:read"
    DATASET_PUBLISH = "procedures:dataset:publish"
    SEARCH = "search:index:query"
    # subsidy
    SUBSIDY_VIEW = "subsidy:application:view"
    SUBSIDY_APPLY = "subsidy:application:apply"
    SUBSIDY_PREFECTURE_CHECK = "subsidy:application:prefecture_check"
    SUBSIDY_APPROVE = "subsidy:application:approve"
    BASE_TABLE_MANAGE = "subsidy:base_table:manage"
    ESTIMATE_SUBMIT = "subsidy:estimate:submit"
    ESTIMATE_REVIEW = "subsidy:estimate:review"
    # operations
    SYSTEM_SETTINGS = "admin:settings:manage"


class Scope(enum.Enum):
    OWN = "own"
    PREFECTURE = "prefecture"
    AFFILIATION = "affiliation"
    NATIONAL = "national"


P, S = Permission, Scope

# Permissions over one's own account rather than a body: held with or without a body (a ministry
# officer's API token), never a reach into anyone else's records.
SELF_SERVICE: frozenset[Permission] = frozenset({P.API_TOKEN_OWN})

_BODY_STAFF: dict[Permission, Scope] = {
    P.BODY_VIEW: S.OWN,
    P.API_TOKEN_OWN: S.OWN,
    P.PLAN_VIEW: S.OWN,
    P.PLAN_EDIT: S.OWN,
    P.DELAY_VIEW: S.OWN,
    P.CASE_VIEW: S.OWN,
    P.CASE_ANSWER: S.OWN,
    P.DOCUMENT_READ: S.NATIONAL,
    P.PRACTICE_SUBMIT: S.OWN,
    P.FAQ_READ: S.NATIONAL,
    P.INQUIRY_ASK: S.OWN,
    P.PROCEDURE_READ: S.NATIONAL,
    P.SEARCH: S.NATIONAL,
    P.SUBSIDY_VIEW: S.OWN,
    P.SUBSIDY_APPLY: S.OWN,
    P.ESTIMATE_SUBMIT: S.OWN,
}

ROLE_PERMISSIONS: dict[Role, dict[Permission, Scope]] = {
    Role.BODY_STAFF: _BODY_STAFF,
    Role.BODY_ADMIN: {**_BODY_STAFF, P.ACCOUNT_MANAGE: S.OWN, P.AUDIT_VIEW: S.OWN},
    Role.PREFECTURE_STAFF: {
        **_BODY_STAFF,
        P.BODY_VIEW: S.PREFECTURE,
        P.PLAN_VIEW: S.PREFECTURE,
        P.PLAN_COMMENT: S.PREFECTURE,
        P.DELAY_VIEW: S.PREFECTURE,
        P.CASE_VIEW: S.PREFECTURE,
        P.SUBSIDY_VIEW: S.PREFECTURE,
        P.SUBSIDY_PREFECTURE_CHECK: S.PREFECTURE,
    },
    Role.MINISTRY_OFFICER: {
        P.BODY_VIEW: S.NATIONAL,
        P.API_TOKEN_OWN: S.OWN,
        P.PLAN_VIEW: S.NATIONAL,
        P.PLAN_IMPORT_NATIONAL: S.NATIONAL,
        P.MONTHLY_CLOSE: S.NATIONAL,
        P.DELAY_VIEW: S.NATIONAL,
        P.DASHBOARD_NATIONAL: S.NATIONAL,
        P.CASE_VIEW: S.NATIONAL,
        P.CASE_MANAGE: S.NATIONAL,
        P.REPORT_STEERING: S.NATIONAL,
        P.DOCUMENT_READ: S.NATIONAL,
        P.DOCUMENT_PUBLISH: S.NATIONAL,
        P.PRACTICE_APPROVE: S.NATIONAL,
        P.FAQ_READ: S.NATIONAL,
        P.FAQ_MANAGE: S.NATIONAL,
        P.INQUIRY_ANSWER: S.NATIONAL,
        P.PROCEDURE_READ: S.NATIONAL,
        P.DATASET_PUBLISH: S.NATIONAL,
        P.SEARCH: S.NATIONAL,
        P.SUBSIDY_VIEW: S.NATIONAL,
    },
    Role.FINANCE_OFFICER: {
        P.BODY_VIEW: S.AFFILIATION,
        P.API_TOKEN_OWN: S.OWN,
        P.PLAN_VIEW: S.AFFILIATION,
        P.DOCUMENT_READ: S.NATIONAL,
        P.FAQ_READ: S.NATIONAL,
        P.PROCEDURE_READ: S.NATIONAL,
        P.SEARCH: S.NATIONAL,
        P.SUBSIDY_VIEW: S.AFFILIATION,
        P.SUBSIDY_PREFECTURE_CHECK: S.AFFILIATION,
        P.SUBSIDY_APPROVE: S.AFFILIATION,
        P.BASE_TABLE_MANAGE: S.NATIONAL,
        P.ESTIMATE_REVIEW: S.AFFILIATION,
    },
    Role.SYSTEM_ADMIN: {
        P.BODY_VIEW: S.NATIONAL,
        P.API_TOKEN_OWN: S.OWN,
        P.ACCOUNT_MANAGE: S.NATIONAL,
        P.MINISTRY_ACCOUNT_MANAGE: S.NATIONAL,
        P.AUDIT_VIEW: S.NATIONAL,
        P.CATALOG_EDIT: S.NATIONAL,
        P.PLAN_VIEW: S.NATIONAL,
        P.DOCUMENT_READ: S.NATIONAL,
        P.FAQ_READ: S.NATIONAL,
        P.PROCEDURE_READ: S.NATIONAL,
        P.SEARCH: S.NATIONAL,
        P.BASE_TABLE_MANAGE: S.NATIONAL,
        P.SYSTEM_SETTINGS: S.NATIONAL,
    },
}

# Ministry-owned records (documents, FAQs, datasets): only these changes are limited to the owning
# ministry; reading a ministry's records is not.
MINISTRY_RECORD_EDITS = frozenset({P.DOCUMENT_PUBLISH, P.FAQ_MANAGE, P.DATASET_PUBLISH})

# Roles an account issuer may grant. A body admin issues staff and admins of its own body only.
GRANTABLE_ROLES: dict[Role, frozenset[Role]] = {
    Role.BODY_ADMIN: frozenset({Role.BODY_STAFF, Role.BODY_ADMIN}),
    Role.SYSTEM_ADMIN: frozenset(Role),
}

# Admin-level roles: every body's data, money decisions or other people's accounts (the roles that
# must use MFA). Issuing one, raising an account to one, or handing out a new initial password of
# one needs a recent login or re-authentication (SESS-06); staff roles reach one body and do not.
ADMIN_LEVEL_ROLES = frozenset({Role.BODY_ADMIN, Role.MINISTRY_OFFICER, Role.FINANCE_OFFICER, Role.SYSTEM_ADMIN})


def is_admin_level(role_value: str | Role | None) -> bool:
    """Whether ``role_value`` (a Role or its form value; anything else is not) is admin-level."""
    try:
        return Role(role_value) in ADMIN_LEVEL_ROLES
    except ValueError:
        return False


@dataclass(frozen=True)
class BodyRef:
    """What scope rules need to know of a body."""

    id: int
    code: str
    prefecture_code: str
    is_prefecture: bool = False


@dataclass(frozen=True)
class Actor:
    """Who is acting: read from the database on every request, never from cookie claims."""

    user_id: int
    login_id: str
    role: Role
    body: BodyRef | None = None
    ministry_id: int | None = None

    @property
    def is_national(self) -> bool:
        return self.ministry_id is not None or self.role is Role.SYSTEM_ADMIN


def scope_of(actor: Actor, permission: Permission) -> Scope | None:
    """Return the scope within which the actor holds ``permission``, or None."""
    return ROLE_PERMISSIONS.get(actor.role, {}).get(permission)


def effective_scope(actor: Actor, scope: Scope) -> Scope | None:
    """Resolve AFFILIATION into the scope the actor's affiliation gives; None if it gives nothing."""
    if scope is not Scope.AFFILIATION:
        return scope
    if actor.is_national:
        return Scope.NATIONAL
    if actor.body is None:
        return None
    return Scope.PREFECTURE if actor.body.is_prefecture else Scope.OWN


def can(
    actor: Actor | None,
    permission: Permission,
    body: BodyRef | None = None,
    ministry_id: int | None = None,
) -> bool:
    """Tell whether ``actor`` may use ``permission`` on ``body`` (or at all, when no target is given).

    With a ``ministry_id`` the record belongs to a ministry: publishers change (MINISTRY_RECORD_EDITS)
    only their own ministry's records; a system admin may change any; reading is not limited.
    """
    if actor is None:
        return False
    granted = scope_of(actor, permission)
    if granted is None:
        return False
    scope = effective_scope(actor, granted)
    if scope is None:
        return False
    if (
        ministry_id is not None
        and permission in MINISTRY_RECORD_EDITS
        and actor.role is not Role.SYSTEM_ADMIN
        and actor.ministry_id != ministry_id
    ):
        return False
    if body is None:
        # A body-scoped permission needs a body to act for.
        return scope is Scope.NATIONAL or actor.body is not None or permission in SELF_SERVICE
    if scope is Scope.NATIONAL:
        return True
    if actor.body is None:
        return False
    if scope is Scope.OWN:
        return actor.body.id == body.id
    return body.prefecture_code == actor.body.prefecture_code and actor.body.is_prefecture


def visible_prefecture(actor: Actor, permission: Permission) -> str | None | bool:
    """For list queries: True = every body, a prefecture code = that prefecture, None = own body only, False = none."""
    granted = scope_of(actor, permission)
    scope = effective_scope(actor, granted) if granted else None
    if scope is None:
        return False
    if scope is Scope.NATIONAL:
        return True
    if scope is Scope.PREFECTURE and actor.body is not None and actor.body.is_prefecture:
        return actor.body.prefecture_code
    return None if actor.body is not None else False
