"""A login rush must not multiply argon2's 64 MiB per computation by the number of threads."""
from __future__ import annotations

import threading
import time

from argon2 import PasswordHasher

from pmo.accounts import service


class _CountingHasher:
    """Stands in for argon2 and records how many computations ran at the same time."""

    def __init__(self) -> None:
        self.running = self.peak = 0
        self.lock = threading.Lock()

    def _work(self) -> None:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        time.sleep(0.05)
        with self.lock:
            self.running -= 1

    def hash(self, password: str) -> str:
        self._work()
        return "$argon2id$fake"

    def verify(self, password_hash: str, password: str) -> bool:
        self._work()
        return True


def test_a_process_computes_at_most_the_configured_number_of_hashes_at_once():
    counting = _CountingHasher()
    previous = service._hasher
    service.use_password_hasher(counting)  # type: ignore[arg-type]
    service.limit_password_hashing(2)
    try:
        threads = [threading.Thread(target=service.verify_password if i % 2 else service.hash_password,
                                    args=("$argon2id$fake", "pw") if i % 2 else ("pw",)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        service.use_password_hasher(previous if isinstance(previous, PasswordHasher) else PasswordHasher())
    assert counting.peak == 2  # eight threads asked at once; two computed, the others waited


def test_the_limit_comes_from_the_settings(app):
    assert service._hash_slots._initial_value == app.config["PASSWORD_HASH_CONCURRENCY"] == 2  # type: ignore[attr-defined]
