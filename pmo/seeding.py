"""What `pmo seed` and `pmo demo` run, in order. Each domain adds its step here.

A step is "module:function"; seed steps take (session, seed_dir) and must be idempotent; demo steps
take (session, DemoContext).
"""

from __future__ import annotations

import datetime as dt
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

SEED_STEPS: list[str] = [
    "pmo.orgs.service:seed_all",
    "pmo.catalog.service:seed_catalog",
    "pmo.subsidy.service:seed_base_table",
    "pmo.procedures.service:seed_procedures",
    "pmo.faq.service:seed_faqs",
]

DEMO_STEPS: list[str] = [
    "pmo.demo:seed_demo_users",
    "pmo.subsidy.demo:seed_demo",
    "pmo.plans.demo:seed_demo_plans",
    "pmo.documents.service:seed_demo_documents",
]


@dataclass
class DemoContext:
    seed_dir: Path
    password: str
    demo_date: dt.date
    users: dict[str, Any] = field(default_factory=dict)  # role value -> User
    upload_dir: Path | None = None  # where demo documents store their files


def _resolve(step: str) -> Any:
    module, func = step.split(":")
    return getattr(importlib.import_module(module), func)


def run_seed(session: Session, seed_dir: Path) -> dict[str, Any]:
    return {step: _resolve(step)(session, seed_dir) for step in SEED_STEPS}


def run_demo(session: Session, ctx: DemoContext) -> None:
    for step in DEMO_STEPS:
        _resolve(step)(session, ctx)
