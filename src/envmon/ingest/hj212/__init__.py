"""HJ 212 (2005 / 2017 / 2025) codec, sans-IO: bytes in, frames and messages out.

The TCP receiver built on top feeds socket chunks to a :class:`StreamDecoder`,
answers each :class:`Message` that ``needs_answer`` with :func:`data_answer`
(uploads) or :func:`notify_answer` (notifications), reassembles split packets
with a :class:`SplitAssembler`, and turns uploads into reading candidates with
:func:`readings`.  See standards.md §7 for the protocol notes this follows.
"""

from __future__ import annotations

from .codec import (
    FLAG_A,
    FLAG_D,
    PROTOCOLS,
    CpData,
    Message,
    answer,
    answer_flag,
    answer_frame,
    data_answer,
    decode,
    encode,
    format_time,
    history_request,
    new_qn,
    notify_answer,
    parse_time,
    set_time_request,
)
from .codes import LEGACY_CODES, convert, normalize_unit, parameter_for, to_2017
from .crc import crc16, crc16_hex
from .errors import Hj212Error
from .mapping import ReadingCandidate, readings
from .stream import Frame, SplitAssembler, StreamDecoder

__all__ = [
    "FLAG_A",
    "FLAG_D",
    "LEGACY_CODES",
    "PROTOCOLS",
    "CpData",
    "Frame",
    "Hj212Error",
    "Message",
    "ReadingCandidate",
    "SplitAssembler",
    "StreamDecoder",
    "answer",
    "answer_flag",
    "answer_frame",
    "convert",
    "crc16",
    "crc16_hex",
    "data_answer",
    "decode",
    "encode",
    "format_time",
    "history_request",
    "new_qn",
    "normalize_unit",
    "notify_answer",
    "parameter_for",
    "parse_time",
    "readings",
    "set_time_request",
    "to_2017",
]
