"""A private clamd for tests: its own unix socket and a signature database written at test time.

The machine has no internet, so freshclam's databases are not used: a one-line ``.ndb`` body
signature matches the EICAR test string anywhere in a scanned file (also inside a zip or an xlsx,
which clamd unpacks). The EICAR string is assembled here from two halves, so this repository holds
no file that a virus scanner would flag.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
SIGNATURE = "PMO.Test.EICAR"


def clamd_binary() -> str | None:
    return shutil.which("clamd") or (("/usr/sbin/clamd") if Path("/usr/sbin/clamd").exists() else None)


class Clamd:
    """Start and stop one clamd process; ``socket_path`` stays the same across restarts."""

    def __init__(self) -> None:
        binary = clamd_binary()
        if binary is None:
            if os.environ.get("PMO_REQUIRE_CLAMAV"):
                pytest.fail("clamd is not installed (apt-get install clamav clamav-daemon)")
            pytest.skip("clamd is not installed (apt-get install clamav clamav-daemon)")
        self.binary = binary
        # A short path: a unix socket path must stay under 108 bytes.
        self.root = Path(tempfile.mkdtemp(prefix="pmo-clamd-"))
        (self.root / "db").mkdir()
        (self.root / "db" / "pmo-test.ndb").write_text(f"{SIGNATURE}:0:*:{EICAR.hex()}\n")
        self.socket_path = str(self.root / "clamd.sock")
        self.config = self.root / "clamd.conf"
        lines = [
            f"LocalSocket {self.socket_path}", f"DatabaseDirectory {self.root / 'db'}", "Foreground yes",
            f"LogFile {self.root / 'clamd.log'}", f"TemporaryDirectory {self.root}", "StreamMaxLength 60M",
        ]
        if os.geteuid() == 0:
            lines.append("User root")  # Debian's default would switch to the clamav user
        self.config.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        Path(self.socket_path).unlink(missing_ok=True)
        self.process = subprocess.Popen([self.binary, "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"clamd exited: {(self.root / 'clamd.log').read_text(errors='replace')[-2000:]}")
            if self.ping():
                return
            time.sleep(0.1)
        raise RuntimeError("clamd did not answer within 60 s")

    def ping(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(2)
                sock.connect(self.socket_path)
                sock.sendall(b"zPING\0")
                return sock.recv(16).startswith(b"PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
