"""Benchmark pmo.search (Whoosh) against SQLite FTS5 on a generated Japanese corpus.

Why: SEARCH.md's figures should be re-checkable on the target machine after any
change to the analyzer or the engine. The corpus is built deterministically from
the sentences of one real source document with the noise extracted text has
(full-width <-> ASCII letters, half-width katakana, hard line breaks inside words,
Kangxi radicals), then indexed by:

- whoosh      pmo.search.engine.WhooshBackend.search(): top 10 with titles, exact
              count, scoping, snippets and facets (what the portal gets);
- whoosh-nf   the same without facets;
- fts5-bigram SQLite FTS5 over the same normalised uni+bigram tokens;
- fts5-tri    SQLite FTS5 ``trigram`` over normalised text (1-2 characters: LIKE scan);
- pg, pg-nf   pmo.search.pg.PostgresBackend.search() with and without facets, when ``--pg URL``
              is given (table ``search_bench`` in that database, dropped afterwards).

Every engine applies the same visibility scope and returns the exact count.

    PYTHONPATH=. python bench/search_bench.py --docs 2000
    PYTHONPATH=. python bench/search_bench.py            # 10,000 + 1,000 FAQ, ~5-10 min
    PYTHONPATH=. python bench/search_bench.py --out /tmp/sb --reuse \
        --pg postgresql+psycopg://postgres@127.0.0.1:5432/pmo_search
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pmo.search.analysis import normalize, query_grams  # noqa: E402
from pmo.search.engine import SearchDoc, SearchQuery, WhooshBackend  # noqa: E402

SOURCE = Path("/work/shared/seed-docs/000_c234ba91d8538235.txt")
SEED = 20240601
TOKENS = frozenset({"public", "audience:bodies"})
VISIBILITY = [({"public"}, 85), ({"audience:bodies"}, 10), ({"audience:ministries"}, 5)]
FIELDS = ["社会保障", "税", "災害対策", "地方税", "戸籍", "総合"]
MINISTRIES = ["デジタル庁", "総務省", "厚生労働省", "内閣府", "財務省", "法務省"]
LENGTHS = (1, 2, 4, 8)
RARE_LIMIT = 1000
QUERIES_PER_CLASS = 8

_JA = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]")
_WORD = re.compile(r"^[\w\u30fc]+$")


# --- noise --------------------------------------------------------------------


def _tables() -> tuple[dict[str, str], dict[str, str]]:
    """Half-width katakana and Kangxi radical spellings, derived from NFKC itself."""
    half: dict[str, str] = {}
    for code in range(0xFF66, 0xFF9E):
        full = unicodedata.normalize("NFKC", chr(code))
        if len(full) == 1:
            half[full] = chr(code)
    for base, hw in list(half.items()):
        for mark, hw_mark in (("\u3099", "\uff9e"), ("\u309a", "\uff9f")):
            composed = unicodedata.normalize("NFC", base + mark)
            if len(composed) == 1:
                half[composed] = hw + hw_mark
    kangxi = {}
    for code in range(0x2F00, 0x2FD6):
        kangxi.setdefault(unicodedata.normalize("NFKC", chr(code)), chr(code))
    return half, kangxi


HALF_KANA, KANGXI = _tables()


def _swap_width(text: str) -> str:
    out = []
    for char in text:
        code = ord(char)
        if char.isascii() and char.isalnum():
            out.append(chr(code + 0xFEE0))
        elif 0xFF10 <= code <= 0xFF5A and chr(code - 0xFEE0).isalnum():
            out.append(chr(code - 0xFEE0))
        else:
            out.append(char)
    return "".join(out)


def _noisy(text: str, rng: random.Random) -> str:
    if rng.random() < 0.10:
        text = _swap_width(text)
    if rng.random() < 0.10:
        text = "".join(HALF_KANA.get(c, c) for c in text)
    if rng.random() < 0.10:
        text = "".join(KANGXI[c] if c in KANGXI and rng.random() < 0.5 else c for c in text)
    if rng.random() < 0.20:
        spots = [i for i in range(1, len(text)) if _JA.match(text[i - 1]) and _JA.match(text[i])]
        for i in sorted(rng.sample(spots, min(len(spots), rng.randint(1, 3))), reverse=True):
            text = text[:i] + "\n" + text[i:]
    return text


# --- corpus ---------------------------------------------------------------------


def source_paragraphs() -> list[str]:
    text = SOURCE.read_text(encoding="utf-8")
    return [p.strip() for p in re.split(r"\n\s*\n", text) if len(p.strip()) >= 5]


def corpus(n_docs: int, n_faqs: int) -> list[SearchDoc]:
    """Build the documents deterministically (same arguments, same corpus)."""
    paragraphs = source_paragraphs()
    titles = [p.splitlines()[0][:40] for p in paragraphs if len(p.splitlines()[0]) >= 8]
    tokens = [t for t, weight in VISIBILITY for _ in range(weight)]
    docs = []
    for i in range(n_docs + n_faqs):
        rng = random.Random(SEED * 1_000_003 + i)
        faq = i >= n_docs
        picked = rng.sample(paragraphs, rng.randint(3, 8) if faq else rng.randint(40, 160))
        body = "\n\n".join(_noisy(p, rng) for p in picked)
        title = rng.choice(titles)
        docs.append(
            SearchDoc(
                key=f"{'faq' if faq else 'document'}:{i}",
                kind="faq" if faq else "document",
                id=i,
                title=f"Q. {title}？" if faq else _noisy(title, rng),
                body=body,
                summary=picked[0][:80],
                url=f"/{'faq' if faq else 'documents'}/{i}",
                field=rng.choice(FIELDS),
                ministry=rng.choice(MINISTRIES),
                fiscal_year=rng.choice([None, *range(2015, 2026)]),
                visibility=frozenset(rng.choice(tokens)),
            )
        )
    return docs


# --- SQLite FTS5 ----------------------------------------------------------------


def _gram_tokens(text: str) -> tuple[str, str]:
    """Encode normalised uni- and bigrams as ASCII tokens (hex code points).

    Grams containing whitespace become a filler token so that positions stay in
    step with Whoosh's (a phrase never spans a whitespace gap).
    """
    norm = normalize(text)
    uni, bi = [], []
    for i, char in enumerate(norm):
        uni.append("zz" if char.isspace() else f"{ord(char):x}")
        if i + 1 < len(norm):
            nxt = norm[i + 1]
            bi.append("zz" if char.isspace() or nxt.isspace() else f"{ord(char):x}x{ord(nxt):x}")
    return " ".join(uni), " ".join(bi)


def _visible(doc: SearchDoc) -> int:
    return int(bool(doc.visibility & TOKENS))


def build_fts_bigram(path: Path, docs: list[SearchDoc]) -> sqlite3.Connection:
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE docs (id INTEGER PRIMARY KEY, title TEXT, visible INTEGER);
        CREATE VIRTUAL TABLE fts USING fts5(title_uni, title_bi, body_uni, body_bi,
                                            tokenize='ascii', content='');
        """
    )
    with db:
        for doc in docs:
            db.execute("INSERT INTO docs VALUES (?, ?, ?)", (doc.id, doc.title, _visible(doc)))
            db.execute("INSERT INTO fts(rowid, title_uni, title_bi, body_uni, body_bi) VALUES (?, ?, ?, ?, ?)",
                       (doc.id, *_gram_tokens(doc.title), *_gram_tokens(doc.body)))
        db.execute("INSERT INTO fts(fts) VALUES ('optimize')")
    return db


def build_fts_trigram(path: Path, docs: list[SearchDoc]) -> sqlite3.Connection:
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE docs (id INTEGER PRIMARY KEY, title TEXT, visible INTEGER);
        CREATE VIRTUAL TABLE fts USING fts5(title, body, tokenize='trigram');
        """
    )
    with db:
        for doc in docs:
            db.execute("INSERT INTO docs VALUES (?, ?, ?)", (doc.id, doc.title, _visible(doc)))
            db.execute("INSERT INTO fts(rowid, title, body) VALUES (?, ?, ?)",
                       (doc.id, normalize(doc.title), normalize(doc.body)))
        db.execute("INSERT INTO fts(fts) VALUES ('optimize')")
    return db


def fts_bigram_search(db: sqlite3.Connection, text: str) -> tuple[int, list[str]]:
    part = normalize(text)
    grams = query_grams(part)
    if len(part) == 1:
        match = "{title_uni body_uni} : " + f"{ord(part):x}"
    else:
        match = '{title_bi body_bi} : "' + " ".join(f"{ord(g[0]):x}x{ord(g[1]):x}" for g in grams) + '"'
    total = db.execute(
        "SELECT count(*) FROM fts JOIN docs ON docs.id = fts.rowid WHERE fts MATCH ? AND docs.visible", (match,)
    ).fetchone()[0]
    titles = [r[0] for r in db.execute(
        "SELECT docs.title FROM fts JOIN docs ON docs.id = fts.rowid WHERE fts MATCH ? AND docs.visible "
        "ORDER BY fts.rank LIMIT 10", (match,))]
    return total, titles


def fts_trigram_search(db: sqlite3.Connection, text: str) -> tuple[int, list[str]]:
    part = normalize(text)
    if len(part) >= 3:
        match = '"' + part.replace('"', '""') + '"'
        where, args, order = "fts MATCH ?", (match,), "fts.rank"
    else:
        like = "%" + part.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where, args, order = "(fts.title LIKE ? ESCAPE '\\' OR fts.body LIKE ? ESCAPE '\\')", (like, like), "fts.rowid"
    total = db.execute(
        f"SELECT count(*) FROM fts JOIN docs ON docs.id = fts.rowid WHERE {where} AND docs.visible", args
    ).fetchone()[0]
    titles = [r[0] for r in db.execute(
        f"SELECT docs.title FROM fts JOIN docs ON docs.id = fts.rowid WHERE {where} AND docs.visible "
        f"ORDER BY {order} LIMIT 10", args)]
    return total, titles


# --- queries and timing -------------------------------------------------------------


def pick_queries(docs: list[SearchDoc], count: Callable[[str], int]) -> dict[int, list[tuple[str, int]]]:
    """Per length, up to 8 queries matching <= 1,000 visible docs and 8 matching more."""
    rng = random.Random(SEED)
    chosen: dict[int, list[tuple[str, int]]] = {}
    for length in LENGTHS:
        candidates: dict[str, int] = {}
        attempts = 0
        while len(candidates) < 300 and attempts < 20_000:
            attempts += 1
            text = normalize(rng.choice(docs).body)
            if len(text) <= length:
                continue
            start = rng.randrange(len(text) - length)
            q = text[start : start + length]
            if _WORD.match(q) and not q.isdigit() and q not in candidates:
                candidates[q] = count(q)
        ranked = sorted(candidates.items(), key=lambda kv: (kv[1], kv[0]))
        rare = [kv for kv in ranked if 1 <= kv[1] <= RARE_LIMIT]
        common = [kv for kv in ranked if kv[1] > RARE_LIMIT]
        chosen[length] = _spread(rare) + _spread(common)
    return chosen


def _spread(items: list, k: int = QUERIES_PER_CLASS) -> list:
    if len(items) <= k:
        return items
    return [items[round(i * (len(items) - 1) / (k - 1))] for i in range(k)]


def timed(fn: Callable[[], object], repeat: int) -> tuple[list[float], list[float], object]:
    """Return wall-clock and CPU milliseconds per run (CPU time is robust on a busy machine)."""
    result = fn()  # warm-up
    wall, cpu = [], []
    for _ in range(repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        result = fn()
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
    return wall, cpu, result


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def size_mb(path: Path) -> float:
    if path.is_file():
        return path.stat().st_size / 1e6
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink()) / 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=10_000, help="documents (FAQs are added: docs/10)")
    parser.add_argument("--out", type=Path, default=None, help="work dir (default: a temp dir, removed)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per query after one warm-up")
    parser.add_argument("--reuse", action="store_true", help="reuse indexes already built in --out")
    parser.add_argument("--pg", default=None, help="PostgreSQL URL: also bench the PostgreSQL backend")
    parser.add_argument("--keep-pg", action="store_true", help="keep (and with --reuse, reuse) the PG table")
    args = parser.parse_args(argv)

    out = args.out or Path(tempfile.mkdtemp(prefix="search-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    try:
        run(args.docs, out, args.repeat, args.reuse, args.pg, args.keep_pg)
    finally:
        if args.out is None:
            shutil.rmtree(out, ignore_errors=True)


def run(n_docs: int, out: Path, repeat: int, reuse: bool = False, pg_url: str | None = None,
        keep_pg: bool = False) -> None:
    started = time.perf_counter()
    docs = corpus(n_docs, n_docs // 10)
    chars = sum(len(d.title) + len(d.body) for d in docs)
    print(f"corpus: {len(docs):,} docs ({n_docs:,} + {n_docs // 10:,} FAQ), {chars / 1e6:.1f} M chars, "
          f"{sum(map(_visible, docs)):,} visible to the bench scope; generated in {time.perf_counter() - started:.1f} s; "
          f"load average {_load()}")

    backend = WhooshBackend(out / "whoosh")
    reusable = reuse and backend.status()["doc_count"] == len(docs) and all(
        (out / f"{name}.sqlite").is_file() for name in ("fts5-bigram", "fts5-tri"))
    if reusable:
        bigram = sqlite3.connect(out / "fts5-bigram.sqlite")
        trigram = sqlite3.connect(out / "fts5-tri.sqlite")
        print("build: reusing the indexes in --out (no build times)")
    else:
        for name in ("whoosh", "fts5-bigram", "fts5-tri"):
            for stale in out.glob(f"{name}*"):
                shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
        builds: dict[str, tuple[float, float]] = {}
        steps = (("whoosh", lambda: backend.rebuild(docs)),
                 ("fts5-bigram", lambda: build_fts_bigram(out / "fts5-bigram.sqlite", docs)),
                 ("fts5-tri", lambda: build_fts_trigram(out / "fts5-tri.sqlite", docs)))
        built = {}
        for name, step in steps:
            t0, c0 = time.perf_counter(), time.process_time()
            built[name] = step()
            builds[name] = (time.perf_counter() - t0, time.process_time() - c0)
        bigram, trigram = built["fts5-bigram"], built["fts5-tri"]
        for name, (seconds, cpu) in builds.items():
            print(f"build {name:<12} {seconds:7.1f} s wall, {cpu:7.1f} s cpu")
    for name, path in (("whoosh", out / "whoosh"), ("fts5-bigram", out / "fts5-bigram.sqlite"),
                       ("fts5-tri", out / "fts5-tri.sqlite")):
        print(f"size  {name:<12} {size_mb(path):7.1f} MB")

    pg = pg_engine = None
    if pg_url:
        import sqlalchemy as sa

        from pmo.search.pg import PostgresBackend

        pg_engine = sa.create_engine(pg_url)
        pg = PostgresBackend(pg_engine, table="search_bench")
        if reuse and keep_pg and pg.status()["doc_count"] == len(docs):
            print("build pg: reusing table search_bench")
        else:
            t0, c0 = time.perf_counter(), time.process_time()
            pg.rebuild(docs)
            print(f"build {'pg':<12} {time.perf_counter() - t0:7.1f} s wall, {time.process_time() - c0:7.1f} s cpu "
                  "(client side: normalising and gram extraction)")
        with pg_engine.connect() as conn:
            mb = conn.execute(sa.text("SELECT pg_total_relation_size('search_bench')")).scalar_one() / 1e6
        print(f"size  {'pg':<12} {mb:7.1f} MB (table, TOAST and indexes)")

    fresh = WhooshBackend(out / "whoosh")
    t0 = time.perf_counter()
    fresh.status()
    print(f"whoosh searcher open (first use in a worker): {(time.perf_counter() - t0) * 1000:.0f} ms")

    queries = pick_queries(docs, lambda q: fts_bigram_search(bigram, q)[0])
    engines: dict[str, Callable[[str], tuple[int, list[str]]]] = {
        "whoosh": lambda q: _whoosh(backend, q, facets=True),
        "whoosh-nf": lambda q: _whoosh(backend, q, facets=False),
        "fts5-bigram": lambda q: fts_bigram_search(bigram, q),
        "fts5-tri": lambda q: fts_trigram_search(trigram, q),
    }
    if pg is not None:
        engines["pg"] = lambda q: _whoosh(pg, q, facets=True)
        engines["pg-nf"] = lambda q: _whoosh(pg, q, facets=False)
    # stats[clock][engine][length] = (times of all queries, times of queries matching <= RARE_LIMIT)
    stats: dict[str, dict[str, dict[int, tuple[list[float], list[float]]]]] = {
        clock: {e: {} for e in engines} for clock in ("wall", "cpu")}
    mismatches = []
    for length, items in queries.items():
        for engine, fn in engines.items():
            runs = {"wall": ([], []), "cpu": ([], [])}
            for q, expected in items:
                wall, cpu, (total, _titles) = timed(lambda: fn(q), repeat)  # noqa: B023
                for clock, times in (("wall", wall), ("cpu", cpu)):
                    runs[clock][0].extend(times)
                    if expected <= RARE_LIMIT:
                        runs[clock][1].extend(times)
                if total != expected:
                    mismatches.append((engine, q, total, expected))
            for clock in runs:
                stats[clock][engine][length] = runs[clock]

    print("\nqueries (length: count of rare <= 1,000 docs + common; matches min..max):")
    for length, items in queries.items():
        rare = [c for _, c in items if c <= RARE_LIMIT]
        common = [c for _, c in items if c > RARE_LIMIT]
        print(f"  {length} chars: {len(rare)} rare {_range(rare)} + {len(common)} common {_range(common)}; "
              f"e.g. {', '.join(q for q, _ in items[:3])}")

    for clock in ("wall", "cpu"):
        table = stats[clock]
        print(f"\n{clock} ms per query, top 10 with titles + exact count (p50 / p95 over all timed runs):")
        print(f"  {'engine':<12}" + "".join(f"{f'{n} char':>16}" for n in LENGTHS) + f"{'rare<=1000 p95':>17}")
        for engine in engines:
            cells = "".join(f"{pct(table[engine][n][0], 50):7.1f} /{pct(table[engine][n][0], 95):7.1f}"
                            for n in LENGTHS)
            rare_all = [t for n in LENGTHS for t in table[engine][n][1]]
            print(f"  {engine:<12}{cells}{pct(rare_all, 95):17.1f}")

    table = stats["wall"]
    print("\nratio to FTS5-bigram, wall (p50, p95):")
    for engine in [e for e in engines if not e.startswith("fts5")]:
        cells = "".join(
            f"{pct(table[engine][n][0], 50) / pct(table['fts5-bigram'][n][0], 50):7.1f}x/"
            f"{pct(table[engine][n][0], 95) / pct(table['fts5-bigram'][n][0], 95):6.1f}x" for n in LENGTHS)
        print(f"  {engine:<12}{cells}")

    for full in [e for e in ("whoosh", "pg") if e in engines]:
        print(f"\n{full} (full engine) over queries matching <= 1,000 docs, target p95 < 100 ms (wall | cpu"
              f"{' of this process; the server works too' if full == 'pg' else ''}):")
        for n in [*LENGTHS, 0]:
            wall = [t for m in LENGTHS for t in table[full][m][1]] if n == 0 else table[full][n][1]
            cpu = ([t for m in LENGTHS for t in stats["cpu"][full][m][1]] if n == 0
                   else stats["cpu"][full][n][1])
            verdict = "-" if not wall else ("ok" if pct(wall, 95) < 100 else "OVER")
            label = "all" if n == 0 else f"{n} chars"
            print(f"  {label:>8}: p50 {pct(wall, 50):6.1f}  p95 {pct(wall, 95):6.1f} {verdict:<4} | "
                  f"cpu p50 {pct(cpu, 50):6.1f}  p95 {pct(cpu, 95):6.1f}")
        fts = [t for m in LENGTHS for t in table["fts5-bigram"][m][1]]
        mine = [t for m in LENGTHS for t in table[full][m][1]]
        print(f"  rare queries p95 {full} / fts5-bigram: {pct(mine, 95) / pct(fts, 95):.1f}x "
              f"({pct(mine, 95):.1f} / {pct(fts, 95):.1f} ms wall)")

    if mismatches:
        print(f"\ncount mismatches vs FTS5-bigram ({len(mismatches)}):")
        for engine, q, total, expected in mismatches[:20]:
            print(f"  {engine:<12} {q!r}: {total} != {expected}")
    else:
        print("\nall engines returned identical exact counts for every query")
    if pg is not None and not keep_pg:
        with pg_engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE IF EXISTS search_bench"))
    print(f"\ntotal bench time {time.perf_counter() - started:.0f} s; load average now {_load()}")


def _whoosh(backend: WhooshBackend | object, q: str, *, facets: bool) -> tuple[int, list[str]]:
    results = backend.search(SearchQuery(q, TOKENS, per_page=10, facets=facets))
    if results.degraded:
        raise RuntimeError(results.message)
    return results.total, [hit.title for hit in results.hits]


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def _range(values: list[int]) -> str:
    return f"[{min(values)}..{max(values)}]" if values else "[]"


if __name__ == "__main__":
    main()
