"""FAQ and inquiry forms."""

from __future__ import annotations

from wtforms import HiddenField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from pmo.faq.models import CATEGORIES
from pmo.faq.service import FaqInput, InquiryInput
from pmo.web.forms import PortalForm

REQUIRED = "入力してください。"


class FaqForm(PortalForm):
    category = SelectField("分類", choices=[(c, c) for c in CATEGORIES])
    question = TextAreaField("質問", validators=[DataRequired(REQUIRED), Length(max=2000)])
    answer_html = TextAreaField("回答（段落は<p>、箇条書きは<ul><li>、リンクは<a href>が使えます）",
                                validators=[DataRequired(REQUIRED), Length(max=20000)])
    source = StringField("出典", validators=[Length(max=200)])
    related = StringField("関連文書の番号（カンマ区切り）", validators=[Length(max=200)])
    version = HiddenField()

    def to_input(self) -> FaqInput:
        ids = tuple(int(x) for x in (self.related.data or "").replace("、", ",").split(",") if x.strip().isdigit())
        return FaqInput(question=self.question.data or "", answer_html=self.answer_html.data or "",
                        category=self.category.data or "その他", source=self.source.data or "", related_document_ids=ids)


class InquiryForm(PortalForm):
    subject = StringField("件名", validators=[DataRequired(REQUIRED), Length(max=200)])
    category = SelectField("分類", choices=[(c, c) for c in CATEGORIES])
    ministry_id = SelectField("宛先（担当の府省）", coerce=int, choices=[])
    question = TextAreaField("質問の内容", validators=[DataRequired(REQUIRED), Length(min=5, max=8000)])

    def to_input(self) -> InquiryInput:
        return InquiryInput(subject=self.subject.data or "", question=self.question.data or "",
                            category=self.category.data or "その他", ministry_id=int(self.ministry_id.data or 0))


class AnswerForm(PortalForm):
    answer = TextAreaField("回答", validators=[DataRequired("回答を入力してください。"), Length(max=20000)])
    version = HiddenField()


class ActionForm(PortalForm):
    version = HiddenField()
