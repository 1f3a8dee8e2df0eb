"""Japanese text normalisation and the Whoosh analyzer built on it.

Documents and queries go through the same ``normalize`` so that full-width and
half-width forms, hiragana and katakana, upper and lower case, Kangxi radicals
and PDF line breaks inside words all meet in one spelling. Indexing then uses
unigrams plus bigrams (see /work/shared/SEARCH.md: recall 1.0 on 1-8 character
substrings, where morphological analyzers miss 国 in 国民).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from whoosh.analysis import Filter, NgramTokenizer

__all__ = [
    "MAX_QUERY_CHARS",
    "MAX_QUERY_PARTS",
    "Normalized",
    "ParsedQuery",
    "JapaneseNgramTokenizer",
    "japanese_analyzer",
    "normalize",
    "normalize_with_map",
    "parse_query",
    "query_grams",
    "JA_GAP",
]

MAX_QUERY_CHARS = 200
MAX_QUERY_PARTS = 10

# Characters that take part in "Japanese" text: CJK punctuation, kana (full and
# half width), CJK ideographs and radicals. Whitespace between two of them is a
# line break or layout artefact (PDF extraction turns 介護保険 into 介\n護保険),
# never a word separator, so it is removed.
_JA_CLASS = (
    "\u2e80-\u2fdf"  # CJK radicals supplement, Kangxi radicals
    "\u3001-\u303f"  # CJK symbols and punctuation (not U+3000, the ideographic space)
    "\u3040-\u30ff"  # hiragana, katakana, ー
    "\u31f0-\u31ff"  # katakana phonetic extensions
    "\u3400-\u4dbf"  # CJK extension A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\uf900-\ufaff"  # CJK compatibility ideographs
    "\uff61-\uff9f"  # half-width CJK punctuation and katakana
    "\U00020000-\U0003134f"  # CJK extensions B-H
)
JA_GAP = re.compile(f"(?<=[{_JA_CLASS}])\\s+(?=[{_JA_CLASS}])")

# ぁ..ゖ -> ァ..ヶ, ゝゞ -> ヽヾ: one spelling for kana, so まいなんばー finds マイナンバー.
_KANA_FOLD = {code: code + 0x60 for code in range(0x3041, 0x3097)} | {0x309D: 0x30FD, 0x309E: 0x30FE}


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower().translate(_KANA_FOLD)


class _PieceTable(dict):
    """Per-character normalised form, computed once per distinct character.

    Normalising per character (instead of the whole string at once) lets
    ``normalize_with_map`` know which original characters produced each
    normalised one, which the snippet highlighter needs. A cache keeps it fast.
    """

    combiners: set[str]

    def __init__(self) -> None:
        super().__init__()
        self.combiners = set()

    def __missing__(self, char: str) -> str:
        piece = _fold(char)
        if piece and unicodedata.combining(piece[0]):
            # Voiced sound marks (ﾞ, U+3099) must merge with the preceding kana.
            self.combiners.add(char)
        if len(self) < 200_000:
            self[char] = piece
        return piece


_PIECES = _PieceTable()


def _pieces(text: str) -> tuple[list[str], dict[int, int]]:
    """Return the normalised piece of every character and the spans of merged groups."""
    pieces = list(map(_PIECES.__getitem__, text))
    group_end: dict[int, int] = {}
    if _PIECES.combiners and not _PIECES.combiners.isdisjoint(text):
        base = -1
        for i, char in enumerate(text):
            if char in _PIECES.combiners and base >= 0:
                # ｶﾞ -> ガ: compose the mark into its base character's piece.
                pieces[base] = _fold(pieces[base] + pieces[i])
                pieces[i] = ""
                group_end[base] = i + 1
            elif pieces[i]:
                base = i
    return pieces, group_end


def normalize(text: str) -> str:
    """Return ``text`` in the one spelling both the index and queries use.

    NFKC (full-width letters and digits, half-width katakana, Kangxi radicals),
    lower case, hiragana folded to katakana, whitespace between Japanese
    characters removed.
    """
    if not text:
        return ""
    pieces, _ = _pieces(text)
    return JA_GAP.sub("", "".join(pieces))


@dataclass(frozen=True, slots=True)
class Normalized:
    """Normalised text plus, per normalised character, its original span.

    ``starts[i]``/``ends[i]`` give the slice of the original text that produced
    normalised character ``i``; this lets a match found in normalised text be
    highlighted in the text the user wrote.
    """

    text: str
    starts: list[int]
    ends: list[int]


def normalize_with_map(text: str) -> Normalized:
    """Normalise ``text`` as ``normalize`` does, keeping the offset map."""
    pieces, group_end = _pieces(text)
    starts = [i for i, piece in enumerate(pieces) for _ in piece]
    if group_end:
        ends = [group_end.get(i, i + 1) for i in starts]
    else:
        ends = [i + 1 for i in starts]
    joined = "".join(pieces)
    if not JA_GAP.search(joined):
        return Normalized(joined, starts, ends)
    out: list[str] = []
    new_starts: list[int] = []
    new_ends: list[int] = []
    last = 0
    for match in JA_GAP.finditer(joined):
        out.append(joined[last : match.start()])
        new_starts.extend(starts[last : match.start()])
        new_ends.extend(ends[last : match.start()])
        last = match.end()
    out.append(joined[last:])
    new_starts.extend(starts[last:])
    new_ends.extend(ends[last:])
    return Normalized("".join(out), new_starts, new_ends)


class JapaneseNgramTokenizer(NgramTokenizer):
    """NgramTokenizer(1, 2) over normalised text: every unigram and bigram.

    A unigram and the bigram starting at the same character share a position,
    so the bigrams of a string have consecutive positions and a phrase of bigrams
    finds any substring.
    """

    def __init__(self) -> None:
        super().__init__(minsize=1, maxsize=2)

    def __call__(self, value, **kwargs):  # noqa: ANN001, ANN204 - Whoosh's signature
        return super().__call__(normalize(value), **kwargs)


class BlankGramFilter(Filter):
    """Drop grams containing whitespace: queries are split on whitespace, so they never match."""

    def __call__(self, tokens):  # noqa: ANN001, ANN204 - Whoosh's signature
        for token in tokens:
            text = token.text
            if not (text[0].isspace() or text[-1].isspace()):
                yield token


def japanese_analyzer():  # noqa: ANN201 - a Whoosh CompositeAnalyzer
    """Return the analyzer for every full-text field (uni+bigrams of normalised text)."""
    return JapaneseNgramTokenizer() | BlankGramFilter()


@dataclass(frozen=True, slots=True)
class ParsedQuery:
    """What a user's query string means: normalised parts that must all occur."""

    parts: tuple[str, ...]
    truncated: bool = False


def parse_query(text: str | None) -> ParsedQuery:
    """Split a user's query into normalised parts; never raises on any input.

    No query syntax exists: ``*``, ``"``, ``AND``, ``field:x`` are literal text.
    Input beyond ``MAX_QUERY_CHARS`` characters or ``MAX_QUERY_PARTS`` parts is cut.
    """
    text = text or ""
    truncated = len(text) > MAX_QUERY_CHARS
    text = text[:MAX_QUERY_CHARS]
    parts: list[str] = []
    for raw in text.split():
        for part in normalize(raw).split():
            if part not in parts:
                parts.append(part)
    if len(parts) > MAX_QUERY_PARTS:
        parts = parts[:MAX_QUERY_PARTS]
        truncated = True
    return ParsedQuery(tuple(parts), truncated)


def query_grams(part: str) -> list[str]:
    """Return the indexed grams a normalised query part is made of, in order."""
    if len(part) <= 1:
        return [part] if part else []
    return [part[i : i + 2] for i in range(len(part) - 1)]
