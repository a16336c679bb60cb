"""decode / encode / builders (HJ 212-2017 §6.3, standards.md §7)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envmon.errors import SkippableError
from envmon.ingest.hj212 import (
    CpData,
    Hj212Error,
    Message,
    answer,
    answer_frame,
    crc16,
    data_answer,
    decode,
    encode,
    history_request,
    new_qn,
    notify_answer,
    set_time_request,
)
from envmon.ingest.hj212.codec import (
    _CP_STRICT_RE,
    _parse_cp_general,
    _parse_cp_strict,
    _parse_header,
    _parse_header_strict,
)
from envmon.timeutil import BEIJING

MN = "010000A8900016F000169DC0"
STANDARD_FRAME = (
    b"##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;"
    b"Flag=5;CP=&&RtdInterval=30&&1C80\r\n"
)


def frame(segment: str | bytes, *, crc: str | None = None, length: str | None = None) -> bytes:
    data = segment.encode("utf-8") if isinstance(segment, str) else segment
    crc = crc if crc is not None else f"{crc16(data):04X}"
    length = length if length is not None else f"{len(data):04d}"
    return b"##" + length.encode() + data + crc.encode() + b"\r\n"


def upload(cp: str, *, flag: str = "5", extra: str = "") -> bytes:
    return frame(
        f"QN=20240115090012345;ST=22;CN=2061;PW=123456;MN={MN};Flag={flag};{extra}CP=&&{cp}&&"
    )


# ------------------------------------------------------------------ decode


def test_standard_example_decodes() -> None:
    m = decode(STANDARD_FRAME)
    assert m == Message(
        qn="20160801085857223",
        st="32",
        cn="1062",
        pw="100000",
        mn=MN,
        flag=5,
        cp=CpData({"RtdInterval": "30"}),
    )
    assert m.cp.raw == "RtdInterval=30"
    assert m.warnings == ()
    assert m.needs_answer
    assert not m.is_split
    assert (m.version, m.protocol) == (1, "HJ 212-2017")
    assert m.data_time is None


def test_frame_without_crlf_is_accepted_with_warning() -> None:
    m = decode(STANDARD_FRAME[:-2])
    assert m.cn == "1062"
    assert m.warnings == ("frame has no CRLF tail",)


def test_2005_packet() -> None:
    segment = (
        "ST=32;CN=2011;PW=000000;MN=LD130133000015;CP=&&DataTime=20160824003817;"
        "011-Rtd=231.0,011-Flag=N;B01-Rtd=36.91;060-Rtd=1.803,060-Flag=N&&"
    )
    raw = b"##0136" + segment.encode() + b"1DC0\r\n"
    m = decode(raw)
    assert (m.qn, m.flag, m.mn, m.version, m.protocol) == (
        None,
        None,
        "LD130133000015",
        0,
        "HJ/T 212-2005",
    )
    assert m.cp.pollutants == {
        "011": {"Rtd": "231.0", "Flag": "N"},
        "B01": {"Rtd": "36.91"},
        "060": {"Rtd": "1.803", "Flag": "N"},
    }
    assert m.data_time == datetime(2016, 8, 24, 0, 38, 17, tzinfo=BEIJING)
    assert "QN missing (HJ/T 212-2005 style)" in m.warnings
    assert "Flag missing" in m.warnings
    assert not m.needs_answer


def test_lower_case_crc_is_accepted() -> None:
    m = decode(STANDARD_FRAME.replace(b"1C80", b"1c80"))
    assert m.warnings == ("lower-case hex in CRC",)


def test_chinese_text_counts_utf8_bytes() -> None:
    info = "仪器运行正常"
    segment = (
        f"QN=20240115090000001;ST=22;CN=3020;PW=123456;MN={MN};Flag=4;CP=&&i12001-Info={info}&&"
    )
    raw = frame(segment)
    assert int(raw[2:6]) == len(segment) + 2 * len(info)  # 3 bytes per character
    assert decode(raw).cp.pollutants == {"i12001": {"Info": info}}
    # A logger that counts characters is tolerated, with a warning.
    short = frame(segment, length=f"{len(segment):04d}")
    assert decode(short).warnings == (
        f"length field counts characters ({len(segment)}), not UTF-8 bytes ({int(raw[2:6])})",
    )


def test_gbk_text_is_tolerated() -> None:
    segment = f"QN=20240115090000001;ST=22;CN=3020;PW=123456;MN={MN};Flag=4;CP=&&i1-Info=中文&&"
    m = decode(frame(segment.encode("gb18030")))
    assert m.cp.pollutants["i1"]["Info"] == "中文"
    assert "data segment is GB 18030, not UTF-8" in m.warnings


def test_tolerated_deviations_are_listed() -> None:
    segment = (
        f" QN=20240115090012345 ,ST=22;CN=2061;pw=123456;MN={MN};Flag=4;X=1;"
        "CP = && DataTime=20240115080000;a34004-Avg=35.2,a34004-Avg=99,;&&;"
    )
    m = decode(frame(segment))
    assert m.qn == "20240115090012345"
    assert m.pw == "123456"
    assert m.cp.pollutants == {"a34004": {"Avg": "35.2"}}
    assert set(m.warnings) == {
        "stray whitespace in header",
        "',' used as header separator",
        "header field 'pw' spelled differently from 'PW'",
        "unknown header field 'X' ignored",
        "whitespace inside 'CP=&&'",
        "trailing ';' after CP",
        "stray whitespace in CP",
        "CP key 'a34004-Avg' repeated; first value kept",
        "empty item in CP",
    }


def test_blank_cp_and_empty_cp() -> None:
    base = f"QN=20240115090000001;ST=91;CN=9013;PW=123456;MN={MN};Flag=4;"
    assert decode(frame(base + "CP=&& &&")).warnings == ("blank CP ('CP=&& &&')",)
    m = decode(frame(base + "CP=&&&&"))
    assert m.cp == CpData()
    assert m.warnings == ()


def test_seventeen_digit_datatime_is_tolerated() -> None:
    m = decode(upload("DataTime=20240115080000123;a34004-Avg=1"))
    assert m.data_time == datetime(2024, 1, 15, 8, 0, 0, 123000, tzinfo=BEIJING)
    assert "DataTime has 17 digits (milliseconds appended)" in m.warnings


def test_flag_properties_and_versions() -> None:
    def flagged(flag: str, extra: str = "") -> Message:
        return decode(upload("DataTime=20240115080000", flag=flag, extra=extra))

    split = flagged("7", "PNUM=3;PNO=2;")
    assert split.is_split
    assert split.needs_answer
    assert (split.pnum, split.pno) == (3, 2)
    assert flagged("9").protocol == "HJ 212-2025"
    assert flagged("0").protocol == "HJ/T 212-2005"
    odd = flagged("12")
    assert odd.version == 3
    assert odd.protocol == "HJ 212 (version 3)"
    assert "unknown protocol version 3 in Flag=12" in odd.warnings
    loose = flagged("4", "PNUM=1;PNO=1;")
    assert "PNUM/PNO present without the D bit" in loose.warnings


@pytest.mark.parametrize(
    ("raw", "reason", "code"),
    [
        (b"#@0101" + STANDARD_FRAME[6:], "bad_header", None),
        (b"", "bad_header", None),
        (STANDARD_FRAME.replace(b"##0101", b"##01a1"), "bad_length", None),
        (b"##01", "bad_length", None),
        (STANDARD_FRAME.replace(b"##0101", b"##0100"), "length_mismatch", None),
        (STANDARD_FRAME.replace(b"##0101", b"##0102"), "length_mismatch", None),
        (b"##0000AB\r\n", "length_mismatch", None),
        (STANDARD_FRAME.replace(b"1C80", b"1C8G"), "bad_crc", 9),
        (STANDARD_FRAME.replace(b"1C80", b"1C81"), "crc_mismatch", 9),
        (frame(b"QN=1;ST=22;\xff\xfe"), "bad_encoding", None),
        (frame("ST=22;CN=2011;MN=A;CP=&&a=\x01&&"), "bad_encoding", None),
        (frame(f"ST=22;CN=2011;MN={MN};Flag=4"), "missing_cp", None),
        (frame(f"ST=22;CN=2011;MN={MN};CP=DataTime=1"), "bad_cp", None),
        (frame(f"ST=22;CN=2011;MN={MN};CP=&&a=1"), "bad_cp", None),
        (frame(f"ST=22;CN=2011;MN={MN};CP=&&a=1&&b=2&&"), "bad_cp", None),
        (frame(f"CN=2011;MN={MN};CP=&&&&"), "missing_field", 5),
        (frame(f"ST=22;MN={MN};CP=&&&&"), "missing_field", 8),
        (frame("ST=22;CN=2011;CP=&&&&"), "missing_field", 4),
        (frame("ST=22;CN=2011;MN=;CP=&&&&"), "bad_field", 4),
        (frame(f"ST=2!;CN=2011;MN={MN};CP=&&&&"), "bad_field", 5),
        (frame(f"ST=22;CN=20x1;MN={MN};CP=&&&&"), "bad_field", 8),
        (frame(f"QN=2016-08-01;ST=22;CN=2011;MN={MN};CP=&&&&"), "bad_field", 7),
        (frame(f"ST=22;CN=2011;MN={MN};Flag=X;CP=&&&&"), "bad_field", 6),
        (frame(f"ST=22;CN=2011;MN={MN};Flag=256;CP=&&&&"), "bad_field", 6),
        (frame(f"ST=22;CN=2011;MN={MN};Flag=-1;CP=&&&&"), "bad_field", 6),
        (frame(f"ST=22;CN=2011;MN={MN};Flag=²;CP=&&&&"), "bad_field", 6),
        (frame(f"ST=22;CN=2011;MN={MN};Flag=6;PNUM=2;CP=&&&&"), "bad_field", 100),
        (frame(f"ST=22;CN=2011;MN={MN};Flag=6;PNUM=2;PNO=3;CP=&&&&"), "bad_field", 100),
        (frame(f"ST=22;CN=2011;MN={MN};Flag=6;PNUM=0;PNO=0;CP=&&&&"), "bad_field", 100),
        (frame(f"ST=22;CN=2011;MN={MN};Flag=6;PNUM=10000;PNO=1;CP=&&&&"), "bad_field", 100),
        (frame(f"ST=22;ST=22;CN=2011;MN={MN};CP=&&&&"), "bad_field", 100),
        (frame(f"ST=22;CN=2011;MN={MN};junk;CP=&&&&"), "bad_field", 100),
        (frame(f"ST=22;CN=2011;MN={MN};CP=&&a34004-Rtd&&"), "bad_field", None),
        (frame(f"ST=22;CN=2011;MN={MN};CP=&&-Rtd=1&&"), "bad_field", None),
        (frame(f"ST=22;CN=2011;MN={MN};CP=&&a34004-=1&&"), "bad_field", None),
        (frame(f"ST=22;CN=2011;MN={MN};CP=&&=1&&"), "bad_field", None),
        (frame(f"ST=22;CN=2011;MN={MN};CP=&&DataTime=20241301000000&&"), "bad_datatime", None),
        (frame(f"ST=22;CN=2011;MN={MN};CP=&&DataTime=2024011508&&"), "bad_datatime", None),
        (frame(f"ST=22;CN=2011;MN={MN};CP=&&DataTime=2024O115080000&&"), "bad_datatime", None),
        (frame(f"ST=22;CN=2011;MN={MN};CP=&&DataTime=20240230000000&&"), "bad_datatime", None),
    ],
)
def test_every_error_reason(raw: bytes, reason: str, code: int | None) -> None:
    with pytest.raises(Hj212Error) as info:
        decode(raw)
    assert info.value.reason == reason
    assert info.value.code == code
    assert isinstance(info.value, SkippableError)
    assert str(info.value).startswith(reason)


# ------------------------------------------------------------------ encode


def test_encode_standard_example_byte_for_byte() -> None:
    assert encode(decode(STANDARD_FRAME)) == STANDARD_FRAME


def test_encode_field_order_and_crc() -> None:
    m = Message(
        qn="20240115090012345",
        st="22",
        cn="2061",
        pw="123456",
        mn=MN,
        flag=7,
        pnum=2,
        pno=1,
        cp=CpData({"DataTime": "20240115080000"}, {"a34004": {"Avg": "35.2", "Flag": "N"}}),
    )
    raw = encode(m)
    segment = raw[6:-6]
    assert segment == (
        b"QN=20240115090012345;ST=22;CN=2061;PW=123456;MN=010000A8900016F000169DC0;"
        b"Flag=7;PNUM=2;PNO=1;CP=&&DataTime=20240115080000;a34004-Avg=35.2,a34004-Flag=N&&"
    )
    assert raw[2:6] == f"{len(segment):04d}".encode()
    assert raw[-6:-2] == f"{crc16(segment):04X}".encode()
    assert raw.endswith(b"\r\n")


@pytest.mark.parametrize(
    "message",
    [
        Message(qn=None, st="22", cn="2011", pw="a;b", mn=MN, flag=4),
        Message(qn=None, st="22", cn="2011", pw=None, mn=" x", flag=4),
        Message(qn="abc", st="22", cn="2011", pw=None, mn=MN, flag=4),
        Message(qn=None, st="22", cn="2011", pw=None, mn=MN, flag=300),
        Message(qn=None, st="22", cn="2011", pw=None, mn=MN, flag=-4),
        Message(qn=None, st="22", cn="2011", pw=None, mn=MN, flag=4, cp=CpData({"a": "1&&"})),
        Message(qn=None, st="22", cn="2011", pw=None, mn=MN, flag=4, cp=CpData({"a-b": "1"})),
        Message(qn=None, st="22", cn="2011", pw=None, mn=MN, flag=4, cp=CpData({"a": "x,y"})),
        Message(qn=None, st="22", cn="2011", pw=None, mn=MN, flag=4, cp=CpData({"a": "\n"})),
        Message(
            qn=None, st="22", cn="2011", pw=None, mn=MN, flag=4, cp=CpData({"DataTime": "2024"})
        ),
        Message(qn=None, st="22", cn="2011", pw=None, mn=MN, flag=4, cp=CpData({}, {"a1": {}})),
        Message(
            qn=None, st="22", cn="2011", pw=None, mn=MN, flag=4, cp=CpData({}, {"a1": {"R-x": "1"}})
        ),
    ],
)
def test_encode_refuses_what_would_not_decode_back(message: Message) -> None:
    with pytest.raises(Hj212Error) as info:
        encode(message)
    assert info.value.reason in {"bad_field", "bad_datatime"}


def test_encode_too_long() -> None:
    m = Message(qn=None, st="22", cn="2011", pw=None, mn=MN, flag=4, cp=CpData({"x": "9" * 10000}))
    with pytest.raises(Hj212Error, match="too_long"):
        encode(m)


_TEXT = st.text(
    st.characters(
        codec="utf-8",
        exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp"),
        exclude_characters=";,=&-\x85\xa0",
    ),
    min_size=1,
    max_size=8,
)
_VALUE = st.one_of(st.just(""), _TEXT, st.from_regex(r"-?[0-9]{1,4}\.[0-9]{1,3}", fullmatch=True))
_DIGITS = st.from_regex(r"[0-9]{17}", fullmatch=True)


@st.composite
def messages(draw: st.DrawFn) -> Message:
    flag = draw(st.one_of(st.none(), st.integers(0, 255)))
    split = flag is not None and bool(flag & 2)
    pnum = draw(st.integers(1, 9999)) if split else None
    pno = draw(st.integers(1, pnum)) if pnum is not None else None
    fields = draw(st.dictionaries(_TEXT, _VALUE, max_size=4))
    if draw(st.booleans()):
        ts = draw(st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31)))
        fields["DataTime"] = f"{ts:%Y%m%d%H%M%S}"
    pollutants = draw(
        st.dictionaries(_TEXT, st.dictionaries(_TEXT, _VALUE, min_size=1, max_size=4), max_size=5)
    )
    return Message(
        qn=draw(st.one_of(st.none(), _DIGITS)),
        st=draw(st.from_regex(r"[0-9A-Z]{2}", fullmatch=True)),
        cn=draw(st.from_regex(r"[0-9]{4}", fullmatch=True)),
        pw=draw(st.one_of(st.none(), st.from_regex(r"[0-9A-Za-z]{6}", fullmatch=True))),
        mn=draw(st.one_of(st.from_regex(r"[0-9A-F]{24}", fullmatch=True), _TEXT)),
        flag=flag,
        pnum=pnum,
        pno=pno,
        cp=CpData(fields, pollutants),
    )


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(messages())
def test_round_trip(message: Message) -> None:
    raw = encode(message)
    assert decode(raw) == message
    assert encode(decode(raw)) == raw


# ------------------------------------------------------------------ fast paths

_KEY = st.from_regex(r"[0-9A-Za-z_]{1,6}", fullmatch=True)
_CP_VALUE = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Z"), exclude_characters=";,=&"),
    max_size=6,
).filter(lambda v: not any(c.isspace() for c in v))
_CP_ITEMS = st.lists(
    st.tuples(_KEY, st.one_of(st.none(), _KEY), _CP_VALUE, st.sampled_from(";,")),
    min_size=1,
    max_size=12,
)


@settings(max_examples=500)
@given(_CP_ITEMS)
def test_strict_cp_path_equals_the_general_one(
    items: list[tuple[str, str | None, str, str]],
) -> None:
    # Repeated keys included: both keep the first value and say so the same way.
    content = "".join(
        f"{sep if i else ''}{key}{'-' + suffix if suffix else ''}={value}"
        for i, (key, suffix, value, sep) in enumerate(items)
    )
    assert _CP_STRICT_RE.fullmatch(content)
    fast: list[str] = []
    general: list[str] = []
    assert _parse_cp_strict(content, fast) == _parse_cp_general(content, general)
    assert fast == general


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(messages())
def test_strict_header_path_equals_the_general_one(message: Message) -> None:
    try:
        text = encode(message)[6:-6].decode("utf-8")
    except Hj212Error:
        return  # e.g. a drawn field named DataTime that is no time
    strict = _parse_header_strict(text)
    if strict is None:
        return  # not in the standard's exact form: only the general path reads it
    header, cp_start = strict
    warnings: list[str] = []
    assert header == _parse_header(text[: cp_start - 3], warnings)
    assert warnings == [] and text[cp_start - 3 : cp_start + 2] == "CP=&&"


def test_standard_frames_take_the_fast_paths() -> None:
    text = STANDARD_FRAME[6:-6].decode("ascii")
    strict = _parse_header_strict(text)
    assert strict is not None and strict[0]["MN"] == MN
    segment = upload("a34004-Avg=35,a34004-Flag=N;a34004-Avg=36")[6:-6].decode("ascii")
    header, cp_start = _parse_header_strict(segment) or ({}, 0)
    content = segment[cp_start + 2 : -2]
    assert header["Flag"] == "5" and _CP_STRICT_RE.fullmatch(content)
    warnings: list[str] = []
    cp = _parse_cp_strict(content, warnings)
    assert cp.pollutants == {"a34004": {"Avg": "35", "Flag": "N"}}
    assert warnings == ["CP key 'a34004-Avg' repeated; first value kept"]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(messages(), st.sampled_from(["2061", "2011", "2051", "1013", "9015", "1062", "9014"]))
def test_answer_frame_is_the_encoded_answer(message: Message, cn: str) -> None:
    m = replace(message, cn=cn)
    reply = answer(m)
    try:
        expected = None if reply is None else encode(reply)
    except Hj212Error:
        with pytest.raises(Hj212Error):
            answer_frame(m)
        return
    assert answer_frame(m) == expected
    if expected is not None:
        assert decode(expected) == reply


def test_answer_frame_of_odd_headers_takes_the_encoder() -> None:
    upload_ = Message(qn=None, st="32", cn="2061", pw=None, mn="LD130133000015", flag=1)
    assert answer_frame(upload_) == encode(data_answer(upload_))
    assert decode(answer_frame(upload_) or b"").qn is None


# ------------------------------------------------------------------ fuzz


def _decode_or_error(raw: bytes) -> None:
    """Either a Message or an Hj212Error with a reason; never anything else."""
    outcome: Message | Hj212Error
    try:
        outcome = decode(raw)
    except Hj212Error as err:
        outcome = err
    if isinstance(outcome, Hj212Error):
        assert outcome.reason
    else:
        assert isinstance(outcome, Message)
        outcome.data_time  # noqa: B018 - must not raise for an accepted message


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_fuzz_arbitrary_bytes(raw: bytes) -> None:
    _decode_or_error(raw)
    _decode_or_error(b"##" + raw)


_SEGMENT_ALPHABET = st.sampled_from(
    ["QN=", "ST=", "CN=", "PW=", "MN=", "Flag=", "PNUM=", "PNO=", "CP=&&", "&&", ";", ",", "=",
     "-", "Rtd", "Flag", "DataTime=", "2024011508000", "0", "1", "7", "9", "255", " ", "中",
     "a34004", "\x00", "²", "&", "#"]
)  # fmt: skip


@settings(max_examples=500)
@given(st.lists(_SEGMENT_ALPHABET, max_size=40).map("".join))
def test_fuzz_well_framed_segments(segment: str) -> None:
    # Correct length and CRC, so the parser itself is exercised.
    _decode_or_error(frame(segment))


@settings(max_examples=300)
@given(st.integers(0, len(STANDARD_FRAME) - 1), st.integers(0, 255), st.sampled_from("rid"))
def test_fuzz_mutated_frame(index: int, byte: int, op: str) -> None:
    raw = bytearray(STANDARD_FRAME)
    if op == "r":
        raw[index] = byte
    elif op == "i":
        raw.insert(index, byte)
    else:
        del raw[index]
    _decode_or_error(bytes(raw))


# ------------------------------------------------------------------ builders


def test_data_answer_for_annex_c_example() -> None:
    # §7.7: the hourly upload of Annex C, answered with 9014.
    device = Message(
        qn="20160801090000001",
        st="32",
        cn="2061",
        pw="123456",
        mn=MN,
        flag=5,
        cp=CpData({"DataTime": "20160801080000"}, {"w01018": {"Avg": "10.0", "Flag": "N"}}),
    )
    raw = encode(data_answer(device))
    segment = (
        b"QN=20160801090000001;ST=91;CN=9014;PW=123456;MN=010000A8900016F000169DC0;Flag=4;CP=&&&&"
    )
    assert raw == b"##0087" + segment + b"FF01\r\n"
    assert len(segment) == 87
    assert crc16(segment) == 0xFF01
    assert answer(device) == data_answer(device)


def test_answer_flag_keeps_device_version() -> None:
    def device(flag: int | None, cn: str = "2061") -> Message:
        return Message(qn="20240115090000001", st="22", cn=cn, pw="123456", mn=MN, flag=flag)

    assert data_answer(device(5)).flag == 4
    assert data_answer(device(9)).flag == 8
    assert data_answer(device(1)).flag == 0
    assert data_answer(device(None)).flag == 0
    assert data_answer(device(7)).flag == 4
    reply = notify_answer(device(9, "9015"))
    assert (reply.cn, reply.st, reply.flag, reply.cp) == ("9013", "91", 8, CpData())
    assert answer(device(9, "9015")) == reply
    assert answer(device(5, "1013")) == notify_answer(device(5, "1013"))
    assert answer(device(4)) is None  # A = 0: no answer (§7.7)
    assert answer(device(5, "9011")) is None


def test_set_time_request() -> None:
    now = datetime(2024, 1, 15, 1, 2, 3, 456789, tzinfo=UTC)
    m = set_time_request(MN, "123456", now)
    assert (m.cn, m.st, m.flag, m.qn) == ("1012", "22", 5, "20240115090203456")
    assert m.cp.fields == {"SystemTime": "20240115090203"}
    assert decode(encode(m)) == m


def test_history_request() -> None:
    begin = datetime(2016, 8, 1, 8, tzinfo=BEIJING)
    m = history_request(MN, "123456", begin=begin, end=begin, qn="20160801085857223")
    assert encode(m)[6:-6] == (
        b"QN=20160801085857223;ST=22;CN=2061;PW=123456;MN=010000A8900016F000169DC0;Flag=5;"
        b"CP=&&BeginTime=20160801080000;EndTime=20160801080000&&"
    )
    day = history_request(MN, "123456", "2031", begin=begin, end=begin, now=begin, st="21")
    assert (day.cn, day.st, day.qn) == ("2031", "21", "20160801080000000")
    with pytest.raises(Hj212Error):
        history_request(MN, "123456", "1062", begin=begin, end=begin)
    with pytest.raises(Hj212Error):
        history_request(MN, "123456", begin=begin, end=datetime(2016, 8, 1, tzinfo=BEIJING))


def test_new_qn() -> None:
    assert new_qn(datetime(2024, 1, 14, 16, 0, 0, 7000, tzinfo=UTC)) == "20240115000000007"
    assert new_qn(datetime(2024, 1, 15, 0, 0, 0)) == "20240115000000000"  # naive = Beijing
    qn = new_qn()
    assert len(qn) == 17
    assert qn.isdigit()


def test_d_bit_without_pnum_is_one_packet() -> None:
    # Issue 17: Annex C's real-time example (Flag=7, no PNUM/PNO) is one packet.
    message = decode(frame(f"ST=22;CN=2011;MN={MN};Flag=6;CP=&&&&"))
    assert message.pnum is None and message.is_split
    assert "Flag=6 has the D bit but no PNUM/PNO: one packet" in message.warnings


def test_zero_padded_pnum_and_list_values() -> None:
    split = decode(frame(f"ST=22;CN=2011;MN={MN};Flag=7;PNUM=00000003;PNO=00001;CP=&&&&"))
    assert (split.pnum, split.pno) == (3, 1)
    alarm = decode(
        frame(f"ST=22;CN=2011;MN={MN};Flag=5;CP=&&PolId=a34004,a34002;DataTime=20240115080000&&")
    )
    assert alarm.cp.fields["PolId"] == "a34004,a34002"
