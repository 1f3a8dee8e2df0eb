"""Demo accounts: one per role, around one municipality and its prefecture."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from pmo.accounts.models import Role, User
from pmo.accounts.service import hash_password
from pmo.orgs.models import Body, Ministry
from pmo.seeding import DemoContext
from pmo.settings.service import set_setting

DEMO_MUNICIPALITY = "012033"  # 小樽市 (北海道)
DEMO_PREFECTURE = "010006"  # 北海道

DEMO_USERS = [
    ("demo-staff", "小樽 太郎", Role.BODY_STAFF, DEMO_MUNICIPALITY, None),
    ("demo-admin", "小樽 花子", Role.BODY_ADMIN, DEMO_MUNICIPALITY, None),
    ("demo-pref", "北海 道子", Role.PREFECTURE_STAFF, DEMO_PREFECTURE, None),
    ("demo-ministry", "総務 一郎", Role.MINISTRY_OFFICER, None, "mic"),
    ("demo-finance", "厚労 次郎", Role.FINANCE_OFFICER, None, "mhlw"),
    ("demo-sysadmin", "運用 三郎", Role.SYSTEM_ADMIN, None, "cas"),
]


def seed_demo_users(session: Session, ctx: DemoContext) -> None:
    """Create (or reset the password of) one demo user per role; marks the database as demo."""
    for login_id, name, role, body_code, ministry_code in DEMO_USERS:
        body = session.scalar(select(Body).where(Body.code == body_code)) if body_code else None
        ministry = session.scalar(select(Ministry).where(Ministry.code == ministry_code)) if ministry_code else None
        user = session.scalar(select(User).where(User.login_id == login_id))
        if user is None:
            user = User(
                login_id=login_id, display_name=name, email=f"{login_id}@demo.pmo.example", role=role,
                body_id=body.id if body else None, ministry_id=ministry.id if ministry else None,
                password_hash=hash_password(ctx.password), must_change_password=False,
            )
            session.add(user)
        else:
            user.password_hash = hash_password(ctx.password)
            user.is_active = True
            user.must_change_password = False
        ctx.users[role.value] = user
    session.flush()
    set_setting(session, "demo", True)
