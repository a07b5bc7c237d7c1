"""Envelope encryption: AES-256-GCM data keys wrapped by versioned master keys, and blind indexes.

Why envelope: one data key per survivor means erasing a survivor can be done by destroying one
key, and rotating a master key re-wraps small keys without touching any row. The associated data
binds each ciphertext to its table, column and row, so a ciphertext copied into another row fails
to decrypt (security.md §4).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import unicodedata
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12
FORMAT_VERSION = b"\x01"


class DecryptionFailed(Exception):
    """Raised instead of cryptography's InvalidTag so callers need not import it."""


KEY_BYTES = 32
_STANDARD_ALPHABET = str.maketrans("-_", "+/")


def decode_key(text: str) -> bytes:
    """The bytes of a base64 key (either alphabet, padding optional, surrounding whitespace ignored).

    Strict otherwise: a stray character is an error rather than silently dropped, so every text
    read as a key is one of these variants, and comparing bytes (settings refuse the published
    development keys that way) sees through all of them.
    """
    compact = text.strip().translate(_STANDARD_ALPHABET).rstrip("=")
    try:
        return base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except ValueError:
        raise ValueError("a key must be written in base64") from None


def _decode_master_key(text: str) -> bytes:
    raw = decode_key(text)
    if len(raw) != KEY_BYTES:
        raise ValueError(f"master keys must be {KEY_BYTES} bytes, base64-encoded")
    return raw


@dataclass(frozen=True)
class MasterKeys:
    """Versioned key-encryption keys from settings; the first one is current. Never in a repr: a log line
    or a traceback that prints one must not carry the keys that open every survivor's data."""

    keys: tuple[tuple[str, bytes], ...] = field(repr=False)

    @classmethod
    def parse(cls, value: str) -> MasterKeys:
        keys: list[tuple[str, bytes]] = []
        for item in value.split(","):
            key_id, sep, encoded = (part.strip() for part in item.partition(":"))
            if not sep or not key_id:
                raise ValueError("master keys look like id:base64key[,id:base64key...]")
            keys.append((key_id, _decode_master_key(encoded)))
        if not keys or len({k for k, _ in keys}) != len(keys):
            raise ValueError("master key ids must be unique and at least one key given")
        return cls(tuple(keys))

    @property
    def current_id(self) -> str:
        return self.keys[0][0]

    def get(self, key_id: str) -> bytes:
        for kid, key in self.keys:
            if kid == key_id:
                return key
        raise DecryptionFailed("unknown master key id")

    def wrap(self, data_key: bytes, *, aad: str) -> tuple[str, bytes]:
        """Encrypt a data key (or any secret) under the current master key."""
        return self.current_id, seal(self.get(self.current_id), data_key, aad=f"{self.current_id}|{aad}")

    def unwrap(self, key_id: str, wrapped: bytes, *, aad: str) -> bytes:
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise DecryptionFailed("unknown master key id")
        return _opened_with(cipher, wrapped, f"{key_id}|{aad}")

    @cached_property
    def _ciphers(self) -> dict[str, AESGCM]:
        """One cipher per master key, made once: a new one per unwrap was 1.3 of its 3.2 µs, paid for every
        survivor's key a worker has not yet remembered (db.crypto.DataKeys)."""
        return {kid: AESGCM(key) for kid, key in self.keys}


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def seal(key: bytes, plaintext: bytes, *, aad: str) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return FORMAT_VERSION + nonce + AESGCM(key).encrypt(nonce, plaintext, aad.encode())


def open_sealed(key: bytes, blob: bytes, *, aad: str) -> bytes:
    return _opened_with(AESGCM(key), blob, aad)


def _opened_with(cipher: AESGCM, blob: bytes, aad: str) -> bytes:
    if not blob or blob[:1] != FORMAT_VERSION:
        raise DecryptionFailed("unknown ciphertext format")
    nonce, body = blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :]
    try:
        return cipher.decrypt(nonce, body, aad.encode())
    except Exception as exc:  # InvalidTag: wrong key, wrong row, or tampered
        raise DecryptionFailed("ciphertext does not verify") from exc


class DataKeys:
    """Survivors' data keys as compiled reads open them, remembered per (survivor, wrapped key) up to
    `size` keys (PAMOJA_DATA_KEY_CACHE_SIZE): a counselor's dashboard names the same fifty survivors on every
    request, and unwrapping their keys each time (with a new cipher per value) made opening its sealed text
    cost 0.82 ms instead of 0.33. Sized for the active caseload of every counselor a worker serves: the
    benchmark's 1,000 counselors name 50,000 survivors, which 4,096 keys never held (8.5 µs per key
    unwrapped against 2 µs remembered).

    Remembering grants nothing. A key is used only when the statement being answered brought that very
    wrapped key for that survivor (row-level security and the policy let it through, the key not
    destroyed); a destroyed or re-wrapped key is never brought again, so its entry is never used and
    ages out. The process already holds the master keys, which open every one of these."""

    def __init__(self, master: MasterKeys, size: int) -> None:
        self._master = master
        self._size = size
        self._ciphers: OrderedDict[tuple[str, str], AESGCM] = OrderedDict()

    def open(self, survivor_id: str, wrapped: str, blob: str, *, aad: str, key_aad: Callable[[str], str]) -> bytes:
        """Open `blob` (base64) sealed with the survivor's data key; `wrapped` is the key as the statement
        brought it ("<master key id> <base64 wrapped key>"), `key_aad` gives the wrapped key's associated
        data for a survivor (asked only when the key is not remembered)."""
        found = (survivor_id, wrapped)
        cipher = self._ciphers.get(found)
        if cipher is None:
            master_id, _, wrapped_key = wrapped.partition(" ")
            cipher = AESGCM(self._master.unwrap(master_id, _base64(wrapped_key), aad=key_aad(survivor_id)))
            self._ciphers[found] = cipher
            if len(self._ciphers) > self._size:
                self._ciphers.popitem(last=False)
        else:
            self._ciphers.move_to_end(found)
        return _opened_with(cipher, _base64(blob), aad)


def _base64(text: str) -> bytes:
    try:
        return binascii.a2b_base64(text)
    except (binascii.Error, ValueError):
        raise DecryptionFailed("unknown ciphertext format") from None


def field_aad(table: str, column: str, row_id: object) -> str:
    return f"{table}.{column}:{row_id}"


def encrypt_field(data_key: bytes, value: str | None, *, table: str, column: str, row_id: object) -> bytes | None:
    if value is None:
        return None
    return seal(data_key, value.encode(), aad=field_aad(table, column, row_id))


def decrypt_field(data_key: bytes, blob: bytes | None, *, table: str, column: str, row_id: object) -> str | None:
    if blob is None:
        return None
    return open_sealed(data_key, blob, aad=field_aad(table, column, row_id)).decode()


def blind_index(key: bytes, column: str, value: str) -> bytes:
    """Keyed HMAC of a normalised value, per column, for equality lookups on encrypted fields."""
    normalised = unicodedata.normalize("NFKC", value).strip().casefold()
    return hmac.new(key, f"{column}:{normalised}".encode(), hashlib.sha256).digest()


def blind_index_key(setting: str) -> bytes:
    return hashlib.sha256(b"pamoja-blind-index|" + setting.encode()).digest()
