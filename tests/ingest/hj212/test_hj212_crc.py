"""CRC16 of HJ 212-2017 Annex A (standards.md §7.6)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from envmon.ingest.hj212 import crc16, crc16_hex
from envmon.ingest.hj212.crc import crc16_bytewise

STANDARD_SEGMENT = (
    b"QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;"
    b"Flag=5;CP=&&RtdInterval=30&&"
)
SEGMENT_2005 = (
    b"ST=32;CN=2011;PW=000000;MN=LD130133000015;CP=&&DataTime=20160824003817;"
    b"011-Rtd=231.0,011-Flag=N;B01-Rtd=36.91;060-Rtd=1.803,060-Flag=N&&"
)


def annex_a(data: bytes) -> int:
    """The C routine of Annex A, transcribed bit by bit."""
    reg = 0xFFFF
    for byte in data:
        reg = (reg >> 8) ^ byte
        for _ in range(8):
            check = reg & 0x0001
            reg >>= 1
            if check:
                reg ^= 0xA001
    return reg


def modbus(data: bytes) -> int:
    """CRC-16/MODBUS, which Annex A is *not*."""
    reg = 0xFFFF
    for byte in data:
        reg ^= byte
        for _ in range(8):
            reg = (reg >> 1) ^ 0xA001 if reg & 1 else reg >> 1
    return reg


def test_standard_example_vector() -> None:
    assert len(STANDARD_SEGMENT) == 101
    assert crc16(STANDARD_SEGMENT) == 0x1C80
    assert crc16_hex(STANDARD_SEGMENT) == "1C80"


def test_2005_style_vector() -> None:
    assert len(SEGMENT_2005) == 136
    assert crc16(SEGMENT_2005) == 0x1DC0


def test_is_not_modbus() -> None:
    assert modbus(STANDARD_SEGMENT) == 0x0759
    assert crc16(STANDARD_SEGMENT) != modbus(STANDARD_SEGMENT)


def test_empty_and_hex_format() -> None:
    assert crc16(b"") == 0xFFFF
    assert crc16_hex(b"&&") == f"{annex_a(b'&&'):04X}"
    assert all(c in "0123456789ABCDEF" for c in crc16_hex(b"x"))


@given(st.binary(max_size=300))
def test_table_matches_annex_a_routine(data: bytes) -> None:
    assert crc16(data) == annex_a(data)
    assert crc16(bytearray(data)) == crc16(memoryview(data)) == crc16(data)


@given(st.binary(min_size=250, max_size=12_000))
def test_folded_crc_matches_the_bytewise_loop_on_long_frames(data: bytes) -> None:
    # The fold works on 8-byte lanes aligned on the end: every length and
    # alignment must agree with the one-byte-at-a-time table loop.
    assert crc16(data) == crc16_bytewise(data)
    for cut in (1, 7, 8, 9, 63, 64, 65):
        assert crc16(data[cut:]) == crc16_bytewise(data[cut:])


def test_every_length_and_byte_value() -> None:
    for n in range(1, 140):
        for fill in (0x00, 0x01, 0x80, 0xFF):
            data = bytes([fill]) * n
            assert crc16(data) == annex_a(data), (n, fill)
        ramp = bytes(range(n))
        assert crc16(ramp) == annex_a(ramp), n
