"""Document forms: shape checks only; the service decides the rest."""

from __future__ import annotations

import datetime as dt

from flask_wtf.file import FileField
from wtforms import BooleanField, HiddenField, SelectField, SelectMultipleField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, ValidationError

from pmo.core.clock import JST
from pmo.core.dates import DateInputError, parse_date_input
from pmo.documents.models import AUDIENCE_LABELS, FIELD_LABELS, Audience, Field
from pmo.documents.service import DocumentInput
from pmo.web.forms import PortalForm, nfkc

REQUIRED = "入力してください。"


def _date(value: str | None, last_day: bool = False) -> dt.date | None:
    """A date typed by the user (和暦, full width, month precision); a month means its first or last day."""
    try:
        parsed = parse_date_input(value)
    except DateInputError as exc:
        raise ValidationError(str(exc)) from exc
    if parsed is None:
        return None
    return parsed.end() if last_day else parsed.start()


class DocumentForm(PortalForm):
    title = StringField("タイトル", validators=[DataRequired(REQUIRED), Length(max=200)])
    summary = TextAreaField("概要", validators=[Length(max=4000)])
    field = SelectField("分野", choices=[(f.value, label) for f, label in FIELD_LABELS.items()], default=Field.COMMON.value)
    tags = StringField("タグ（読点・カンマ区切り）", validators=[Length(max=300)])
    audience = SelectField("公開範囲", choices=[(a.value, label) for a, label in AUDIENCE_LABELS.items()],
                           default=Audience.ALL.value)
    publish_from = StringField("公開開始日（空欄なら公開操作の時点）", filters=[nfkc], validators=[Length(max=40)])
    publish_until = StringField("掲載終了日", filters=[nfkc], validators=[Length(max=40)])
    version = HiddenField()

    def validate_publish_from(self, field: StringField) -> None:
        _date(field.data)

    def validate_publish_until(self, field: StringField) -> None:
        _date(field.data)

    def to_input(self) -> DocumentInput:
        start = _date(self.publish_from.data)
        return DocumentInput(
            title=self.title.data or "", summary=self.summary.data or "", field=Field(self.field.data),
            tags=self.tags.data or "", audience=Audience(self.audience.data),
            publish_from=dt.datetime.combine(start, dt.time(), JST) if start else None,
            publish_until=_date(self.publish_until.data, last_day=True),
        )


class NewDocumentForm(DocumentForm):
    file = FileField("ファイル（PDF・Excel・Word・PowerPoint・CSV・ZIP、30MBまで）")
    publish_now = BooleanField("登録と同時に公開する")


class PracticeForm(PortalForm):
    title = StringField("タイトル", validators=[DataRequired(REQUIRED), Length(max=200)])
    summary = TextAreaField("概要（取組の内容・工夫した点）", validators=[Length(max=4000)])
    field = SelectField("分野", choices=[(f.value, label) for f, label in FIELD_LABELS.items()], default=Field.COMMON.value)
    tags = StringField("タグ（読点・カンマ区切り）", validators=[Length(max=300)])
    file = FileField("ファイル（PDF・Excel・Word・PowerPoint・CSV・ZIP、30MBまで）")

    def to_input(self) -> DocumentInput:
        return DocumentInput(title=self.title.data or "", summary=self.summary.data or "", field=Field(self.field.data),
                             tags=self.tags.data or "")


class VersionUploadForm(PortalForm):
    file = FileField("新しいファイル")
    change_note = TextAreaField("変更内容", validators=[DataRequired("変更内容を入力してください。"), Length(max=2000)])
    version = HiddenField()


class ReviewForm(PortalForm):
    note = TextAreaField("コメント（差戻しの場合は必須）", validators=[Length(max=2000)])
    decision = HiddenField()


class SubscriptionForm(PortalForm):
    fields = SelectMultipleField("分野", choices=[(f.value, label) for f, label in FIELD_LABELS.items()])
    ministries = SelectMultipleField("府省", choices=[], coerce=int, validate_choice=False)
