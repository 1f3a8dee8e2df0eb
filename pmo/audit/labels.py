"""Japanese names of audit actions and target types, for the audit screen and its export."""

from __future__ import annotations

ACTIONS = {
    "auth.login": "ログイン",
    "auth.logout": "ログアウト",
    "auth.login_failed": "ログイン失敗",
    "auth.login_throttled": "ログイン試行の制限",
    "auth.account_locked": "アカウントの一時ロック",
    "auth.session_ended": "セッション終了（本人）",
    "authz.denied": "アクセス拒否",
    "account.issued": "アカウント発行",
    "account.disabled": "アカウント無効化",
    "account.enabled": "アカウント有効化",
    "account.role_changed": "役割の変更",
    "account.password_changed": "パスワード変更",
    "account.password_reset": "パスワード再発行",
    "account.sessions_ended": "全セッション終了",
    "account.unlocked": "ログイン制限の解除",
    "api_token.created": "APIトークン発行",
    "api_token.revoked": "APIトークン失効",
    "ops.backup": "バックアップ",
    "auth.mfa_success": "二要素認証の成功",
    "auth.mfa_failed": "二要素認証の失敗",
    "auth.mfa_throttled": "確認コード試行の制限",
    "auth.mfa_enrolled": "二要素認証の登録",
    "auth.mfa_changed": "二要素認証の端末変更",
    "auth.mfa_removed": "二要素認証の解除（本人）",
    "auth.mfa_recovery_codes_renewed": "リカバリーコードの再発行",
    "auth.reauthenticated": "本人確認（再認証）",
    "auth.reauth_failed": "本人確認（再認証）の失敗",
    "account.mfa_reset": "二要素認証のリセット",
    "file.infected": "ウイルス検出（アップロード拒否）",
    "file.scan_unavailable": "ウイルス検査不可（アップロード拒否）",
    "quota.exceeded": "操作回数の上限超過",
    "case.note_added": "府省内メモの記入",
    "subsidy.estimate_note": "見積の審査所見",
}
PREFIXES = {
    "plans.": "計画・実績", "catalog.": "作業項目カタログ", "delays.": "遅延フォロー", "cases.": "遅延フォロー",
    "reports.": "報告", "documents.": "文書", "faq.": "FAQ", "inquiries.": "問い合わせ",
    "procedures.": "事務・手続", "subsidy.": "補助金", "estimates.": "見積書", "search.": "検索",
}
TARGETS = {
    "users": "アカウント", "user_sessions": "セッション", "api_tokens": "APIトークン", "bodies": "団体",
    "endpoint": "画面", "plans": "計画", "documents": "文書",
    "upload": "アップロード",
}


def action_label(action: str) -> str:
    """The Japanese name of an action, or its domain's name with the code when it has none."""
    if action in ACTIONS:
        return ACTIONS[action]
    for prefix, label in PREFIXES.items():
        if action.startswith(prefix):
            return f"{label}（{action[len(prefix):]}）"
    return action


def target_label(target_type: str | None) -> str:
    return TARGETS.get(target_type or "", target_type or "")
