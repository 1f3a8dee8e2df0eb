"""Account forms: shape checks only; rules come back from the service as problems."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Length

from pmo.accounts.models import ROLE_LABELS, Role
from pmo.accounts.service import AccountInput
from pmo.web.forms import PortalForm, nfkc

REQUIRED = "入力してください。"


class LoginForm(PortalForm):
    login_id = StringField("ログインID", validators=[DataRequired(REQUIRED), Length(max=64)], filters=[nfkc])
    password = PasswordField("パスワード", validators=[DataRequired(REQUIRED), Length(max=1024)])
    next = HiddenField()


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField("現在のパスワード", validators=[DataRequired(REQUIRED), Length(max=1024)])
    new_password = PasswordField("新しいパスワード", validators=[DataRequired(REQUIRED), Length(max=1024)])
    confirm_password = PasswordField("新しいパスワード（確認）", validators=[DataRequired(REQUIRED), Length(max=1024)])

    def validate_confirm_password(self, field: PasswordField) -> None:
        from wtforms.validators import ValidationError

        if field.data != self.new_password.data:
            raise ValidationError("確認用のパスワードが一致しません。")


class IssueAccountForm(PortalForm):
    login_id = StringField("ログインID", validators=[DataRequired(REQUIRED), Length(max=64)], filters=[nfkc])
    display_name = StringField("氏名", validators=[DataRequired(REQUIRED), Length(max=100)])
    email = StringField("メールアドレス", validators=[DataRequired(REQUIRED), Length(max=254)], filters=[nfkc])
    role = SelectField("役割", choices=[], validators=[DataRequired(REQUIRED)])
    body_code = StringField("所属団体コード", validators=[Length(max=6)], filters=[nfkc])
    ministry_code = SelectField("所属府省", choices=[("", "（選択しない）")], validate_choice=False)

    def set_role_choices(self, roles: list[Role]) -> None:
        self.role.choices = [(r.value, ROLE_LABELS[r]) for r in roles]

    def to_input(self) -> AccountInput:
        return AccountInput(
            login_id=self.login_id.data or "",
            display_name=self.display_name.data or "",
            email=self.email.data or "",
            role=Role(self.role.data),
            body_code=self.body_code.data or None,
            ministry_code=self.ministry_code.data or None,
        )


class VersionForm(PortalForm):
    """A bare form for POST actions: the CSRF token and the record version read on screen."""

    version = HiddenField()


class RoleForm(VersionForm):
    role = SelectField("役割", choices=[])


class TokenForm(PortalForm):
    name = StringField("用途", validators=[DataRequired(REQUIRED), Length(max=100)])


class MfaCodeForm(FlaskForm):
    code = StringField("確認コード", validators=[DataRequired(REQUIRED), Length(max=40)])


class ReauthForm(FlaskForm):
    password = PasswordField("パスワード", validators=[DataRequired(REQUIRED), Length(max=1024)])
    code = StringField("確認コード", validators=[Length(max=40)])
    next = HiddenField()
