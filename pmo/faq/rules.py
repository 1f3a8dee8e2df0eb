"""Pure FAQ rules: rich-text sanitising, anonymising an inquiry, reply deadlines, suggestions."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

import nh3

ALLOWED_TAGS = {"p", "br", "ul", "ol", "li", "strong", "em", "b", "i", "u", "a", "table", "thead", "tbody",
                "tr", "th", "td", "h3", "h4", "blockquote", "code", "pre", "span"}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "td": {"colspan", "rowspan"}, "th": {"colspan", "rowspan"}}
URL_SCHEMES = {"https", "http", "mailto"}


def sanitize_html(html: str) -> str:
    """Keep a small allowlist of tags; links only to http(s)/mailto (no javascript:/data:)."""
    return nh3.clean(html or "", tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES, url_schemes=URL_SCHEMES,
                     link_rel="noopener noreferrer nofollow", strip_comments=True)


def text_to_html(text: str) -> str:
    """Turn plain text (an inquiry answer) into paragraphs, escaping everything."""
    import html

    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", (text or "").strip()) if p.strip()]
    return "".join("<p>" + html.escape(p).replace("\n", "<br>") + "</p>" for p in paragraphs)


def html_to_text(html: str) -> str:
    """Plain text of sanitised HTML, for the search index and suggestions."""
    import html as html_lib

    text = re.sub(r"<br\s*/?>|</p>|</li>|</tr>|</h[34]>", "\n", html or "")
    text = re.sub(r"<[^>]+>", "", text)
    return html_lib.unescape(text).strip()


def anonymise(text: str, names: list[str], replacement: str = "当団体") -> str:
    """Replace the asking body's and person's names, and e-mail addresses and phone numbers."""
    out = text or ""
    for name in sorted({n for n in names if n and len(n) >= 2}, key=len, reverse=True):
        out = out.replace(name, replacement)
    out = re.sub(r"[\w.+-]+@[\w-]+(\.[\w-]+)+", "（メールアドレス）", out)
    out = re.sub(r"0\d{1,4}-\d{1,4}-\d{3,4}", "（電話番号）", out)
    return out


def reply_due(asked: dt.date, days: int) -> dt.date:
    """The reply deadline: ``days`` calendar days later, moved off a weekend to the Monday."""
    due = asked + dt.timedelta(days=days)
    while due.weekday() >= 5:
        due += dt.timedelta(days=1)
    return due


def age_band(asked: dt.date, today: dt.date) -> str:
    days = (today - asked).days
    if days <= 7:
        return "1週間以内"
    if days <= 14:
        return "2週間以内"
    if days <= 30:
        return "1か月以内"
    return "1か月超"


def _grams(text: str) -> set[str]:
    norm = unicodedata.normalize("NFKC", text or "").lower()
    norm = re.sub(r"[\s、。・？?！!「」（）()]+", "", norm)
    return {norm[i:i + 2] for i in range(len(norm) - 1)} if len(norm) > 1 else ({norm} if norm else set())


def similarity(query: str, candidate: str) -> float:
    """Share of the query's bigrams found in the candidate (0..1), for 「似たFAQ」 suggestions."""
    q = _grams(query)
    if not q:
        return 0.0
    return len(q & _grams(candidate)) / len(q)
