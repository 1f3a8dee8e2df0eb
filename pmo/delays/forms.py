"""Follow-up case forms: shape checks only; rules come back from ``pmo.delays.cases`` as problems."""

from __future__ import annotations

from wtforms import (
    BooleanField,
    DateField,
    HiddenField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional

from pmo.delays.cases import CaseInput, CaseUpdate
from pmo.delays.models import CASE_CAUSE_LABELS, CASE_STATUS_LABELS, CaseCause, CaseStatus
from pmo.web.forms import PortalForm

REQUIRED = "入力してください。"
CAUSE_CHOICES = [(c.value, label) for c, label in CASE_CAUSE_LABELS.items()]
STATUS_CHOICES = [(s.value, label) for s, label in CASE_STATUS_LABELS.items()]
DATE_MESSAGE = "日付は 2015-12-01 の形で入力してください。"


class OpenCasesForm(PortalForm):
    title = StringField("件名", validators=[DataRequired(REQUIRED), Length(max=200)])
    cause = SelectField("原因の区分", choices=CAUSE_CHOICES, validators=[DataRequired(REQUIRED)])
    owner_id = SelectField("担当者", choices=[], coerce=int, validate_choice=False)
    next_contact_date = DateField("次回連絡日", validators=[Optional()], format="%Y-%m-%d")
    note = TextAreaField("最初の記録（確認したいこと・依頼事項）", validators=[Length(max=4000)])
    as_of = HiddenField()
    vendor = HiddenField()

    def to_input(self) -> CaseInput:
        return CaseInput(
            title=self.title.data or "", cause=CaseCause(self.cause.data), note=self.note.data or "",
            next_contact_date=self.next_contact_date.data, owner_id=self.owner_id.data or None,
            vendor=(self.vendor.data or "").strip() or None,
        )


class EntryForm(PortalForm):
    text = TextAreaField("内容", validators=[DataRequired(REQUIRED), Length(max=4000)])
    internal = BooleanField("府省内メモにする（団体・都道府県には表示しません）")


class UpdateCaseForm(PortalForm):
    status = SelectField("対応状況", choices=STATUS_CHOICES, validators=[DataRequired(REQUIRED)])
    cause = SelectField("原因の区分", choices=CAUSE_CHOICES, validators=[DataRequired(REQUIRED)])
    owner_id = SelectField("担当者", choices=[], coerce=int, validate_choice=False)
    next_contact_date = DateField("次回連絡日", validators=[Optional()], format="%Y-%m-%d")
    note = TextAreaField("記録（任意）", validators=[Length(max=4000)])
    version = IntegerField(validators=[Optional()])

    def to_input(self) -> CaseUpdate:
        return CaseUpdate(
            status=CaseStatus(self.status.data), cause=CaseCause(self.cause.data),
            next_contact_date=self.next_contact_date.data, owner_id=self.owner_id.data or None,
            note=self.note.data or "",
        )


SEVERITY_CHOICES = [("notice", "注意"), ("delayed", "遅延"), ("critical", "重大")]


class ThresholdsForm(PortalForm):
    delayed_days = IntegerField("「遅延」とする日数（以上）", validators=[DataRequired(REQUIRED)])
    critical_days = IntegerField("「重大」とする日数（以上）", validators=[DataRequired(REQUIRED)])
    no_plan = SelectField("「計画未入力」の重要度", choices=SEVERITY_CHOICES)
    finished_late_cap = SelectField("「遅延完了」の重要度の上限", choices=SEVERITY_CHOICES)
