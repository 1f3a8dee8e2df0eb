"""Pure FAQ rules: sanitising, anonymising, deadlines, suggestions."""

from __future__ import annotations

import datetime as dt

import pytest

from pmo.faq import rules


@pytest.mark.parametrize("dirty,bad", [
    ("<script>alert(1)</script><p>ok</p>", "<script"),
    ('"><img src=x onerror=alert(1)>', "onerror"),
    ('<a href="javascript:alert(1)">x</a>', "javascript:"),
    ('<a href="data:text/html,<script>">x</a>', "data:"),
    ('<p style="background:url(x)" onclick="x()">t</p>', "onclick"),
    ("<iframe src=//evil></iframe>", "<iframe"),
])
def test_sanitize_removes_active_content(dirty, bad):
    assert bad not in rules.sanitize_html(dirty)


def test_sanitize_keeps_safe_formatting_and_links():
    html = rules.sanitize_html('<p>本文<strong>強調</strong></p><ul><li>項目</li></ul><a href="https://www.mhlw.go.jp/">厚労省</a>')
    assert "<strong>強調</strong>" in html and "<li>項目</li>" in html
    assert 'href="https://www.mhlw.go.jp/"' in html and "noopener" in html


def test_text_to_html_escapes_and_keeps_paragraphs():
    assert rules.text_to_html("a<b>\n次の行\n\n二段落目") == "<p>a&lt;b&gt;<br>次の行</p><p>二段落目</p>"


def test_anonymise_removes_names_and_contacts():
    text = "北海道小樽市の小樽 太郎です。小樽市では otaru@example.jp 0134-32-4111 まで。"
    out = rules.anonymise(text, ["小樽市", "北海道小樽市", "小樽 太郎"])
    assert "小樽" not in out and "otaru@" not in out and "0134" not in out
    assert "当団体" in out


@pytest.mark.parametrize("asked,days,due", [
    (dt.date(2015, 12, 1), 14, dt.date(2015, 12, 15)),
    (dt.date(2015, 12, 5), 14, dt.date(2015, 12, 21)),  # lands on a Saturday → Monday
])
def test_reply_due(asked, days, due):
    assert rules.reply_due(asked, days) == due


@pytest.mark.parametrize("days,band", [(0, "1週間以内"), (10, "2週間以内"), (20, "1か月以内"), (40, "1か月超")])
def test_age_band(days, band):
    today = dt.date(2015, 12, 31)
    assert rules.age_band(today - dt.timedelta(days=days), today) == band


def test_similarity_finds_the_same_question_in_other_words():
    assert rules.similarity("中間サーバーは自分で調達しますか", "中間サーバーは自前で調達する必要がありますか。") > 0.5
    assert rules.similarity("補助率", "本人確認に必要な書類") == 0
