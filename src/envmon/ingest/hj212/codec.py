"""HJ 212 frames ⇄ messages, sans-IO: whole frames in, :class:`Message` out.

Frame layout (HJ 212-2017 §6.3.1 Table 2)::

    ##  dddd  <data segment>  XXXX  \\r\\n

``dddd`` is the data segment's length, ``XXXX`` the Annex A CRC16 of the data
segment only.  The data segment is ``QN;ST;CN;PW;MN;Flag;[PNUM;PNO;]CP=&&…&&``
(§6.3.2 Table 3), the CP area ``key=value`` items separated by ``;`` and, within
one pollutant, by ``,`` (§6.3.3).

Length and CRC are computed over the UTF-8 *bytes*: the standard counts
"characters" because it assumes ASCII, and a Chinese ``-Info`` text would
otherwise give a length no byte-oriented receiver can frame.

Real packets deviate from the text (standards.md §7.9: "no fully conformant
packet has been seen in the field"), so the decoder is lenient wherever the
meaning stays unambiguous and records each deviation in ``Message.warnings``;
whatever would change the meaning of the data raises :class:`Hj212Error`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from typing import Final

from envmon.timeutil import BEIJING, to_beijing
from envmon.timeutil import now as beijing_now

from . import errors as e
from .crc import ANNEX_A, crc16, crc16_hex, crc_variant, match_variant
from .errors import Hj212Error

# Flag bits (HJ 212-2017 §6.3.2 Table 3 note): V5..V0 D A.
FLAG_A: Final = 0x01  # the command needs an answer
FLAG_D: Final = 0x02  # split packet: PNUM and PNO present
VERSION_2005: Final = 0
VERSION_2017: Final = 1
VERSION_2025: Final = 2  # UNCERTAIN (standards.md §7.2): from two implementations
PROTOCOLS: Final[dict[int, str]] = {
    VERSION_2005: "HJ/T 212-2005",
    VERSION_2017: "HJ 212-2017",
    VERSION_2025: "HJ 212-2025",
}

# Table 2 caps the data segment at 1024 characters; the 4-digit length field
# allows 9999, and some loggers send long history packets, so only > 9999 fails.
MAX_DATA_STANDARD: Final = 1024
MAX_DATA: Final = 9999

ST_ANSWER: Final = "91"  # Table 5: system interaction, used on every 90xx answer
CN_SET_TIME: Final = "1012"
CN_NOTIFY_ANSWER: Final = "9013"
CN_DATA_ANSWER: Final = "9014"
HISTORY_CNS: Final = frozenset({"2031", "2041", "2051", "2061"})
# §7.7: data uploads answered with 9014, notifications with 9013 (when A = 1).
# HJ 212-2017 uploads, the 2025 additions (2013 raw data, 2052 noise single
# measurement, 2062 automatic standard check, 2111 furnace temperature; names
# from caoyiliang/HJ212 HJ212/Enum.cs CN_Client) and the 3019/3020 uploads of a
# device's identifier and information.
UPLOAD_CNS: Final = frozenset(
    {"2011", "2013", "2021", "2031", "2041", "2051", "2052", "2061", "2062", "2081", "2111"}
    | {"3019", "3020"}
)
# 1013 time-calibration request; 2025: 1001 logger hardware SN, 1014 the field
# device asks for a new SM4 key, 9015 heartbeat.
NOTIFY_CNS: Final = frozenset({"1001", "1013", "1014", "9015"})

_HEADER_KEYS: Final = ("QN", "ST", "CN", "PW", "MN", "Flag", "PNUM", "PNO", "RF")
_HEADER_BY_UPPER: Final = {k.upper(): k for k in _HEADER_KEYS}
_HEX: Final = frozenset(b"0123456789abcdefABCDEF")
_DIGITS: Final = frozenset(b"0123456789")
_CP_RE: Final = re.compile(r"CP\s*=\s*&&")
_CP_LOOSE_RE: Final = re.compile(r"(?:^|[;,\s])CP\s*=")
_ST_RE: Final = re.compile(r"[0-9A-Za-z]{1,6}")
_ST_STRICT_RE: Final = re.compile(r"[0-9A-Z]{2}")
_MN_STRICT_RE: Final = re.compile(r"[0-9A-Fa-f]{24}")
_CONTROL_RE: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# Characters that would change the segment's structure if they sat in a value.
_HEADER_FORBIDDEN: Final = re.compile(r"[;,=&\x00-\x08\x0a-\x1f\x7f]")
_CP_KEY_FORBIDDEN: Final = re.compile(r"[;,=&\x00-\x08\x0a-\x1f\x7f]")
_CP_VALUE_FORBIDDEN: Final = re.compile(r"[;,&\x00-\x08\x0a-\x1f\x7f]")

# The fast paths of the decoder: a header and a CP area exactly as the standard
# writes them (what nearly every frame looks like) are read with one regex
# each.  Whatever does not match goes through the general parser, which
# tolerates and names every deviation: both give the same Message.
_HEADER_STRICT_RE: Final = re.compile(
    r"QN=([0-9]{17});ST=([0-9A-Z]{2});CN=([0-9]{4});PW=([0-9A-Za-z]+);"
    r"MN=([0-9A-Fa-f]{24});Flag=([0-9]{1,3});(?:PNUM=([0-9]{1,4});PNO=([0-9]{1,4});)?CP=&&"
)
_CP_STRICT_ITEM: Final = r"[0-9A-Za-z_]+(?:-[0-9A-Za-z_]+)?=[^;,=\s]*"
_CP_STRICT_RE: Final = re.compile(rf"{_CP_STRICT_ITEM}(?:[;,]{_CP_STRICT_ITEM})*")
_CP_ITEM_RE: Final = re.compile(r"([0-9A-Za-z_]+)(?:-([0-9A-Za-z_]+))?=([^;,=\s]*)")
# Header values an answer can echo without the general encoder's checks.
_ANSWER_QN_RE: Final = re.compile(r"[0-9]{1,20}")
_ANSWER_VALUE_RE: Final = re.compile(r"[0-9A-Za-z]{1,64}")


def _is_ascii_digits(text: str) -> bool:
    # str.isdigit() alone accepts "²" and Arabic-Indic digits, which int() then
    # either rejects or silently converts.
    return text.isascii() and text.isdigit()


def parse_time(value: str, *, name: str = "DataTime") -> datetime:
    """``YYYYMMDDhhmmss`` (Table 4, N14), Beijing time, as an aware datetime.

    A 17-digit value (milliseconds appended, seen in xiaoyao9184 issue #5) is
    accepted too; :func:`decode` records it as a warning.
    """
    if not _is_ascii_digits(value) or len(value) not in (14, 17):
        raise Hj212Error(e.BAD_DATATIME, f"{name}={value!r} is not YYYYMMDDhhmmss")
    try:
        return _datetime_of(value)
    except ValueError as err:
        raise Hj212Error(e.BAD_DATATIME, f"{name}={value!r}: {err}") from err


# Every station sends the same few DataTimes (this hour, the last minutes),
# each read three times per frame (decode, readings, history bookkeeping).
@lru_cache(maxsize=4096)
def _datetime_of(value: str) -> datetime:
    return datetime(
        int(value[0:4]),
        int(value[4:6]),
        int(value[6:8]),
        int(value[8:10]),
        int(value[10:12]),
        int(value[12:14]),
        int(value[14:17] or 0) * 1000,
        tzinfo=BEIJING,
    )


def format_time(ts: datetime) -> str:
    """An instant as Table 4's ``YYYYMMDDhhmmss`` in Beijing time (naive = Beijing)."""
    return f"{to_beijing(ts):%Y%m%d%H%M%S}"


def new_qn(now: datetime | None = None) -> str:
    """A request number, ``YYYYMMDDhhmmsszzz`` Beijing time (Table 3, QN)."""
    ts = to_beijing(now if now is not None else beijing_now())
    return f"{ts:%Y%m%d%H%M%S}{ts.microsecond // 1000:03d}"


@dataclass(frozen=True, slots=True)
class CpData:
    """The CP area (§6.3.3).

    ``fields`` holds the keys without a pollutant (DataTime, QnRtn, …),
    ``pollutants`` maps a pollutant code to its items (``"Rtd"``, ``"Flag"``…).
    ``raw`` is the text between ``CP=&&`` and ``&&`` as received; it does not
    take part in equality (an encoded and re-decoded message equals its source).
    """

    fields: dict[str, str] = field(default_factory=dict)
    pollutants: dict[str, dict[str, str]] = field(default_factory=dict)
    raw: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class Message:
    """One decoded HJ 212 data segment.

    ``warnings`` lists the tolerated deviations from the standard seen in the
    frame; it describes the frame, not the message, so it is left out of
    equality.
    """

    qn: str | None
    st: str
    cn: str
    pw: str | None
    mn: str
    flag: int | None
    pnum: int | None = None
    pno: int | None = None
    cp: CpData = field(default_factory=CpData)
    warnings: tuple[str, ...] = field(default=(), compare=False)
    # How the frame was checked: the CRC variant that matched and the length
    # field's excess over the data segment (6: loggers that count "real + 6").
    crc: str = field(default=ANNEX_A, compare=False)
    length_offset: int = field(default=0, compare=False)
    resend: bool = field(default=False, compare=False)  # HJ 212-2025 RF=1

    @property
    def needs_answer(self) -> bool:
        """The A bit: the device waits for a 9014/9013/9011 answer."""
        return self.flag is not None and bool(self.flag & FLAG_A)

    @property
    def is_split(self) -> bool:
        """The D bit: one of several packets (PNUM/PNO)."""
        return self.flag is not None and bool(self.flag & FLAG_D)

    @property
    def version(self) -> int:
        """Protocol version from Flag bits 7–2; no Flag at all means 2005."""
        return (self.flag or 0) >> 2

    @property
    def protocol(self) -> str:
        return PROTOCOLS.get(self.version, f"HJ 212 (version {self.version})")

    @property
    def data_time(self) -> datetime | None:
        """CP ``DataTime`` as an aware Beijing datetime (start of the interval
        for 2031/2051/2061, the sampling instant for 2011; §6.3.3)."""
        value = self.cp.fields.get("DataTime")
        return None if value is None else parse_time(value)


# --------------------------------------------------------------------------- decode


def decode(
    frame: bytes | bytearray | memoryview,
    *,
    crc_variants: tuple[str, ...] = (ANNEX_A,),
    length_offsets: tuple[int, ...] = (0,),
) -> Message:
    """Decode one whole frame; raise :class:`Hj212Error` for anything malformed.

    The trailing CRLF may be missing (some loggers omit it).  ``crc_variants``
    other than Annex A (:mod:`.crc`) and ``length_offsets`` other than 0 are
    accepted too when given; the message records which one matched (the
    receiver checks it against the device's profile).
    """
    buf = bytes(frame)
    warnings: list[str] = []
    if not buf.startswith(b"##"):
        raise Hj212Error(e.BAD_HEADER, f"frame starts with {buf[:2]!r}, not '##'")
    if buf.endswith(b"\r\n"):
        end = len(buf) - 2
    elif buf.endswith(b"\n"):
        end = len(buf) - 1
        warnings.append("frame ends with LF, not CRLF")
    else:
        end = len(buf)
        warnings.append("frame has no CRLF tail")
    length_field = buf[2:6]
    if len(length_field) != 4 or not _DIGITS.issuperset(length_field):
        raise Hj212Error(e.BAD_LENGTH, f"length field {length_field!r} is not 4 digits")
    declared = int(length_field)
    offset = 0
    if end - 6 < 4:
        raise Hj212Error(e.LENGTH_MISMATCH, f"frame too short for its CRC ({len(buf)} bytes)")
    data = buf[6 : end - 4]
    crc_field = buf[end - 4 : end]

    if not _HEX.issuperset(crc_field):
        raise Hj212Error(
            e.BAD_CRC, f"CRC field {crc_field!r} is not 4 hex digits", code=e.QNRTN_CRC
        )
    text = _decode_text(data, warnings)
    if len(data) != declared:
        # caoyiliang/HJ212 and similar count characters, not bytes (§7.1 UNCERTAIN).
        if declared - len(data) in length_offsets:
            offset = declared - len(data)
        elif len(text) == declared and len(data) != len(text):
            warnings.append(
                f"length field counts characters ({declared}), not UTF-8 bytes ({len(data)})"
            )
        else:
            raise Hj212Error(
                e.LENGTH_MISMATCH, f"length field says {declared}, data segment has {len(data)}"
            )
    expected = crc16(data)
    variant = ANNEX_A
    if int(crc_field, 16) != expected:
        variant = match_variant(data, int(crc_field, 16), crc_variants) or ""
    if not variant:
        raise Hj212Error(
            e.CRC_MISMATCH,
            f"CRC {crc_field.decode('ascii')} != computed {expected:04X}",
            code=e.QNRTN_CRC,
        )
    if crc_field != crc_field.upper():
        warnings.append("lower-case hex in CRC")
    if len(data) > MAX_DATA_STANDARD:
        warnings.append(f"data segment of {len(data)} bytes exceeds Table 2's 1024")
    message = parse_segment(text, warnings)
    if variant != ANNEX_A or offset:
        return replace(message, crc=variant, length_offset=offset)
    return message


def restamp(frame: bytes, *, crc: str = ANNEX_A, length_offset: int = 0) -> bytes:
    """``frame`` (as :func:`encode` writes it) with the length field and CRC a
    device of another variant expects (the receiver answers each device in
    the variant it uses)."""
    if crc == ANNEX_A and not length_offset:
        return frame
    data = frame[6:-6]
    return b"##%04d%b%04X\r\n" % (len(data) + length_offset, data, crc_variant(data, crc))


def _decode_text(data: bytes, warnings: list[str]) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        # Older Chinese loggers send GBK; GB 18030 is its superset.
        try:
            text = data.decode("gb18030")
        except UnicodeDecodeError as err:
            raise Hj212Error(
                e.BAD_ENCODING, f"data segment is neither UTF-8 nor GB 18030: {err}"
            ) from err
        warnings.append("data segment is GB 18030, not UTF-8")
    bad = _CONTROL_RE.search(text)
    if bad is not None:
        raise Hj212Error(
            e.BAD_ENCODING, f"control character {bad.group()!r} at offset {bad.start()}"
        )
    return text


def parse_segment(text: str, warnings: list[str] | None = None) -> Message:
    """Parse a data segment (the text between the length field and the CRC)."""
    warnings = [] if warnings is None else warnings
    strict = _parse_header_strict(text)
    if strict is not None:
        header, cp_start = strict
    else:
        match = _CP_RE.search(text)
        if match is None:
            if _CP_LOOSE_RE.search(text):
                raise Hj212Error(e.BAD_CP, "CP does not start with '&&'")
            raise Hj212Error(e.MISSING_CP, "no 'CP=&&' in the data segment")
        if match.group() != "CP=&&":
            warnings.append("whitespace inside 'CP=&&'")
        head = text[: match.start()]
        if head.strip() and not head.rstrip().endswith((";", ",")):
            # HJ 212-2017 Annex C typo "Flag=5CP=&&…" (standards.md §7.9).
            warnings.append("no ';' before CP")
        header = _parse_header(head, warnings)
        cp_start = match.end() - 2
    cp = _parse_cp(text[cp_start:], warnings)
    qn, st, cn, pw, mn, flag, pnum, pno = _check_header(header, warnings)
    rf = header.get("RF", cp.fields.get("RF"))
    if "DataTime" in cp.fields:
        value = cp.fields["DataTime"]
        parse_time(value)
        if len(value) == 17:
            warnings.append("DataTime has 17 digits (milliseconds appended)")
    return Message(
        qn=qn,
        st=st,
        cn=cn,
        pw=pw,
        mn=mn,
        flag=flag,
        pnum=pnum,
        pno=pno,
        cp=cp,
        warnings=tuple(dict.fromkeys(warnings)),
        resend=rf == "1",
    )


def _parse_header_strict(text: str) -> tuple[dict[str, str], int] | None:
    """The header of a segment that starts exactly as Table 3 writes it, and
    where its CP content starts (at the opening ``&&``); None for anything else."""
    strict = _HEADER_STRICT_RE.match(text)
    if strict is None:
        return None
    qn, st, cn, pw, mn, flag, pnum, pno = strict.groups()
    header = {"QN": qn, "ST": st, "CN": cn, "PW": pw, "MN": mn, "Flag": flag}
    if pnum is not None:
        header["PNUM"], header["PNO"] = pnum, pno
    return header, strict.end() - 2


def _parse_header(head: str, warnings: list[str]) -> dict[str, str]:
    if "," in head:
        # Annex C typo "QN=…534,ST=32" (standards.md §7.9); header values
        # never contain a comma, so it can only be a separator.
        warnings.append("',' used as header separator")
        pieces = re.split(r"[;,]", head)
    else:
        pieces = head.split(";")
    # The piece after the last ';' is what precedes "CP=" (normally empty).
    header: dict[str, str] = {}
    for index, piece in enumerate(pieces):
        item = piece.strip()
        if item != piece:
            warnings.append("stray whitespace in header")
        if not item:
            if index != len(pieces) - 1:
                warnings.append("empty header field")
            continue
        raw_key, sep, raw_value = item.partition("=")
        key, value = raw_key.strip(), raw_value.strip()
        if key != raw_key or value != raw_value:
            warnings.append("stray whitespace in header")
        if not sep:
            raise Hj212Error(e.BAD_FIELD, f"header item {item!r} has no '='", code=e.QNRTN_UNKNOWN)
        canonical = _HEADER_BY_UPPER.get(key.upper())
        if canonical is None:
            warnings.append(f"unknown header field {key!r} ignored")
            continue
        if canonical != key:
            warnings.append(f"header field {key!r} spelled differently from {canonical!r}")
        if canonical in header:
            raise Hj212Error(
                e.BAD_FIELD, f"header field {canonical} repeated", code=e.QNRTN_UNKNOWN
            )
        header[canonical] = value
    return header


def _check_header(
    header: dict[str, str], warnings: list[str]
) -> tuple[str | None, str, str, str | None, str, int | None, int | None, int | None]:
    """Validate the header fields (shared by decode and encode, so that every
    message :func:`encode` accepts decodes back to itself)."""
    qn = header.get("QN")
    if qn is None:
        warnings.append("QN missing (HJ/T 212-2005 style)")
    elif not _is_ascii_digits(qn):
        raise Hj212Error(e.BAD_FIELD, f"QN={qn!r} is not digits", code=e.QNRTN_QN)
    elif len(qn) != 17:
        warnings.append(f"QN has {len(qn)} digits, not 17")

    st = header.get("ST")
    if st is None:
        raise Hj212Error(e.MISSING_FIELD, "ST missing", code=e.QNRTN_ST)
    if not _ST_RE.fullmatch(st):
        raise Hj212Error(e.BAD_FIELD, f"ST={st!r} is not a system code", code=e.QNRTN_ST)
    if not _ST_STRICT_RE.fullmatch(st):
        warnings.append(f"ST={st!r} is not 2 characters 0-9/A-Z")

    cn = header.get("CN")
    if cn is None:
        raise Hj212Error(e.MISSING_FIELD, "CN missing", code=e.QNRTN_CN)
    if not _is_ascii_digits(cn) or len(cn) > 8:
        raise Hj212Error(e.BAD_FIELD, f"CN={cn!r} is not a command code", code=e.QNRTN_CN)
    if len(cn) != 4:
        warnings.append(f"CN={cn!r} is not 4 digits")

    pw = header.get("PW")
    if pw is None:
        warnings.append("PW missing")
    elif len(pw) != 6:
        warnings.append(f"PW has {len(pw)} characters, not 6")

    mn = header.get("MN")
    if mn is None:
        raise Hj212Error(e.MISSING_FIELD, "MN missing", code=e.QNRTN_MN)
    if not mn:
        raise Hj212Error(e.BAD_FIELD, "MN is empty", code=e.QNRTN_MN)
    if not _MN_STRICT_RE.fullmatch(mn):
        # 2005 MNs are 14 characters; 2017 ones 24 hex (EPC-96).
        warnings.append(f"MN has {len(mn)} characters, not 24 hex (EPC-96)")

    flag: int | None = None
    raw_flag = header.get("Flag")
    if raw_flag is None:
        warnings.append("Flag missing")
    else:
        if not _is_ascii_digits(raw_flag) or len(raw_flag) > 3 or int(raw_flag) > 255:
            raise Hj212Error(e.BAD_FIELD, f"Flag={raw_flag!r} is not 0-255", code=e.QNRTN_FLAG)
        flag = int(raw_flag)
        if flag >> 2 not in PROTOCOLS:
            warnings.append(f"unknown protocol version {flag >> 2} in Flag={flag}")

    pnum = _split_number(header, "PNUM")
    pno = _split_number(header, "PNO")
    if (pnum is None) != (pno is None):
        raise Hj212Error(e.BAD_FIELD, "only one of PNUM and PNO present", code=e.QNRTN_UNKNOWN)
    if flag is not None and flag & FLAG_D and pnum is None:
        # Annex C's real-time example sends Flag=7 alone: one packet.
        warnings.append(f"Flag={flag} has the D bit but no PNUM/PNO: one packet")
    if pnum is not None and pno is not None:
        if pno > pnum:
            raise Hj212Error(e.BAD_FIELD, f"PNO={pno} > PNUM={pnum}", code=e.QNRTN_UNKNOWN)
        if flag is None or not flag & FLAG_D:
            warnings.append("PNUM/PNO present without the D bit")
    return qn, st, cn, pw, mn, flag, pnum, pno


def _split_number(header: dict[str, str], key: str) -> int | None:
    value = header.get(key)
    if value is None:
        return None
    # Table 3: at most 4 digits (zero-padded "00000003" seen in the field);
    # packet numbers count from 1.
    if not _is_ascii_digits(value) or len(value.lstrip("0")) > 4 or int(value) == 0:
        raise Hj212Error(e.BAD_FIELD, f"{key}={value!r} is not 1-9999", code=e.QNRTN_UNKNOWN)
    return int(value)


def _parse_cp(cp_text: str, warnings: list[str]) -> CpData:
    """``cp_text`` starts with the opening ``&&``."""
    body = cp_text.rstrip()
    if body != cp_text:
        warnings.append("whitespace after CP")
    if body.endswith((";", ",")):
        warnings.append("trailing ';' after CP")
        body = body.rstrip(";, ")
    if len(body) < 4 or not body.endswith("&&"):
        raise Hj212Error(e.BAD_CP, "CP is not closed with '&&'")
    content = body[2:-2]
    if "&&" in content:
        raise Hj212Error(e.BAD_CP, "'&&' inside the CP area")
    if _CP_STRICT_RE.fullmatch(content):
        return _parse_cp_strict(content, warnings)
    return _parse_cp_general(content, warnings)


parse_cp = _parse_cp  # the receiver parses a decrypted CP area with it


def _parse_cp_strict(content: str, warnings: list[str]) -> CpData:
    """A CP content that matches ``_CP_STRICT_RE``: same result as the general path."""
    fields: dict[str, str] = {}
    pollutants: dict[str, dict[str, str]] = {}
    for code, suffix, value in _CP_ITEM_RE.findall(content):
        if suffix:
            items = pollutants.get(code)
            if items is None:
                items = pollutants[code] = {}
            if suffix in items:
                warnings.append(f"CP key {code + '-' + suffix!r} repeated; first value kept")
                continue
            items[suffix] = value
        elif code in fields:
            warnings.append(f"CP key {code!r} repeated; first value kept")
        else:
            fields[code] = value
    return CpData(fields, pollutants, content)


def _parse_cp_general(content: str, warnings: list[str]) -> CpData:
    fields: dict[str, str] = {}
    pollutants: dict[str, dict[str, str]] = {}
    if not content.strip():
        if content:
            warnings.append("blank CP ('CP=&& &&')")  # Annex C Table C.4 typo
        return CpData(fields, pollutants, content)
    for item in content.split(";"):
        last: tuple[dict[str, str], str] | None = None
        for part in item.split(","):
            entry = part.strip()
            if entry != part:
                warnings.append("stray whitespace in CP")
            if not entry:
                warnings.append("empty item in CP")
                continue
            if "=" not in entry and last is not None and not _CP_KEY_FORBIDDEN.search(entry):
                # A list value: "PolId=a34004,a34002" (alarm and 3020 packets).
                target, name = last
                target[name] += "," + entry
                warnings.append("list value in CP")
                continue
            raw_key, sep, raw_value = entry.partition("=")
            key, value = raw_key.strip(), raw_value.strip()
            if key != raw_key or value != raw_value:
                warnings.append("stray whitespace in CP")
            if not sep or not key:
                raise Hj212Error(e.BAD_FIELD, f"CP item {entry!r} is not key=value")
            if "-" in key:
                code, _, suffix = key.rpartition("-")
                if not code or not suffix:
                    raise Hj212Error(e.BAD_FIELD, f"CP key {key!r} is not code-Item")
                items = pollutants.setdefault(code, {})
                target = items
                name = suffix
            else:
                target = fields
                name = key
            if name in target:
                warnings.append(f"CP key {key!r} repeated; first value kept")
                last = None
                continue
            target[name] = value
            last = (target, name)
    return CpData(fields, pollutants, content)


# --------------------------------------------------------------------------- encode


def encode(message: Message) -> bytes:
    """The full frame for ``message``: length, upper-case CRC, CRLF.

    Field order follows every example of the standard:
    ``QN;ST;CN;PW;MN;Flag;[PNUM;PNO;]CP=&&…&&``; absent optional fields
    (QN, PW, Flag) are left out.  Raise :class:`Hj212Error` for a message that
    could not be decoded back to itself.
    """
    data = encode_segment(message).encode("utf-8")
    if len(data) > MAX_DATA:
        raise Hj212Error(e.TOO_LONG, f"data segment of {len(data)} bytes exceeds 9999")
    return b"##%04d%b%b\r\n" % (len(data), data, crc16_hex(data).encode("ascii"))


def encode_segment(message: Message) -> str:
    """The data segment text of ``message`` (validated)."""
    header: dict[str, str] = {}
    for key, value in (
        ("QN", message.qn),
        ("ST", message.st),
        ("CN", message.cn),
        ("PW", message.pw),
        ("MN", message.mn),
        ("Flag", None if message.flag is None else str(message.flag)),
        ("PNUM", None if message.pnum is None else str(message.pnum)),
        ("PNO", None if message.pno is None else str(message.pno)),
    ):
        if value is None:
            continue
        if _HEADER_FORBIDDEN.search(value) or value != value.strip():
            raise Hj212Error(e.BAD_FIELD, f"{key}={value!r} cannot be encoded")
        header[key] = value
    if message.flag is not None and message.flag < 0:
        raise Hj212Error(e.BAD_FIELD, f"Flag={message.flag} is negative", code=e.QNRTN_FLAG)
    _check_header(header, [])
    parts = [f"{key}={value}" for key, value in header.items()]
    parts.append(f"CP=&&{encode_cp(message.cp)}&&")
    return ";".join(parts)


def encode_cp(cp: CpData) -> str:
    """The CP content: top-level fields first, then one item per pollutant."""
    items: list[str] = []
    for key, value in cp.fields.items():
        _check_cp_item(key, value)
        if "-" in key:
            raise Hj212Error(e.BAD_FIELD, f"CP field {key!r} contains '-'")
        items.append(f"{key}={value}")
    if "DataTime" in cp.fields:
        parse_time(cp.fields["DataTime"])
    for code, values in cp.pollutants.items():
        if not values:
            raise Hj212Error(e.BAD_FIELD, f"pollutant {code!r} has no items")
        subitems = []
        for name, value in values.items():
            if "-" in name or not code:
                raise Hj212Error(e.BAD_FIELD, f"pollutant key {code!r}-{name!r} is ambiguous")
            key = f"{code}-{name}"
            _check_cp_item(key, value)
            subitems.append(f"{key}={value}")
        items.append(",".join(subitems))
    return ";".join(items)


def _check_cp_item(key: str, value: str) -> None:
    if not key or _CP_KEY_FORBIDDEN.search(key) or key != key.strip():
        raise Hj212Error(e.BAD_FIELD, f"CP key {key!r} cannot be encoded")
    if _CP_VALUE_FORBIDDEN.search(value) or value != value.strip():
        raise Hj212Error(e.BAD_FIELD, f"CP value {key}={value!r} cannot be encoded")


# --------------------------------------------------------------------------- builders


def answer_flag(message: Message) -> int:
    """Flag for an answer to ``message``: the device's version bits, A = D = 0.

    HJ 212-2017 answers carry Flag=4 (Annex C); a 2025 device gets 8 and a
    2005 device 0, so each device sees its own protocol version echoed.
    """
    return (message.version & 0x3F) << 2


def data_answer(message: Message) -> Message:
    """9014 data answer to an upload with A = 1 (§7.7): same QN, PW and MN."""
    return Message(
        qn=message.qn,
        st=ST_ANSWER,
        cn=CN_DATA_ANSWER,
        pw=message.pw,
        mn=message.mn,
        flag=answer_flag(message),
    )


def notify_answer(message: Message) -> Message:
    """9013 notification answer (to 1013 time-calibration requests, 9015 heartbeats…)."""
    return Message(
        qn=message.qn,
        st=ST_ANSWER,
        cn=CN_NOTIFY_ANSWER,
        pw=message.pw,
        mn=message.mn,
        flag=answer_flag(message),
    )


def answer_frame(message: Message) -> bytes | None:
    """``encode(answer(message))``: the frame to send back, if any.

    The receiver answers every upload, so the usual answer — QN, PW and MN of
    plain letters and digits — is formatted directly rather than checked field
    by field by :func:`encode`; anything else takes :func:`encode`.
    """
    if not message.needs_answer:
        return None
    if message.cn in UPLOAD_CNS:
        cn = CN_DATA_ANSWER
    elif message.cn in NOTIFY_CNS:
        cn = CN_NOTIFY_ANSWER
    else:
        return None
    qn, pw, mn = message.qn, message.pw, message.mn
    if (
        qn is None
        or pw is None
        or not _ANSWER_QN_RE.fullmatch(qn)
        or not _ANSWER_VALUE_RE.fullmatch(pw)
        or not _ANSWER_VALUE_RE.fullmatch(mn)
    ):
        reply = answer(message)
        return None if reply is None else encode(reply)
    data = (
        f"QN={qn};ST={ST_ANSWER};CN={cn};PW={pw};MN={mn};Flag={answer_flag(message)};CP=&&&&"
    ).encode("ascii")
    return b"##%04d%b%b\r\n" % (len(data), data, b"%04X" % crc16(data))


def answer(message: Message) -> Message | None:
    """What the host must send back to ``message`` from a device (§7.7), if anything.

    Uploads with A = 1 get a 9014, notifications with A = 1 (1013, the 2025
    heartbeat 9015) a 9013; everything else, and A = 0, gets nothing.  For a
    1013 the host then also sends :func:`set_time_request`.
    """
    if not message.needs_answer:
        return None
    if message.cn in UPLOAD_CNS:
        return data_answer(message)
    if message.cn in NOTIFY_CNS:
        return notify_answer(message)
    return None


def set_time_request(
    mn: str,
    pw: str,
    now: datetime,
    *,
    st: str = "22",
    qn: str | None = None,
    version: int = VERSION_2017,
) -> Message:
    """1012 "set field time" request (Annex C Table C.3), A = 1.

    ``st`` is the device's system code (22 air quality, 21 surface water).
    """
    return Message(
        qn=qn if qn is not None else new_qn(now),
        st=st,
        cn=CN_SET_TIME,
        pw=pw,
        mn=mn,
        flag=(version << 2) | FLAG_A,
        cp=CpData({"SystemTime": format_time(now)}),
    )


def history_request(
    mn: str,
    pw: str,
    cn: str = "2061",
    *,
    begin: datetime,
    end: datetime,
    qn: str | None = None,
    now: datetime | None = None,
    st: str = "22",
    version: int = VERSION_2017,
) -> Message:
    """History data request (2031 day, 2041, 2051 minute, 2061 hour), A = 1.

    ``BeginTime``/``EndTime`` are interval starts, inclusive (Annex C: one hour
    is requested as ``BeginTime=EndTime=20160801080000``).
    """
    if cn not in HISTORY_CNS:
        raise Hj212Error(e.BAD_FIELD, f"CN={cn} is not a history command", code=e.QNRTN_CN)
    if end < begin:
        raise Hj212Error(e.BAD_FIELD, "EndTime before BeginTime")
    return Message(
        qn=qn if qn is not None else new_qn(now),
        st=st,
        cn=cn,
        pw=pw,
        mn=mn,
        flag=(version << 2) | FLAG_A,
        cp=CpData({"BeginTime": format_time(begin), "EndTime": format_time(end)}),
    )
