"""Encryption at rest: an AES-256-GCM payload codec for everything a job stores in Temporal.

Temporal's data converter runs every payload through the codec: workflow and activity
inputs and results, memos (a job's arguments and spec), failure details, summaries and cron
schedules. New payloads are encrypted with the first key; any configured key decrypts
(rotation: put the new key first, keep the old ones while their payloads are retained). A
payload says which key sealed it (a short key id, not the key), so a missing key is named.
Search attributes are never encoded by Temporal: they hold function names, states and
times, not arguments.

Needs the ``cryptography`` package: ``pip install 'kitcn-temporal[encryption]'``.

Layer: operations.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

#: The environment variable holding the keys: base64 keys separated by commas, newest first.
KEYS_ENV = "KITCN_ENCRYPTION_KEYS"
#: ``encoding`` metadata of an encrypted payload (its data: a 12-byte nonce, then the sealed
#: serialised original payload).
ENCODING = b"binary/encrypted"
#: Metadata naming the key that sealed a payload: :func:`key_id` of it.
KEY_ID = "encryption-key-id"
KEY_BYTES = 32
_NONCE_BYTES = 12


class EncryptionKeyError(Exception):
    """A payload cannot be decrypted with the keys configured here (or none are)."""


def parse_keys(keys: Sequence[bytes | str]) -> list[bytes]:
    """32-byte keys from ``bytes`` or base64 ``str`` values; ``ValueError`` naming a bad one."""
    if isinstance(keys, (str, bytes)):
        raise ValueError("encryption keys must be a list of keys, not one key: encryption_keys=[key]")
    parsed = []
    for n, key in enumerate(keys, start=1):
        raw = key if isinstance(key, bytes) else _from_base64(key, n)
        if len(raw) != KEY_BYTES:
            raise ValueError(
                f"encryption key {n} is {len(raw)} bytes: AES-256 needs {KEY_BYTES} "
                "(make one with `openssl rand -base64 32`)"
            )
        parsed.append(raw)
    return parsed


def keys_from_env(environ: Mapping[str, str] | None = None) -> list[bytes]:
    """The keys of :data:`KEYS_ENV` (none when it is unset or empty)."""
    text = (os.environ if environ is None else environ).get(KEYS_ENV, "")
    try:
        return parse_keys([part.strip() for part in text.split(",") if part.strip()])
    except ValueError as err:
        raise ValueError(f"{KEYS_ENV}: {err}") from None


def key_id(key: bytes) -> str:
    """A short public name for ``key`` (the start of its SHA-256), stored with each payload."""
    return hashlib.sha256(b"kitcn-key-id:" + key).hexdigest()[:12]


def codec_for(keys: Sequence[bytes | str] | None) -> EncryptionCodec | None:
    """The codec for ``keys`` (``None``: those of :data:`KEYS_ENV`); ``None`` without keys."""
    parsed = keys_from_env() if keys is None else parse_keys(keys)
    return EncryptionCodec(parsed) if parsed else None


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM over each payload: the first key seals, every key opens.

    :param keys: 32-byte keys, newest first.
    """

    def __init__(self, keys: Sequence[bytes | str]) -> None:
        aesgcm = _aesgcm_class()
        parsed = parse_keys(keys)
        if not parsed:
            raise ValueError("EncryptionCodec needs at least one key")
        self._ciphers = {key_id(k): aesgcm(k) for k in parsed}
        self._current = key_id(parsed[0])

    @property
    def key_ids(self) -> list[str]:
        """The ids of the keys, the sealing one first."""
        return list(self._ciphers)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """See base class."""
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """See base class; all of them or an :class:`EncryptionKeyError`, never some."""
        return [self.decrypt(p) for p in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        kid = self._current
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._ciphers[kid].encrypt(nonce, payload.SerializeToString(), kid.encode())
        return Payload(metadata={"encoding": ENCODING, KEY_ID: kid.encode()}, data=nonce + sealed)

    def decrypt(self, payload: Payload) -> Payload:
        """The original payload (one that is not encrypted passes unchanged: written before
        encryption was turned on)."""
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        kid = payload.metadata.get(KEY_ID, b"").decode(errors="replace")
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise EncryptionKeyError(
                f"a payload was encrypted with key {kid}, which is not among the configured keys "
                f"({', '.join(self._ciphers)}): add that key to {KEYS_ENV} (any position after the first)"
            )
        try:
            plain = cipher.decrypt(payload.data[:_NONCE_BYTES], payload.data[_NONCE_BYTES:], kid.encode())
        except Exception:  # cryptography's InvalidTag: altered, or sealed by another key
            raise EncryptionKeyError(
                f"a payload sealed with key {kid} does not decrypt with it: the payload was altered"
            ) from None
        original = Payload()
        original.ParseFromString(plain)
        return original


@contextlib.contextmanager
def decrypting(what: str) -> Iterator[None]:
    """Reading ``what`` without the key its payloads need is one :class:`EncryptionKeyError`."""
    try:
        yield
    except KeyError as err:
        raise (missing_key_error(err, what) or err) from None


def missing_key_error(err: KeyError, what: str = "a payload") -> EncryptionKeyError | None:
    """The error to raise for ``err``, the SDK's "Unknown payload encoding" for an encrypted
    payload met by a converter without this codec; ``None`` for any other ``KeyError``."""
    if ENCODING.decode() not in str(err):
        return None
    return EncryptionKeyError(
        f"{what} is encrypted and this client has no encryption key: set {KEYS_ENV} "
        "(or KitcnPlugin(app, encryption_keys=[...]))"
    )


def _from_base64(text: Any, n: int) -> bytes:
    if not isinstance(text, str):
        raise ValueError(f"encryption key {n} must be 32 bytes or a base64 str, not {type(text).__name__}")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"encryption key {n} is not valid base64") from None


def _aesgcm_class() -> Any:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:
        raise ImportError(
            "encryption needs the cryptography package: pip install 'kitcn-temporal[encryption]'"
        ) from None
    return AESGCM
