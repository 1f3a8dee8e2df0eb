"""Portal-level search timings: rebuild from the database, one record through the outbox, scoped queries.

Run: .venv/bin/python bench/info_search_bench.py [--faqs 500]
Builds a throwaway SQLite instance with the real seed (57 FAQs, 64 procedures), the source deck as a
document, and N generated FAQs, then prints p50/p95 in milliseconds. Engine-level Whoosh vs FTS5
numbers are in bench/search_bench.py.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--faqs", type=int, default=300)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="pmo-info-bench-"))
    from pmo import create_app
    from pmo.accounts.models import Role
    from pmo.accounts.permissions import Actor, BodyRef
    from pmo.cli import upgrade_database
    from pmo.documents.service import seed_demo_documents
    from pmo.faq import service as faq
    from pmo.paths import data_dir
    from pmo.search import indexer, service
    from pmo.search.views import backend
    from pmo.seeding import DemoContext, run_seed

    url = f"sqlite:///{root / 'bench.sqlite3'}"
    upgrade_database(url)
    app = create_app({"DATABASE_URL": url, "INSTANCE_PATH": str(root / "instance"), "SECRET_KEY": "b" * 64})
    db = app.extensions["pmo_db"]
    sentences = (data_dir("seed") / "documents" / "mhlw_2015_setsumeikai_shiryo6.txt").read_text().split("。")
    with app.app_context(), db.session() as session:
        run_seed(session, data_dir("seed"))
        seed_demo_documents(session, DemoContext(data_dir("seed"), "x", dt.date(2015, 12, 15), upload_dir=root / "up"))
        officer = Actor(0, "bench", Role.MINISTRY_OFFICER, ministry_id=3)
        for i in range(args.faqs):
            text = "。".join(sentences[(i * 7) % len(sentences):(i * 7) % len(sentences) + 6])
            faq.create_faq(session, officer, faq.FaqInput(f"生成した質問{i} {text[:40]}", f"<p>{text}</p>"), publish=True)
        session.commit()
        ix = backend(app)
        start = time.perf_counter()
        report = indexer.rebuild(session, ix)
        rebuild_s = time.perf_counter() - start

        one_record = []
        for i in range(30):
            faq.create_faq(session, officer, faq.FaqInput(f"追加の質問{i}", "<p>中間サーバーの接続端末</p>"), publish=True)
            session.commit()
            start = time.perf_counter()
            indexer.drain(session, ix)
            one_record.append((time.perf_counter() - start) * 1000)

        city = Actor(1, "city", Role.BODY_STAFF, body=BodyRef(10, "012033", "01"))
        queries = ["税", "番号", "中間サーバー", "本人確認 書類", "ｶﾞｲﾄﾞﾗｲﾝ", "補助対象外の経費", "情報連携 平成29年7月",
                   "存在しない語"]
        timings = {q: [] for q in queries}
        for _ in range(15):
            for q in queries:
                start = time.perf_counter()
                results = service.search(session, city, ix, q)
                timings[q].append((time.perf_counter() - start) * 1000)
                timings[q + "#total"] = [results.total]
        session.rollback()
    print(f"index: {report.doc_count} records, rebuild {rebuild_s:.1f} s")
    print(f"one record through the outbox (commit → drain): p50 {statistics.median(one_record):.0f} ms, "
          f"p95 {pct(one_record, 95):.0f} ms")
    print("query (as body staff, top 10 + exact count + facets): p50 / p95 ms, hits")
    for q in queries:
        print(f"  {q:<20} {statistics.median(timings[q]):6.1f} / {pct(timings[q], 95):6.1f}   {timings[q + '#total'][0]}")


if __name__ == "__main__":
    main()
