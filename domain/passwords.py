"""Password policy: argon2id hashing (memory-hard), length rules, and a dummy hash for unknown accounts.

Verifying against `DUMMY_HASH` when an account does not exist keeps login time the same either way, so
timing does not tell an attacker which emails are registered.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 12
MAX_LENGTH = 256  # bounds the work an attacker can make us do per request


class WeakPassword(ValueError):
    """The password does not meet the policy; the message says which rule (never echoes the password)."""


@dataclass(frozen=True)
class PasswordPolicy:
    """argon2id parameters (OWASP minimum: m=19 MiB, t=2, p=1) and length rules."""

    time_cost: int = 2
    memory_kib: int = 19456
    parallelism: int = 1
    min_length: int = MIN_LENGTH

    def _hasher(self) -> PasswordHasher:
        return PasswordHasher(time_cost=self.time_cost, memory_cost=self.memory_kib,
                              parallelism=self.parallelism, type=Type.ID)

    def check(self, password: str) -> None:
        if len(password) < self.min_length:
            raise WeakPassword(f"password must have at least {self.min_length} characters")
        if len(password) > MAX_LENGTH:
            raise WeakPassword(f"password must have at most {MAX_LENGTH} characters")
        if len(set(password)) < 5:
            raise WeakPassword("password must use at least 5 distinct characters")

    def hash(self, password: str) -> str:
        return self._hasher().hash(password)

    def verify(self, stored_hash: str, password: str) -> bool:
        """True when `password` matches; False on mismatch or an unusable stored hash (e.g. erased account)."""
        try:
            return self._hasher().verify(stored_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        try:
            return self._hasher().check_needs_rehash(stored_hash)
        except InvalidHashError:
            return False


def policy_for(settings: Any) -> PasswordPolicy:
    """The policy with the deployment's argon2 costs (`settings.argon2_time_cost`, `.argon2_memory_kib`)."""
    return PasswordPolicy(time_cost=settings.argon2_time_cost, memory_kib=settings.argon2_memory_kib)


_DEFAULT = PasswordPolicy()
# A valid argon2id hash of a random string nobody knows; verified against when the account is unknown.
DUMMY_HASH = _DEFAULT.hash("dummy-password-for-timing-equalization-6f1c")
