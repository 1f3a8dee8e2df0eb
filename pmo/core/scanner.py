"""Virus scanning of uploads with ClamAV's daemon, clamd (SECURITY.md FILE-08).

A dozen lines of clamd's documented protocol instead of a client library: the Python clients on
PyPI (clamd 1.0.2, pyclamd 0.4.0) have not been released for years, and we need only three
commands over the local socket: ``zPING``, ``zVERSION`` and ``zINSTREAM`` (length-prefixed
chunks, then a zero length; the answer is ``stream: OK`` or ``stream: <name> FOUND``).

No Flask here; the web layer decides which scanner a request uses (``pmo.web.scanning``).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

__all__ = ["ClamdScanner", "ScanResult", "ScannerUnavailable"]

_CHUNK = 256 * 1024


class ScannerUnavailable(Exception):
    """clamd could not give a verdict (not running, socket missing, timeout, size limit, error)."""


@dataclass(frozen=True)
class ScanResult:
    infected: bool
    signature: str | None = None  # the signature name clamd reported, when infected


class ClamdScanner:
    """Talks to clamd over its unix socket; one short connection per command."""

    def __init__(self, socket_path: str, timeout: float = 30.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    def _command(self, command: bytes, payload: bytes | None = None) -> str:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                sock.connect(self.socket_path)
                sock.sendall(b"z" + command + b"\0")
                if payload is not None:
                    view = memoryview(payload)
                    for start in range(0, len(view), _CHUNK):
                        part = view[start:start + _CHUNK]
                        sock.sendall(struct.pack(">I", len(part)) + part)
                    sock.sendall(struct.pack(">I", 0))
                answer = b""
                while not answer.endswith(b"\0"):
                    got = sock.recv(4096)
                    if not got:
                        break
                    answer += got
        except OSError as exc:  # ConnectionRefused, FileNotFound, timeout, broken pipe
            raise ScannerUnavailable(f"clamd {command.decode()} failed: {type(exc).__name__}") from exc
        text = answer.rstrip(b"\0").decode("utf-8", "replace").strip()
        if not text:
            raise ScannerUnavailable(f"clamd {command.decode()}: empty answer")
        return text

    def ping(self) -> bool:
        try:
            return self._command(b"PING") == "PONG"
        except ScannerUnavailable:
            return False

    def version(self) -> str:
        """e.g. ``ClamAV 1.4.6/27000/...``; raises ScannerUnavailable."""
        return self._command(b"VERSION")

    def scan(self, data: bytes) -> ScanResult:
        """Scan bytes in memory; raises ScannerUnavailable when clamd gives no clean verdict."""
        answer = self._command(b"INSTREAM", data)
        # "stream: OK" | "stream: Eicar-Signature FOUND" | "INSTREAM size limit exceeded. ERROR" | "... ERROR"
        if answer.endswith(" FOUND"):
            name = answer.removeprefix("stream:").removesuffix(" FOUND").strip()
            return ScanResult(True, name[:200])
        if answer == "stream: OK":
            return ScanResult(False)
        raise ScannerUnavailable(f"clamd INSTREAM: {answer[:200]}")
