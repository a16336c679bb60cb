"""CRC16 of HJ 212-2017 Annex A.

Annex A is *not* CRC-16/MODBUS: the byte is XORed into the register after the
register has been shifted down by 8 (``reg = (reg >> 8) ^ byte``), then the
usual eight reflected rounds with 0xA001 run.  Because ``reg >> 8`` leaves at
most 8 bits, the eight rounds depend on that byte alone, so one 256-entry table
lookup per byte does the whole step: ``reg = TABLE[(reg >> 8) ^ byte]``.
"""

from __future__ import annotations

from typing import Final


def _rounds(value: int) -> int:
    # The eight shift/XOR rounds of the Annex A C routine, for one table entry.
    for _ in range(8):
        value = (value >> 1) ^ 0xA001 if value & 1 else value >> 1
    return value


_TABLE: Final[tuple[int, ...]] = tuple(_rounds(i) for i in range(256))


def crc16(data: bytes | bytearray | memoryview) -> int:
    """The Annex A CRC16 of ``data`` (the data segment's bytes only)."""
    reg = 0xFFFF
    table = _TABLE
    for byte in data:
        reg = table[(reg >> 8) ^ byte]
    return reg


def crc16_hex(data: bytes | bytearray | memoryview) -> str:
    """The CRC as the frame carries it: 4 upper-case hex digits, high byte first."""
    return f"{crc16(data):04X}"
