"""Upload checks, safe file names and text extraction (SECURITY.md FILE-01 to FILE-06).

Every upload is judged by its content, never by its name or the browser's Content-Type: the
extension must be on the feature's allowlist *and* agree with what the bytes are. Archives
(ZIP and the OOXML formats, which are ZIPs) are inspected in memory without extracting, with
limits checked on the declared sizes and again while decompressing, because a central directory
can lie. No Flask, no disk writes; the only I/O is the optional virus scan (FILE-08) that the
web layer installs with ``set_scan_provider``.

Policy decisions (documented here so every upload feature shares them):

* Accepted kinds: pdf, xlsx, docx, pptx, csv, zip. Legacy .xls/.doc/.ppt (OLE) are refused.
* Macro-enabled Office files (.xlsm/.docm/.pptm/.xlsb, or any vbaProject.bin) and files with
  ActiveX controls are refused with the reason. Embedded objects inside OOXML are kept as opaque
  parts (they are never opened here); the virus scanner (FILE-08) is the layer for their content.
* Nested archives are refused inside a .zip upload (.zip/.7z/.rar/.lzh/.gz/... members or any
  member that is a ZIP but not an Office document). Office documents inside a ZIP are allowed
  as opaque members and are not recursed into.
* Encrypted (password) ZIP entries are refused: nothing downstream could inspect them.
* An OOXML part with a DOCTYPE or ENTITY declaration is refused outright (XXE, billion laughs);
  Office never writes one. defusedxml must be installed so openpyxl parses with it too.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import logging
import re
import stat
import struct
import unicodedata
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import defusedxml  # noqa: F401  (FILE-04: openpyxl only parses safely when this is importable)
import defusedxml.ElementTree as SafeET
import openpyxl.xml

if not openpyxl.xml.DEFUSEDXML:  # e.g. OPENPYXL_DEFUSEDXML=False in the environment
    raise ImportError("openpyxl is not using defusedxml; refusing to handle uploads (FILE-04)")

__all__ = [
    "DEFAULT_ZIP_LIMITS",
    "KINDS",
    "MIME_TYPES",
    "UploadInfo",
    "UploadRejected",
    "ZipLimits",
    "check_archive",
    "content_disposition",
    "detect_text_encoding",
    "extract_text",
    "find_decode_error",
    "inspect_upload",
    "safe_display_name",
    "scan_upload",
    "set_scan_provider",
]

KINDS = frozenset({"pdf", "xlsx", "docx", "pptx", "csv", "zip"})

MIME_TYPES = {
    "pdf": "application/pdf",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "csv": "text/csv",
    "zip": "application/zip",
}

_KIND_LABELS = {
    "pdf": "PDF",
    "xlsx": "Excel（.xlsx）",
    "docx": "Word（.docx）",
    "pptx": "PowerPoint（.pptx）",
    "csv": "CSV",
    "zip": "ZIP",
}

# (main part, its content type) for each OOXML kind.
_OOXML_MAIN = {
    "xlsx": ("xl/workbook.xml", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"),
    "docx": (
        "word/document.xml",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
    ),
    "pptx": (
        "ppt/presentation.xml",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml",
    ),
}
_OOXML_EXTS = frozenset({"xlsx", "docx", "pptx", "xltx", "dotx", "potx", "ppsx"})

_MACRO_EXTS = frozenset({"xlsm", "xltm", "xlam", "xlsb", "docm", "dotm", "pptm", "potm", "ppsm", "ppam"})
_LEGACY_OFFICE_EXTS = frozenset({"xls", "xlt", "doc", "dot", "ppt", "pps", "pot", "rtf"})
_ACTIVE_EXTS = frozenset(
    {"html", "htm", "xhtml", "shtml", "mht", "mhtml", "svg", "svgz", "xsl", "xslt", "js", "mjs", "jse",
     "vbs", "vbe", "wsf", "wsh", "hta", "swf", "php", "jsp", "asp", "aspx", "cgi", "pl", "py", "rb"}
)
_EXECUTABLE_EXTS = frozenset(
    {"exe", "dll", "com", "scr", "pif", "cpl", "msi", "msp", "msc", "bat", "cmd", "ps1", "psm1",
     "sh", "bash", "jar", "app", "dmg", "pkg", "deb", "rpm", "apk", "lnk", "url", "reg", "inf",
     "sys", "drv", "ocx", "iso", "img", "vhd", "vhdx", "chm", "hlp", "application", "gadget"}
)
_ARCHIVE_EXTS = frozenset({"zip", "7z", "rar", "lzh", "lha", "gz", "tgz", "bz2", "tbz", "xz", "txz",
                           "zst", "tar", "cab", "arj", "z", "zipx"})


class UploadRejected(Exception):
    """An upload failed a check; ``message`` is Japanese and safe to show to the uploader.

    ``code`` is a stable English reason for audit logs and tests.
    """

    def __init__(self, message: str, code: str = "rejected") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.detail: str | None = None  # for the audit entry (e.g. the virus signature name)


@dataclass(frozen=True)
class UploadInfo:
    """What the server decided about an accepted upload (store this, not the client's claims)."""

    kind: str
    mime_type: str
    size: int
    sha256: str
    display_name: str
    encoding: str | None = None  # csv only: 'utf-8' or 'cp932'


@dataclass(frozen=True)
class ZipLimits:
    """Bounds for archive inspection; declared sizes and actual decompressed bytes both count."""

    max_entries: int = 5_000
    max_entry_size: int = 200 * 1024 * 1024
    max_total_size: int = 400 * 1024 * 1024
    max_ratio: int = 200  # uncompressed / compressed, checked for entries above ratio_floor
    ratio_floor: int = 1024 * 1024
    max_name_length: int = 1024


DEFAULT_ZIP_LIMITS = ZipLimits()

_log = logging.getLogger("pmo.files")

_CHUNK = 64 * 1024
_MB = 1024 * 1024


# ---------------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------------

_WINDOWS_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL"} | {f"COM{i}" for i in range(1, 10)} | {f"LPT{i}" for i in range(1, 10)}
)
_WINDOWS_INVALID = str.maketrans({c: "_" for c in '<>:"|?*'})
_ZWJ = "\u200d"  # keeps emoji sequences intact
DISPLAY_NAME_MAX = 120
_FALLBACK_NAME = "ファイル"


def safe_display_name(name: str, max_length: int = DISPLAY_NAME_MAX) -> str:
    """Clean a client file name for display and downloads, keeping Japanese intact.

    NFC (macOS sends NFD), drop control and bidi-override characters (RLO can disguise
    'exe.pdf'), keep only the last path component (either separator), replace characters
    Windows forbids, and cap the length while keeping the extension. Never used as a
    storage path: files are stored under generated ids (FILE-05).
    """
    name = unicodedata.normalize("NFC", str(name))
    name = "".join(
        c for c in name
        if c == _ZWJ or unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Zl", "Zp")
    )
    name = re.split(r"[/\\]", name)[-1]
    name = name.translate(_WINDOWS_INVALID)
    name = name.strip().rstrip(". ").strip()  # Windows drops trailing dots and spaces
    if name in ("", ".", ".."):
        return _FALLBACK_NAME
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    if stem.upper() in _WINDOWS_RESERVED:
        name = "_" + name
    if len(name) > max_length:
        if dot and 0 < len(ext) <= 10 and stem:
            keep = max_length - len(ext) - 1
            name = name[: len(name) - len(ext) - 1][:keep].rstrip(". ") + "." + ext
        else:
            name = name[:max_length]
    return name


def content_disposition(display_name: str) -> str:
    """Build an attachment Content-Disposition with an ASCII fallback and RFC 5987 UTF-8 name."""
    name = safe_display_name(display_name)
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    fallback_stem = _ascii_only(stem) or "download"
    fallback_ext = _ascii_only(ext)
    fallback = fallback_stem + ("." + fallback_ext if fallback_ext else "")
    encoded = quote(name, safe="!#$&+-.^_`|~")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


def _ascii_only(text: str) -> str:
    """Reduce text to printable ASCII that is safe inside a quoted header value."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r'[^A-Za-z0-9!#$%&\'()+,\-.;=@\[\]^_`{}~ ]', "_", text)
    return text.strip(" ._")


def _extension_parts(name: str) -> tuple[str, list[str]]:
    """Return the final extension and the inner dotted parts of a file name, lower-cased."""
    parts = name.lower().split(".")
    if len(parts) < 2:
        return "", []
    return parts[-1].strip(), [p.strip() for p in parts[1:-1]]


# Checked on the part before the final extension too ('請求書.exe.pdf'); words that are also
# common in names ('example.com.pdf') are left out of that inner check.
_INNER_SUSPICIOUS = (_EXECUTABLE_EXTS | _ACTIVE_EXTS | _MACRO_EXTS) - {
    "com", "url", "app", "img", "iso", "pl", "py", "rb", "sh", "inf", "sys", "xml", "cgi", "application",
}


def _name_policy(name: str, where: str) -> None:
    """Refuse names whose final (or second-to-last) extension marks active, executable or macro content."""
    final, inner = _extension_parts(name)
    checks = [final] + [e for e in inner[-1:] if e in _INNER_SUSPICIOUS]
    for ext in checks:
        if ext in _EXECUTABLE_EXTS:
            raise UploadRejected(f"{where}実行ファイル（.{ext}）は受け付けられません。", "executable")
        if ext in _ACTIVE_EXTS:
            raise UploadRejected(
                f"{where}HTML・SVG・スクリプト等（.{ext}）は受け付けられません。", "active_content"
            )
        if ext in _MACRO_EXTS:
            raise UploadRejected(
                f"{where}マクロ有効ファイル（.{ext}）は受け付けられません。"
                "マクロなしの形式（.xlsx/.docx/.pptx）で保存し直してください。",
                "macro",
            )


# ---------------------------------------------------------------------------------------------
# Content sniffing
# ---------------------------------------------------------------------------------------------

_SNIFF_LABELS = {
    "pdf": "PDF",
    "zip": "ZIP形式",
    "exe": "実行ファイル",
    "ole": "旧形式のOffice文書（.xls/.doc等）",
    "markup": "HTML/SVG/XML",
    "image": "画像",
    "text": "テキスト",
    "utf16": "UTF-16のテキスト。UTF-8またはShift_JISで保存し直してください",
    "unknown": "不明な形式",
}


def _sniff(data: bytes) -> str:
    """Name what the bytes look like, for decisions and for messages."""
    head = data[:512]
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head.startswith((b"MZ", b"\x7fELF", b"\xca\xfe\xba\xbe", b"\xcf\xfa\xed\xfe", b"#!")):
        return "exe"
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return "ole"
    if head.startswith((b"\x89PNG", b"GIF8", b"\xff\xd8\xff")):
        return "image"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf16"
    stripped = head.lstrip(b"\xef\xbb\xbf\xff\xfe\x00 \t\r\n").replace(b"\x00", b"")
    if re.match(rb"<[!?A-Za-z]", stripped):  # '<html', '<svg', '<?xml', '<!DOCTYPE'; not '<注>'
        return "markup"
    if b"\x00" in data[:8192]:
        return "unknown"
    return "text"


# Bytes Shift_JIS leaves unassigned but Python's cp932 still maps (0x80, 0xA0, 0xFD-0xFF become
# U+0080 and U+F8F0-U+F8F3). Real CP932 text never holds them, so they count as undecodable.
_CP932_UNASSIGNED = re.compile("[\x80\uf8f0-\uf8f3]")


def detect_text_encoding(data: bytes) -> str | None:
    """Return 'utf-8-sig' or 'cp932' if ``data`` decodes strictly in it, else None.

    UTF-8 is tried first: valid UTF-8 with Japanese in it is almost never valid CP932 by chance.
    Decoding is incremental so a large file is never held twice as text.
    """
    for encoding in ("utf-8-sig", "cp932"):
        decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
        try:
            for start in range(0, len(data), _MB):
                text = decoder.decode(data[start:start + _MB])
                if encoding == "cp932" and _CP932_UNASSIGNED.search(text):
                    raise UnicodeDecodeError(encoding, b"", 0, 1, "unassigned byte")
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            continue
        return encoding
    return None


def find_decode_error(data: bytes, encoding: str) -> tuple[int, int] | None:
    """Return the byte span of the first undecodable sequence in ``encoding``, or None.

    Used on the error path only, to tell the user where the bad byte is.
    """
    if encoding == "utf-8-sig":
        offset = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
        try:
            data[offset:].decode("utf-8")
        except UnicodeDecodeError as exc:
            return exc.start + offset, exc.end + offset
        return None
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        return exc.start, exc.end
    if encoding == "cp932" and (stray := _CP932_UNASSIGNED.search(text)):
        start = len(text[: stray.start()].encode("cp932"))
        return start, start + 1
    return None


# ---------------------------------------------------------------------------------------------
# Archives
# ---------------------------------------------------------------------------------------------

_LOCAL_HEADER = struct.Struct("<4sHHHHHLLLHH")
_ALLOWED_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)


def _member_name(info: zipfile.ZipInfo) -> str:
    """Recover the real member name: Windows tools write CP932 without the UTF-8 flag.

    Decoding such names as cp437 (zipfile's default) would turn the second byte of 表 or ソ
    into a backslash and make a harmless Japanese name look like a path trick.
    """
    if info.flag_bits & 0x800:
        return info.filename
    raw = info.orig_filename.encode("cp437", "replace")
    for encoding in ("utf-8", "cp932"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return info.orig_filename


def _check_member_name(name: str, limits: ZipLimits) -> None:
    """Refuse absolute, drive-letter, backslash and parent-directory member names (FILE-03)."""
    shown = name[:80]
    if len(name) > limits.max_name_length or any(unicodedata.category(c) == "Cc" for c in name):
        raise UploadRejected(f"ZIP内に不正なファイル名（{shown!r}）があります。", "zip_bad_name")
    if "\\" in name:
        raise UploadRejected(
            f"ZIP内のファイル名「{shown}」に「\\」が含まれています。", "zip_path_traversal"
        )
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise UploadRejected(f"ZIP内に絶対パスのファイル「{shown}」があります。", "zip_path_traversal")
    if ".." in name.split("/"):
        raise UploadRejected(
            f"ZIP内のファイル「{shown}」が親フォルダ（..）を指しています。", "zip_path_traversal"
        )


def _check_local_header(data: bytes, info: zipfile.ZipInfo, shown: str) -> None:
    """Compare the local header (or data descriptor) with the central directory.

    A central directory that understates sizes fools tools that trust it, while the data
    itself inflates to far more; any disagreement is refused.
    """
    bad = UploadRejected(
        f"ZIP内のファイル「{shown}」のサイズ情報が一致しません（破損または改ざんの可能性）。",
        "zip_size_mismatch",
    )
    offset = info.header_offset
    if offset < 0 or offset + _LOCAL_HEADER.size > len(data):
        raise bad
    sig, _ver, flags, method, _t, _d, crc, csize, usize, nlen, elen = _LOCAL_HEADER.unpack_from(data, offset)
    if sig != b"PK\x03\x04" or method != info.compress_type:
        raise bad
    extra_start = offset + _LOCAL_HEADER.size + nlen
    extra = data[extra_start:extra_start + elen]
    zip64 = _zip64_sizes(extra)
    if zip64 is not None and (csize == 0xFFFFFFFF or usize == 0xFFFFFFFF):
        usize, csize = zip64
    data_offset = extra_start + elen
    if flags & 0x08:  # sizes follow the data in a data descriptor
        pos = data_offset + info.compress_size
        if data[pos:pos + 4] == b"PK\x07\x08":
            pos += 4
        if zip64 is not None:  # APPNOTE 4.3.9.2: ZIP64 local header → 8-byte descriptor sizes
            fields = data[pos:pos + 20]
            if len(fields) < 20:
                raise bad
            crc, csize, usize = struct.unpack("<LQQ", fields)
        else:
            fields = data[pos:pos + 12]
            if len(fields) < 12:
                raise bad
            crc, csize, usize = struct.unpack("<LLL", fields)
    if (crc, csize, usize) != (info.CRC, info.compress_size, info.file_size):
        raise bad
    if data_offset + info.compress_size > len(data):
        raise bad


def _zip64_sizes(extra: bytes) -> tuple[int, int] | None:
    """Return (uncompressed, compressed) from a local header's ZIP64 extra field, if present."""
    pos = 0
    while pos + 4 <= len(extra):
        header_id, size = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4:pos + 4 + size]
        if header_id == 0x0001:
            if len(body) < 16:  # the spec requires both sizes here; anything else will not match
                return 0xFFFFFFFF, 0xFFFFFFFF
            usize, csize = struct.unpack_from("<QQ", body)
            return usize, csize
        pos += 4 + size
    return None


def _stream_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int) -> Iterator[bytes]:
    """Yield a member's bytes in chunks, failing once more than ``cap`` bytes come out."""
    produced = 0
    with zf.open(info) as fh:
        while chunk := fh.read(_CHUNK):
            produced += len(chunk)
            if produced > cap:
                raise _Overflow
            yield chunk


class _Overflow(Exception):
    """Raised while streaming when a member inflates past its declared or allowed size."""


_XML_DECLARATION_TRAPS = re.compile(rb"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_XML_PART = re.compile(r"\.(?:xml|rels|vml)$", re.IGNORECASE)


def check_archive(data: bytes, kind: str, limits: ZipLimits = DEFAULT_ZIP_LIMITS, name: str = "") -> None:
    """Inspect a ZIP or OOXML file in memory and raise ``UploadRejected`` if it is unsafe.

    Checks the declared sizes first (cheap, catches most bombs in microseconds), then
    decompresses every member in bounded chunks to enforce the same limits on real bytes,
    verify CRCs and scan XML parts for DOCTYPE/ENTITY declarations. Nothing is written to disk.
    """
    where = f"「{name}」: " if name else ""
    if not data.startswith(b"PK\x03\x04"):
        raise UploadRejected(f"{where}ZIP形式のファイルではありません。", "not_zip")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError, KeyError):
        raise UploadRejected(f"{where}ZIP形式として読み込めません（ファイルが壊れている可能性があります）。",
                             "zip_corrupt") from None
    with zf:
        infos = zf.infolist()
        if not infos:
            raise UploadRejected(f"{where}空のZIPファイルです。", "zip_empty")
        if len(infos) > limits.max_entries:
            raise UploadRejected(
                f"{where}ZIP内のファイル数が多すぎます（{len(infos):,}件、上限{limits.max_entries:,}件）。",
                "zip_too_many_entries",
            )
        names: dict[str, zipfile.ZipInfo] = {}
        declared_total = 0
        for info in infos:
            member = _member_name(info)
            _check_member_name(member, limits)
            shown = member[:80]
            if member in names:
                raise UploadRejected(f"{where}ZIP内に同じ名前のファイル「{shown}」が複数あります。",
                                     "zip_duplicate")
            names[member] = info
            if stat.S_ISLNK(info.external_attr >> 16):
                raise UploadRejected(f"{where}ZIP内にシンボリックリンク「{shown}」があります。", "zip_symlink")
            if info.flag_bits & 0x1:
                raise UploadRejected(f"{where}パスワード付き（暗号化）ZIPは受け付けられません。", "zip_encrypted")
            if info.compress_type not in _ALLOWED_METHODS:
                raise UploadRejected(f"{where}ZIP内のファイル「{shown}」は未対応の圧縮方式です。",
                                     "zip_method")
            if info.file_size > limits.max_entry_size:
                raise UploadRejected(
                    f"{where}ZIP内のファイル「{shown}」が大きすぎます（展開後{info.file_size // _MB:,}MB、"
                    f"上限{limits.max_entry_size // _MB:,}MB）。",
                    "zip_entry_too_large",
                )
            declared_total += info.file_size
            if declared_total > limits.max_total_size:
                raise UploadRejected(
                    f"{where}ZIPの展開後の合計サイズが上限（{limits.max_total_size // _MB:,}MB）を超えます。",
                    "zip_too_large",
                )
            ratio_cap = limits.max_ratio * max(info.compress_size, 1)
            if info.file_size > limits.ratio_floor and info.file_size > ratio_cap:
                raise UploadRejected(
                    f"{where}ZIP内のファイル「{shown}」の圧縮率が異常です（ZIP爆弾の可能性）。", "zip_ratio"
                )
            _check_local_header(data, info, shown)
            if kind == "zip" and not info.is_dir():
                _check_zip_member_name(member, where)

        if kind in _OOXML_MAIN:
            _check_ooxml_structure(zf, names, kind, where)

        actual_total = 0
        for member, info in names.items():
            if info.is_dir():
                continue
            shown = member[:80]
            scan_xml = kind in _OOXML_MAIN and _XML_PART.search(member) is not None
            nested_check = kind == "zip"
            tail = b""
            first = True
            try:
                for chunk in _stream_member(zf, info, min(info.file_size, limits.max_entry_size)):
                    actual_total += len(chunk)
                    if actual_total > limits.max_total_size:
                        raise _Overflow
                    if first:
                        first = False
                        if scan_xml:
                            _check_xml_encoding(chunk, shown, where)
                        if nested_check:
                            _check_nested_bytes(member, chunk, where)
                    if scan_xml:
                        window = tail + chunk
                        if _XML_DECLARATION_TRAPS.search(window):
                            raise UploadRejected(
                                f"{where}文書内のXML「{shown}」にDOCTYPE/ENTITY宣言があります"
                                "（外部実体参照攻撃の可能性があるため受け付けられません）。",
                                "xml_doctype",
                            )
                        tail = window[-32:]
            except _Overflow:
                raise UploadRejected(
                    f"{where}ZIP内のファイル「{shown}」の実際のサイズが宣言より大きいか上限を超えます"
                    "（ZIP爆弾の可能性）。",
                    "zip_size_mismatch",
                ) from None
            except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError,
                    NotImplementedError, RuntimeError, zlib.error):
                raise UploadRejected(
                    f"{where}ZIP内のファイル「{shown}」を読み込めません（破損または改ざんの可能性）。",
                    "zip_corrupt",
                ) from None


def _check_zip_member_name(member: str, where: str) -> None:
    """Apply the upload name policy to a ZIP member and refuse archives by extension."""
    shown = member[:80]
    _name_policy(member.rsplit("/", 1)[-1], f"{where}ZIP内のファイル「{shown}」: ")
    ext, _inner = _extension_parts(member.rsplit("/", 1)[-1])
    if ext in _ARCHIVE_EXTS:
        raise _nested(shown, where)


def _check_nested_bytes(member: str, first_chunk: bytes, where: str) -> None:
    """Refuse archives inside a ZIP by content; Office documents stay allowed as opaque members."""
    ext, _inner = _extension_parts(member.rsplit("/", 1)[-1])
    is_zip_bytes = first_chunk.startswith(b"PK\x03\x04")
    other_archive = first_chunk.startswith(
        (b"7z\xbc\xaf\x27\x1c", b"Rar!\x1a\x07", b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"MSCF")
    )
    if other_archive or (is_zip_bytes and ext not in _OOXML_EXTS):
        raise _nested(member[:80], where)


def _nested(shown: str, where: str) -> UploadRejected:
    return UploadRejected(
        f"{where}ZIPの中にさらに圧縮ファイル（「{shown}」）があります。展開してからZIPにまとめ直してください。",
        "zip_nested",
    )


_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


def _check_xml_encoding(first_chunk: bytes, shown: str, where: str) -> None:
    """Refuse XML parts not in UTF-8: UTF-16 or UTF-7 would hide a DOCTYPE from the byte scan."""
    head = first_chunk[:512]
    declared = _XML_ENCODING.match(head)
    if b"\x00" in head[:4] or head.startswith((b"\xff\xfe", b"\xfe\xff")) or (
        declared and declared.group(1).lower().replace(b"_", b"-") not in (b"utf-8", b"utf8", b"us-ascii")
    ):
        raise UploadRejected(
            f"{where}文書内のXML「{shown}」が未対応の文字コードです（Officeが保存したファイルを使ってください）。",
            "xml_encoding",
        )


def _check_ooxml_structure(
    zf: zipfile.ZipFile, names: dict[str, zipfile.ZipInfo], kind: str, where: str
) -> None:
    """Require [Content_Types].xml and the right main part; refuse macros and ActiveX."""
    label = _KIND_LABELS[kind]
    lowered = {n.lower(): n for n in names}
    for member in lowered:
        if member.endswith("vbaproject.bin") or member.endswith("vbaprojectsignature.bin"):
            raise UploadRejected(
                f"{where}マクロ（VBA）を含むファイルは受け付けられません。マクロなしの{label}で保存し直してください。",
                "macro",
            )
        if "/activex/" in f"/{member}":
            raise UploadRejected(f"{where}ActiveXコントロールを含むファイルは受け付けられません。", "activex")
    if "[content_types].xml" not in lowered:
        raise UploadRejected(f"{where}{label}として正しい形式ではありません（[Content_Types].xmlがありません）。",
                             "not_ooxml")
    info = names[lowered["[content_types].xml"]]
    if info.file_size > _MB:
        raise UploadRejected(f"{where}{label}として正しい形式ではありません。", "not_ooxml")
    raw = b"".join(_stream_member(zf, info, _MB))
    _check_xml_encoding(raw, "[Content_Types].xml", where)
    if _XML_DECLARATION_TRAPS.search(raw):
        raise UploadRejected(
            f"{where}文書内のXML「[Content_Types].xml」にDOCTYPE/ENTITY宣言があります"
            "（外部実体参照攻撃の可能性があるため受け付けられません）。",
            "xml_doctype",
        )
    try:
        root = SafeET.fromstring(raw)
    except Exception:  # defusedxml raises several types; any failure means "not a valid package"
        raise UploadRejected(f"{where}{label}として正しい形式ではありません。", "not_ooxml") from None
    types: dict[str, str] = {}
    defaults: dict[str, str] = {}
    for element in root:
        content_type = (element.get("ContentType") or "").strip()
        lowered_type = content_type.lower()
        if "macroenabled" in lowered_type or "vbaproject" in lowered_type or "sheet.binary" in lowered_type:
            raise UploadRejected(
                f"{where}マクロ有効・バイナリ形式のOfficeファイル（.xlsm/.docm/.pptm/.xlsb等）は受け付けられません。",
                "macro",
            )
        if element.get("PartName"):
            types[element.get("PartName", "").lstrip("/").lower()] = content_type
        elif element.get("Extension"):
            defaults[element.get("Extension", "").lower()] = content_type
    main_part, main_type = _OOXML_MAIN[kind]
    if main_part not in lowered or types.get(main_part, defaults.get("xml")) != main_type:
        actual = _ooxml_kind_of(lowered)
        if actual and actual != kind:
            raise UploadRejected(
                f"{where}拡張子は{label}ですが、内容は{_KIND_LABELS[actual]}です。", "extension_mismatch"
            )
        raise UploadRejected(f"{where}{label}として正しい形式ではありません（本体部分の種類が違います）。", "not_ooxml")


def _ooxml_kind_of(lowered_names: dict[str, str]) -> str | None:
    for kind, (part, _type) in _OOXML_MAIN.items():
        if part in lowered_names:
            return kind
    return None


# ---------------------------------------------------------------------------------------------
# The upload gate
# ---------------------------------------------------------------------------------------------


def inspect_upload(
    data: bytes,
    filename: str,
    allowed: set[str] | frozenset[str],
    max_bytes: int,
    limits: ZipLimits = DEFAULT_ZIP_LIMITS,
) -> UploadInfo:
    """Decide whether an upload is acceptable, from its bytes; raise ``UploadRejected`` if not.

    ``allowed`` is the feature's allowlist of kinds (subset of ``KINDS``); the extension picks
    the claimed kind and the content must prove it. Returns the server-side kind, MIME type,
    sha256 and a display name to store with the file's generated id.
    """
    unknown = set(allowed) - KINDS
    if unknown:
        raise ValueError(f"unknown upload kinds: {sorted(unknown)}")
    display = safe_display_name(filename or "")
    where = f"「{display}」: "
    if not data:
        raise UploadRejected(f"{where}ファイルが空です。", "empty")
    if len(data) > max_bytes:
        raise UploadRejected(
            f"{where}ファイルサイズが上限（{_format_size(max_bytes)}）を超えています。", "too_large"
        )
    allowed_labels = "、".join(_KIND_LABELS[k] for k in sorted(allowed))
    _name_policy(display, where)
    ext, _inner = _extension_parts(display)
    if not ext:
        raise UploadRejected(f"{where}拡張子がありません。受け付ける形式: {allowed_labels}", "no_extension")
    if ext in _LEGACY_OFFICE_EXTS:
        raise UploadRejected(
            f"{where}旧形式のOfficeファイル（.{ext}）は受け付けられません。.xlsx/.docx/.pptx で保存し直してください。",
            "legacy_office",
        )
    if ext not in KINDS or ext not in allowed:
        raise UploadRejected(
            f"{where}この種類のファイル（.{ext}）は受け付けられません。受け付ける形式: {allowed_labels}",
            "not_allowed",
        )
    kind = ext
    sniffed = _sniff(data)
    encoding = None

    if kind == "pdf":
        if sniffed != "pdf":
            raise _mismatch(where, kind, sniffed)
    elif kind in ("xlsx", "docx", "pptx", "zip"):
        if sniffed != "zip":
            raise _mismatch(where, kind, sniffed)
        check_archive(data, kind, limits, display)
        if kind == "zip":
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                if "[Content_Types].xml" in zf.namelist() and _ooxml_kind_of(
                    {n.lower(): n for n in zf.namelist()}
                ):
                    raise UploadRejected(
                        f"{where}拡張子はZIPですが、内容はOffice文書です。元の拡張子に戻してください。",
                        "extension_mismatch",
                    )
    elif kind == "csv":
        if sniffed in ("text", "unknown") and b"\x00" in data:
            raise UploadRejected(f"{where}CSVにNUL文字が含まれています（テキストファイルではありません）。", "csv_binary")
        if sniffed != "text":
            raise _mismatch(where, kind, sniffed)
        detected = detect_text_encoding(data)
        if detected is None:
            raise UploadRejected(
                f"{where}CSVの文字コードを判別できません。UTF-8またはShift_JIS（CP932）で保存してください。",
                "csv_encoding",
            )
        encoding = "utf-8" if detected == "utf-8-sig" else detected

    mime = MIME_TYPES[kind]
    if kind == "csv":
        mime = f"text/csv; charset={'utf-8' if encoding == 'utf-8' else 'shift_jis'}"
    digest = hashlib.sha256(data).hexdigest()
    scan = _scan_provider()
    if scan is not None:  # FILE-08: last, so only well-formed files of an allowed type reach clamd
        scan(data, display, digest)
    return UploadInfo(
        kind=kind,
        mime_type=mime,
        size=len(data),
        sha256=digest,
        display_name=display,
        encoding=encoding,
    )


# ---------------------------------------------------------------------------------------------
# Virus scanning (FILE-08)
# ---------------------------------------------------------------------------------------------

ScanHook = Callable[[bytes, str, str], None]
"""``(data, display_name, sha256)``: returns when the file is clean, raises ``UploadRejected`` if not."""

_scan_provider: Callable[[], ScanHook | None] = lambda: None


def set_scan_provider(provider: Callable[[], ScanHook | None]) -> None:
    """Install the function that gives the scan of the current unit of work (the web layer's app).

    Every upload path goes through ``inspect_upload``, so scanning there covers documents, data
    sets, estimates, base tables and plan imports alike.
    """
    global _scan_provider
    _scan_provider = provider


def scan_upload(scanner: Any, data: bytes, display: str, digest: str) -> str | None:
    """Scan with ``scanner`` (a ``pmo.core.scanner.ClamdScanner``); fail closed.

    Returns None for a clean file. Raises ``UploadRejected`` with code ``infected`` (the signature
    name is in ``detail``) or ``scanner_unavailable`` (the documented policy: no verdict, no upload).
    """
    from pmo.core.scanner import ScannerUnavailable

    where = f"「{display}」: "
    try:
        result = scanner.scan(data)
    except ScannerUnavailable as exc:
        _log.error("upload refused: virus scanner unavailable sha256=%s reason=%s", digest, exc)
        rejected = UploadRejected(
            f"{where}ウイルス検査を実行できないため、現在ファイルを受け付けられません。"
            "しばらくしてから再度お試しください。解決しない場合はシステム管理者に連絡してください。",
            "scanner_unavailable",
        )
        rejected.detail = str(exc)
        raise rejected from None
    if result.infected:
        _log.warning("upload refused: virus found signature=%s sha256=%s", result.signature, digest)
        rejected = UploadRejected(
            f"{where}ウイルスが検出されたため受け付けられません（検出名: {result.signature}）。"
            "このファイルは開かずに削除し、所属の情報システム担当者に連絡してください。",
            "infected",
        )
        rejected.detail = result.signature
        raise rejected
    return None


def _mismatch(where: str, kind: str, sniffed: str) -> UploadRejected:
    """Explain that the extension and the content disagree."""
    return UploadRejected(
        f"{where}拡張子は{_KIND_LABELS[kind]}ですが、内容が一致しません（内容: {_SNIFF_LABELS[sniffed]}）。",
        "extension_mismatch",
    )


def _format_size(n: int) -> str:
    if n >= _MB:
        return f"{n / _MB:,.0f}MB"
    if n >= 1024:
        return f"{n / 1024:,.0f}KB"
    return f"{n}バイト"


# ---------------------------------------------------------------------------------------------
# Text extraction for search
# ---------------------------------------------------------------------------------------------

TEXT_LIMIT = 2_000_000


class _Collector:
    """Accumulate text up to a cap, then signal the caller to stop."""

    def __init__(self, limit: int) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.limit = limit

    def add(self, text: object) -> bool:
        """Append text; return False once the cap is reached."""
        if not isinstance(text, str) or not text:
            return self.size < self.limit
        room = self.limit - self.size
        if room <= 0:
            return False
        piece = text[:room]
        self.parts.append(piece)
        self.size += len(piece) + 1
        return self.size < self.limit

    def text(self) -> str:
        return "\n".join(self.parts)[: self.limit]


def extract_text(data: bytes, kind: str, limit: int = TEXT_LIMIT) -> str:
    """Return a file's text for the search index, at most ``limit`` characters.

    Never raises on damaged or hostile content: the caller logs '' and indexes the title only.
    OOXML files pass ``check_archive`` first so extraction stays within the upload limits.
    """
    out = _Collector(limit)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if kind in _OOXML_MAIN:
                check_archive(data, kind)
            _EXTRACTORS[kind](data, out)
    except Exception:  # deliberately broad: parsers of untrusted files fail in many ways
        return ""
    return out.text()


def _extract_pdf(data: bytes, out: _Collector) -> None:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data), strict=False)
    if reader.is_encrypted and not reader.decrypt(""):
        return
    for page in reader.pages:
        if not out.add(page.extract_text() or ""):
            return


def _extract_docx(data: bytes, out: _Collector) -> None:
    import docx

    document = docx.Document(io.BytesIO(data))
    for paragraph in document.paragraphs:
        if not out.add(paragraph.text):
            return
    for table in document.tables:
        for row in table.rows:
            for cell in row.cells:
                if not out.add(cell.text):
                    return


def _extract_pptx(data: bytes, out: _Collector) -> None:
    from pptx import Presentation

    def shapes_text(shapes) -> Iterator[str]:
        for shape in shapes:
            if getattr(shape, "has_text_frame", False) and shape.has_text_frame:
                yield shape.text_frame.text
            if getattr(shape, "has_table", False) and shape.has_table:
                for row in shape.table.rows:
                    for cell in row.cells:
                        yield cell.text
            if hasattr(shape, "shapes"):  # group shapes
                yield from shapes_text(shape.shapes)

    presentation = Presentation(io.BytesIO(data))
    for slide in presentation.slides:
        for text in shapes_text(slide.shapes):
            if not out.add(text):
                return
        if slide.has_notes_slide and not out.add(slide.notes_slide.notes_text_frame.text):
            return


def _extract_xlsx(data: bytes, out: _Collector) -> None:
    import openpyxl

    workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        for sheet in workbook.worksheets:
            sheet.reset_dimensions()
            if not out.add(sheet.title):
                return
            for row in sheet.iter_rows(values_only=True):
                line = "\t".join(v for v in row if isinstance(v, str))
                if line and not out.add(line):
                    return
    finally:
        workbook.close()


def _extract_csv(data: bytes, out: _Collector) -> None:
    encoding = detect_text_encoding(data)
    if encoding is None:
        return
    # Decode just enough bytes: a CP932/UTF-8 character is at most 4 bytes.
    out.add(data[: out.limit * 4].decode(encoding, errors="ignore"))


def _extract_zip(data: bytes, out: _Collector) -> None:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for info in zf.infolist():
            if not out.add(_member_name(info)):
                return


_EXTRACTORS = {
    "pdf": _extract_pdf,
    "docx": _extract_docx,
    "pptx": _extract_pptx,
    "xlsx": _extract_xlsx,
    "csv": _extract_csv,
    "zip": _extract_zip,
}
