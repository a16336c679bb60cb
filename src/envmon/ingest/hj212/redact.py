"""Frame text that may be written anywhere: passwords redacted, size bounded.

A frame carries its device's access password in clear (``PW=`` in the
header; ``NewPW=`` in a 1072).  Nothing the receiver writes — ``rejected``,
the raw-frame archive, the database, a log — keeps it: :func:`redact` is
applied before.  Text for the ``rejected`` table is also bounded
(:data:`MAX_REJECT_TEXT`), and binary garbage is summarised, not stored byte
by byte.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

MAX_REJECT_TEXT: Final = 2048  # characters of a frame kept in ``rejected.raw``
_PW_RE: Final = re.compile(rb"PW=[^;&\r\n]*")
_PW_TEXT_RE: Final = re.compile(r"PW=[^;&\r\n]*")
_PRINTABLE: Final = frozenset(range(0x20, 0x7F)) | {0x09, 0x0A, 0x0D}
# ASCII bytes no frame has (deleted by bytes.translate: counted in C, not per byte in Python).
_ODD: Final = bytes(b for b in range(0x80) if b not in _PRINTABLE)


def redact(raw: bytes) -> bytes:
    """``raw`` with every ``PW=…`` (and ``NewPW=…``) value replaced by ``***``."""
    return _PW_RE.sub(b"PW=***", raw) if b"PW=" in raw else raw


def redact_text(text: str) -> str:
    return _PW_TEXT_RE.sub("PW=***", text) if "PW=" in text else text


def is_binary(raw: bytes) -> bool:
    """Mostly bytes no HJ 212 frame has (ASCII framing; CP may hold UTF-8)."""
    if not raw:
        return False
    sample = raw[:4096]
    odd = len(sample) - len(sample.translate(None, _ODD))
    return odd * 10 > len(sample)


def frame_text(raw: bytes, limit: int = MAX_REJECT_TEXT) -> str:
    """A frame as text for the ``rejected`` table: redacted, at most ``limit``
    characters (non-UTF-8 bytes as ``\\xNN``); binary garbage as a summary."""
    if is_binary(raw):
        digest = hashlib.sha256(raw).hexdigest()[:16]
        return f"<binary {len(raw)} bytes sha256:{digest}>"
    text = redact(raw).decode("utf-8", "backslashreplace").rstrip("\r\n")
    if len(text) > limit:
        return f"{text[:limit]}… <{len(raw)} bytes>"
    return text
