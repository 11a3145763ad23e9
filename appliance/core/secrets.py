"""Credentials and secrets: random tokens, their SHA-256 hashes, passwords, encryption at rest.

Keys and tokens Herald checks (printer keys ``hpk_``, access tokens ``hat_``,
refresh tokens ``hrt_``, mail and setup tokens) are 256-bit random values stored
only as a SHA-256 hash: they are checked on every request, so a slow hash would
cost every request, and 256 bits of entropy need no stretching. Passwords, which
people choose, get argon2id. Secrets Herald must send or show again are encrypted
with a key kept in the data directory (``secret.key``).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.fernet import Fernet, InvalidToken

from appliance.core.filemodes import private_dir

PRINTER_KEY_PREFIX = "hpk_"
ACCESS_TOKEN_PREFIX = "hat_"
REFRESH_TOKEN_PREFIX = "hrt_"


def new_token(prefix: str = "") -> str:
    """A 256-bit random token, URL-safe, with a prefix telling its kind."""
    return prefix + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """The SHA-256 hex digest under which a token is stored and looked up."""
    return hashlib.sha256(token.encode()).hexdigest()


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


# OWASP (2023+) minimum for argon2id: m=19 MiB, t=2, p=1. We use m=19 MiB, t=2, p=1
# as the floor that a Raspberry Pi can afford on every login.
_password_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def hash_password(password: str) -> str:
    return _password_hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _password_hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_needs_rehash(password_hash: str) -> bool:
    return _password_hasher.check_needs_rehash(password_hash)


# A fixed dummy hash, verified when no account matches, so that a login for an
# unknown email takes as long as one for a known email.
DUMMY_PASSWORD_HASH = _password_hasher.hash("not a real password, never matches")


class SecretBox:
    """Encrypts secrets at rest (Fernet: AES-128-CBC + HMAC-SHA256) with one key."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._fernet = Fernet(key)

    def derive_key(self, purpose: str) -> bytes:
        """A 256-bit key for ``purpose`` (e.g. keyed hashes), derived from this box's key."""
        return hmac.new(self._key, b"herald:" + purpose.encode(), hashlib.sha256).digest()

    @classmethod
    def from_data_dir(cls, data_dir: Path) -> SecretBox:
        """Load ``secret.key`` from the data directory, creating it (mode 0600) on first use."""
        path = data_dir / "secret.key"
        private_dir(data_dir)
        if not path.exists():
            # Write a temporary file, then link it into place: several processes
            # starting at once agree on one key, and none reads a half-written file.
            tmp = data_dir / f".secret.key.{os.getpid()}.{secrets.token_hex(4)}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, Fernet.generate_key())
            finally:
                os.close(fd)
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another process won the race; use its key
            finally:
                tmp.unlink()
        return cls(path.read_bytes().strip())

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise ValueError("secret cannot be decrypted with this data directory's key") from None
