"""CRC16 of HJ 212-2017 Annex A.

Annex A is *not* CRC-16/MODBUS: the byte is XORed into the register after the
register has been shifted down by 8 (``reg = (reg >> 8) ^ byte``), then the
usual eight reflected rounds with 0xA001 run.  Because ``reg >> 8`` leaves at
most 8 bits, the eight rounds depend on that byte alone, so one 256-entry table
lookup per byte does the whole step: ``reg = TABLE[(reg >> 8) ^ byte]``.

That loop costs ~60 ns a byte in Python, and the receiver runs it over every
frame.  The rounds are linear over GF(2), so the 8-bit index ``i`` of the next
lookup follows ``i' = M·i ⊕ byte`` with ``M = TABLE[·] >> 8``, a linear map of
order 8 (M⁸ = identity).  The last index is therefore ``⊕ M^(d mod 8)·byte``
over the bytes, ``d`` being a byte's distance from the end (the initial
register folds into the first byte as ``⊕ 0xFF``): XOR the data's 8-byte
blocks together (big-integer arithmetic, aligned on the end), apply M⁰…M⁷ to
the eight resulting bytes by table, and look the result up once.  The test
suite checks it against the bit-by-bit routine of Annex A.
"""

from __future__ import annotations

from typing import Final


def _rounds(value: int) -> int:
    # The eight shift/XOR rounds of the Annex A C routine, for one table entry.
    for _ in range(8):
        value = (value >> 1) ^ 0xA001 if value & 1 else value >> 1
    return value


_TABLE: Final[tuple[int, ...]] = tuple(_rounds(i) for i in range(256))


def _powers() -> tuple[tuple[int, ...], ...]:
    step = [entry >> 8 for entry in _TABLE]  # M as a lookup table
    powers = [tuple(range(256))]
    for _ in range(7):
        powers.append(tuple(step[i] for i in powers[-1]))
    # The fold below needs M⁸ = identity.
    if any(step[m] != b for b, m in enumerate(powers[-1])):  # pragma: no cover
        raise AssertionError("HJ 212 CRC: M^8 is not the identity")
    return tuple(powers)


# _POWERS[d][b] = M^d·b: the contribution of byte b at distance d (mod 8) from the end.
_POWERS: Final = _powers()


def crc16_bytewise(data: bytes | bytearray | memoryview) -> int:
    """The table-driven loop of Annex A, one byte at a time (the reference)."""
    reg = 0xFFFF
    table = _TABLE
    for byte in data:
        reg = table[(reg >> 8) ^ byte]
    return reg


def crc16(data: bytes | bytearray | memoryview) -> int:
    """The Annex A CRC16 of ``data`` (the data segment's bytes only)."""
    n = len(data)
    if n == 0:
        return 0xFFFF
    # Byte k from the end sits at bits 8k..8k+7: fold halves (multiples of 64
    # bits) onto each other until one 8-byte lane per residue of k mod 8 is left.
    x = int.from_bytes(data, "big")
    width = 64 << ((n - 1) >> 3).bit_length()
    while width > 64:
        width >>= 1
        x = (x >> width) ^ (x & ((1 << width) - 1))
    p = _POWERS
    index = (
        p[0][x & 0xFF]
        ^ p[1][(x >> 8) & 0xFF]
        ^ p[2][(x >> 16) & 0xFF]
        ^ p[3][(x >> 24) & 0xFF]
        ^ p[4][(x >> 32) & 0xFF]
        ^ p[5][(x >> 40) & 0xFF]
        ^ p[6][(x >> 48) & 0xFF]
        ^ p[7][x >> 56]
        ^ p[(n - 1) & 7][0xFF]  # the initial register, XORed into the first byte
    )
    return _TABLE[index]


def crc16_hex(data: bytes | bytearray | memoryview) -> str:
    """The CRC as the frame carries it: 4 upper-case hex digits, high byte first."""
    return f"{crc16(data):04X}"


# --------------------------------------------------------------------------- variants
#
# Loggers in the field do not all follow Annex A: many compute CRC-16/MODBUS
# (the byte XORed into the *low* byte of the register), and some print that
# register with its two bytes swapped (low byte first, as Modbus RTU sends it).
# The receiver accepts them per device (config/hj212.yaml ``crc:``).

ANNEX_A: Final = "annex_a"
MODBUS: Final = "modbus"
MODBUS_SWAPPED: Final = "modbus_swapped"
VARIANTS: Final = (ANNEX_A, MODBUS, MODBUS_SWAPPED)


def _modbus_table() -> tuple[int, ...]:
    return tuple(_rounds(i) for i in range(256))


_MODBUS_TABLE: Final = _modbus_table()


def crc16_modbus(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/MODBUS (init 0xFFFF, reflected 0xA001, ``reg ^= byte`` first)."""
    reg = 0xFFFF
    table = _MODBUS_TABLE
    for byte in data:
        reg = (reg >> 8) ^ table[(reg ^ byte) & 0xFF]
    return reg


def crc_variant(data: bytes | bytearray | memoryview, variant: str) -> int:
    """The CRC of ``data`` as a logger using ``variant`` prints it."""
    if variant == ANNEX_A:
        return crc16(data)
    value = crc16_modbus(data)
    if variant == MODBUS_SWAPPED:
        return ((value & 0xFF) << 8) | (value >> 8)
    if variant == MODBUS:
        return value
    raise ValueError(f"unknown CRC variant {variant!r}")


def match_variant(
    data: bytes | bytearray | memoryview, value: int, variants: tuple[str, ...]
) -> str | None:
    """Which of ``variants`` (other than Annex A, already checked) gives ``value``."""
    if MODBUS in variants or MODBUS_SWAPPED in variants:
        modbus = crc16_modbus(data)
        if MODBUS in variants and value == modbus:
            return MODBUS
        if MODBUS_SWAPPED in variants and value == ((modbus & 0xFF) << 8) | (modbus >> 8):
            return MODBUS_SWAPPED
    return None


def crc_fits(frame: bytes | bytearray | memoryview, variant: str) -> bool:
    """Whether ``frame``'s CRC field is also what a ``variant`` logger prints.

    A CRC can fit two variants at once (MODBUS and its byte swap when both
    bytes are equal, or any two by a 1-in-65,536 chance); the decoder records
    the first that fits, the receiver asks this for the device's own.
    ``frame`` is a whole frame that decoded (``##``, length, data segment,
    CRC, with or without CRLF).
    """
    buf = bytes(frame).rstrip(b"\r\n")
    if len(buf) < 10:
        return False
    field_ = buf[-4:]
    try:
        value = int(field_, 16)
    except ValueError:
        return False
    return value == crc_variant(buf[6:-4], variant)
