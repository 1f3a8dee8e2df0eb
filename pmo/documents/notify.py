"""E-mail notices to subscribers: built inside the transaction, sent only after it committed."""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Mapping
from email.message import EmailMessage
from typing import Any

from sqlalchemy.orm import Session

from pmo.documents import service
from pmo.documents.models import Document

log = logging.getLogger(__name__)


def build_messages(session: Session, doc: Document, event: str, base_url: str, sender: str) -> list[EmailMessage]:
    """One plain-text message per subscriber who may see the document (no HTML: nothing to inject)."""
    if doc.latest is None:
        return []
    what = "新しい文書が公開されました" if event == "published" else "文書が更新されました（最新版）"
    messages = []
    for user in service.subscribers(session, doc):
        msg = EmailMessage()
        msg["Subject"] = f"【デジタルPMO】{what}：{_one_line(doc.title)[:80]}"
        msg["From"] = sender
        msg["To"] = user.email
        msg.set_content(
            f"{user.display_name} 様\n\n購読中の分野・府省で{what}。\n\n"
            f"タイトル：{_one_line(doc.title)}\n分野：{doc.field.label}\n発行：{doc.owner_label}\n"
            f"最新版：第{doc.latest.number}版（{_one_line(doc.latest.display_name)}）\n"
            f"{('変更内容：' + _one_line(doc.latest.change_note) + chr(10)) if doc.latest.number > 1 else ''}"
            f"\n{base_url.rstrip('/')}/documents/{doc.id}\n\n"
            "※このメールは送信専用です。購読の設定はポータルの「文書」→「購読の設定」で変更できます。\n"
        )
        messages.append(msg)
    return messages


def _one_line(text: str) -> str:
    return " ".join((text or "").split())


def send(messages: list[EmailMessage], config: Mapping[str, Any]) -> int:
    """Send through the configured SMTP server; log and carry on if it fails (the record is saved)."""
    host = config.get("SMTP_HOST")
    if not host or not messages:
        return 0
    sent = 0
    try:
        with smtplib.SMTP(host, int(config.get("SMTP_PORT") or 25), timeout=10) as smtp:
            if config.get("SMTP_STARTTLS"):
                smtp.starttls()
            if config.get("SMTP_USER"):
                smtp.login(config["SMTP_USER"], config.get("SMTP_PASSWORD") or "")
            for msg in messages:
                smtp.send_message(msg)
                sent += 1
    except (OSError, smtplib.SMTPException):
        log.exception("sending %d document notices failed after %d", len(messages), sent)
    return sent
