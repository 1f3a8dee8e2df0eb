"""Files on disk under generated names, in the instance folder's ``uploads/`` (FILE-05)."""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

_KEY = re.compile(r"^[0-9a-f]{32}$")


class FileStore:
    """Write bytes under a random 128-bit name; read only by a name we generated."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def put(self, data: bytes) -> str:
        """Store ``data`` and return its key."""
        key = secrets.token_hex(16)
        folder = self.root / key[:2]
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{key}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, folder / key)
        return key

    def path(self, key: str) -> Path:
        """Return the path of a stored file; refuse anything that is not one of our keys."""
        if not _KEY.match(key or ""):
            raise FileNotFoundError("invalid storage key")
        path = self.root / key[:2] / key
        if not path.is_file():
            raise FileNotFoundError(key)
        return path

    def read(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def delete(self, key: str) -> None:
        try:
            self.path(key).unlink()
        except FileNotFoundError:
            pass
