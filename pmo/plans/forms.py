"""Plan forms: shape only. The sheet's rows are read from the request into ``RowInput``s; every
business rule (dates, order, completion items) comes back from the service as problems."""

from __future__ import annotations

from typing import Any

from flask_wtf.file import FileField
from wtforms import HiddenField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from pmo.plans.service import RowInput
from pmo.web.forms import PortalForm

SEP = "__"
ROW_FIELDS = ("planned_start", "planned_end", "actual_start", "actual_end", "progress", "not_applicable_reason",
              "comment", "vendor")
MAX_FIELD = 4000


class SheetForm(PortalForm):
    """The plan sheet: CSRF here, rows read by ``rows_from``."""


def name(code: str, field: str) -> str:
    return f"{code}{SEP}{field}"


def rows_from(form: Any, codes: list[str], completion_codes: dict[str, list[str]]) -> list[RowInput]:
    """Read every sub-task row of the submitted sheet (raw text kept for re-display)."""
    rows = []
    for code in codes:
        if name(code, "version") not in form:
            continue
        raw = {f: (form.get(name(code, f)) or "")[:MAX_FIELD] for f in ROW_FIELDS}
        for cf in completion_codes.get(code, []):
            raw[f"cf_{cf}"] = (form.get(name(code, f"cf_{cf}")) or "")[:MAX_FIELD]
        version = form.get(name(code, "version"), "0")
        rows.append(RowInput(
            subtask_code=code, raw=raw, version=int(version) if version.isdigit() else -1,
            fingerprint=form.get(name(code, "fp")) or None,
            not_applicable=form.get(name(code, "na")) == "1",
        ))
    return rows


class UploadForm(PortalForm):
    file = FileField("ファイル（.xlsx または .csv）")
    batch_id = HiddenField()


class ConfirmForm(PortalForm):
    """Confirm a previewed import."""


class CloseMonthForm(PortalForm):
    month = StringField("締める月", validators=[DataRequired("締める月を入力してください。"), Length(max=20)])


class CommentForm(PortalForm):
    text = TextAreaField("支援コメント", validators=[DataRequired("コメントを入力してください。"), Length(max=2000)])
    subtask = StringField("対象サブタスク（任意）", validators=[Length(max=8)])
