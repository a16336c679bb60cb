"""The one error the HJ 212 codec raises.

Every malformed frame, field or split group becomes an :class:`Hj212Error`; it
is a :class:`~envmon.errors.SkippableError` because one bad frame never stops a
receiver: the frame is quarantined with its ``reason`` and the stream goes on.
"""

from __future__ import annotations

from typing import Final

from envmon.errors import SkippableError

# Stable, machine-readable reasons (quarantine tables and the fixture corpus key
# on these; the human-readable detail goes into the message).
BAD_HEADER: Final = "bad_header"
BAD_LENGTH: Final = "bad_length"
LENGTH_MISMATCH: Final = "length_mismatch"
BAD_CRC: Final = "bad_crc"
CRC_MISMATCH: Final = "crc_mismatch"
BAD_ENCODING: Final = "bad_encoding"
MISSING_CP: Final = "missing_cp"
BAD_CP: Final = "bad_cp"
MISSING_FIELD: Final = "missing_field"
BAD_FIELD: Final = "bad_field"
BAD_DATATIME: Final = "bad_datatime"
TOO_LONG: Final = "too_long"
GARBAGE: Final = "garbage"
TRUNCATED: Final = "truncated"
BUFFER_OVERFLOW: Final = "buffer_overflow"
SPLIT_INCOMPLETE: Final = "split_incomplete"
SPLIT_CONFLICT: Final = "split_conflict"
UNIT: Final = "unit"

# QnRtn categories (HJ 212-2017 §6.6.3 Table 7): what a host would answer to a
# request that failed for this reason.
QNRTN_PW: Final = 3
QNRTN_MN: Final = 4
QNRTN_ST: Final = 5
QNRTN_FLAG: Final = 6
QNRTN_QN: Final = 7
QNRTN_CN: Final = 8
QNRTN_CRC: Final = 9
QNRTN_UNKNOWN: Final = 100


class Hj212Error(SkippableError):
    """A frame, field or split group that cannot be accepted.

    ``reason`` is one of the module constants (``"crc_mismatch"`` …), ``detail``
    says what exactly was wrong, ``code`` is the QnRtn category (Table 7) when
    one applies.
    """

    def __init__(self, reason: str, detail: str = "", *, code: int | None = None) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.code = code

    def __repr__(self) -> str:
        return f"Hj212Error({self.reason!r}, {self.detail!r}, code={self.code!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Hj212Error):
            return NotImplemented
        return (self.reason, self.detail, self.code) == (other.reason, other.detail, other.code)

    def __hash__(self) -> int:
        return hash((self.reason, self.detail, self.code))
