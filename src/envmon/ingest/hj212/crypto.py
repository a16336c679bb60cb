"""SM4 encryption of the data segment's CP area (HJ 212-2025), sans-IO.

An encrypted frame carries ``CP=&&EncryptedData=<hex>&&``: the CP content
(the text between ``CP=&&`` and ``&&``) encrypted with SM4 (GB/T 32907) in ECB
mode under the device's 128-bit key, as upper-case hex.  Clients in the wild
pad the text with zero bytes to a multiple of 16 bytes (gmssl-style
``crypt_ecb`` clients pad PKCS#7): both are accepted when decrypting, and
zero padding is what :func:`encrypt_cp` writes.  UNCERTAIN: the text of
HJ 212-2025 was not read (standards.md §7.2); which Flag bit announces the
encryption is not known here, so the ``EncryptedData`` key alone decides.

A wrong key gives bytes that are not a CP area: :func:`decrypt_cp` raises
:class:`Hj212Error` (reason ``decrypt``) and nothing of the frame is stored.
"""

from __future__ import annotations

import re
from typing import Final

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .errors import Hj212Error

DECRYPT: Final = "decrypt"
ENCRYPTED_KEY: Final = "EncryptedData"
_BLOCK: Final = 16
_HEX_RE: Final = re.compile(r"(?:[0-9A-Fa-f]{32})+")
# What a decrypted CP content must look like: key=value items, no control
# characters (a wrong key yields random bytes, which this rejects).
_CP_TEXT_RE: Final = re.compile(r"[^\x00-\x1f\x7f&]*")


def parse_key(text: str) -> bytes:
    """A key as configured: 32 hex digits, or 16 ASCII characters used as bytes
    (both forms are in use by SM4 clients).  Raise ValueError otherwise."""
    value = text.strip()
    if re.fullmatch(r"[0-9A-Fa-f]{32}", value):
        return bytes.fromhex(value)
    raw = value.encode("utf-8")
    if len(raw) == _BLOCK:
        return raw
    raise ValueError("an SM4 key is 32 hex digits or 16 ASCII characters")


def _cipher(key: bytes) -> Cipher[modes.ECB]:
    return Cipher(algorithms.SM4(key), modes.ECB())


def encrypt_cp(content: str, key: bytes) -> str:
    """``content`` encrypted as the ``EncryptedData`` value (zero padding)."""
    data = content.encode("utf-8")
    data += b"\x00" * (-len(data) % _BLOCK)
    encryptor = _cipher(key).encryptor()
    return (encryptor.update(data) + encryptor.finalize()).hex().upper()


def decrypt_cp(value: str, key: bytes) -> str:
    """The CP content of an ``EncryptedData`` value; :class:`Hj212Error`
    (reason ``decrypt``) if it is not hex blocks or does not decrypt to text."""
    if not _HEX_RE.fullmatch(value):
        raise Hj212Error(DECRYPT, "EncryptedData is not hex in 16-byte blocks")
    decryptor = _cipher(key).decryptor()
    plain = decryptor.update(bytes.fromhex(value)) + decryptor.finalize()
    pad = plain[-1]
    if 1 <= pad <= _BLOCK and plain.endswith(bytes([pad]) * pad):
        plain = plain[:-pad]  # PKCS#7
    else:
        plain = plain.rstrip(b"\x00")  # zero padding
    try:
        text = plain.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    if not text or not _CP_TEXT_RE.fullmatch(text) or "=" not in text:
        raise Hj212Error(
            DECRYPT, "EncryptedData does not decrypt to a CP area with the device's SM4 key"
        )
    return text
