"""Stream framing and split-packet reassembly, sans-IO.

:class:`StreamDecoder` turns TCP chunks of any size into :class:`Frame` events;
:class:`SplitAssembler` merges PNUM/PNO packets.  Neither touches a socket or a
clock: the receiver feeds bytes and passes the time in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from . import errors as e
from .codec import FLAG_A, FLAG_D, CpData, Message, decode
from .crc import ANNEX_A
from .errors import Hj212Error

_HASH: Final = 0x23  # '#'
_DIGITS: Final = frozenset(b"0123456789")


@dataclass(frozen=True, slots=True)
class Frame:
    """One event of the stream: a decoded message or an error, with the bytes
    it came from (the receiver keeps every raw frame for provenance)."""

    raw: bytes
    message: Message | None = None
    error: Hj212Error | None = None

    @property
    def ok(self) -> bool:
        return self.message is not None


class StreamDecoder:
    """Frame a byte stream into HJ 212 frames.

    A frame starts at ``##``; its 4-digit length field N says where the CRC and
    CRLF should be, N + 6 bytes after the header.  Data segments hold no control
    characters, so the first CRLF after the header ends the frame: a correct
    frame is therefore validated exactly when its N + 6 bytes have arrived,
    while a frame whose length field is wrong is reported as soon as its CRLF
    arrives instead of swallowing the frames behind it.

    Bytes outside frames are skipped and reported as one ``garbage`` event per
    run (at most ``max_buffer`` bytes each), not per byte; whitespace between
    frames is dropped silently.  A frame that does not end within
    ``max_buffer`` bytes is reported as ``buffer_overflow`` and the decoder
    resynchronises on the next ``##``.

    Work per feed is linear in the new bytes: the buffer is a ``bytearray``
    compacted once per call, and the CRLF search resumes where it stopped.
    """

    def __init__(
        self,
        *,
        max_buffer: int = 65536,
        crc_variants: tuple[str, ...] = (ANNEX_A,),
        length_offsets: tuple[int, ...] = (0,),
    ) -> None:
        if max_buffer < 64:
            raise ValueError("max_buffer must be at least 64 bytes")
        self._max = max_buffer
        # What decode() may accept besides the standard (the receiver's device
        # profiles say which device may use which).
        self._crc_variants = crc_variants
        self._length_offsets = length_offsets
        self._buf = bytearray()
        # Offset from the current frame start up to which CRLF was searched.
        self._scanned = 0
        # Bytes being skipped, reported as one event (bounded by max_buffer).
        self._junk = bytearray()
        self._junk_error: Hj212Error | None = None

    @property
    def buffered(self) -> int:
        """Bytes held back waiting for the rest of a frame."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        """Add a chunk; return the events it completes, in stream order."""
        if data:
            self._buf += data
        events: list[Frame] = []
        consumed = self._parse(events)
        if consumed:
            del self._buf[:consumed]
        return events

    def close(self) -> list[Frame]:
        """End of stream: report what is left (a last frame without CRLF decodes;
        anything else is ``truncated``) and reset."""
        events: list[Frame] = []
        rest = bytes(self._buf)
        self._buf.clear()
        self._scanned = 0
        if rest.startswith(b"##"):
            self._flush_junk(events)
            try:
                events.append(
                    Frame(
                        rest,
                        decode(
                            rest,
                            crc_variants=self._crc_variants,
                            length_offsets=self._length_offsets,
                        ),
                    )
                )
            except Hj212Error as err:
                events.append(
                    Frame(
                        rest,
                        error=Hj212Error(
                            e.TRUNCATED,
                            f"stream ended inside a frame after {len(rest)} bytes ({err.reason})",
                        ),
                    )
                )
        elif rest:
            self._discard(memoryview(rest), events)
        self._flush_junk(events)
        return events

    # ------------------------------------------------------------------ internals

    def _parse(self, events: list[Frame]) -> int:
        buf = self._buf
        n = len(buf)
        pos = 0
        while pos < n:
            if buf[pos] != _HASH or pos + 1 >= n or buf[pos + 1] != _HASH:
                start = buf.find(b"##", pos)
                if start < 0:
                    # Keep a last '#': it may be the first half of the next "##".
                    stop = n - 1 if buf[-1] == _HASH else n
                    self._discard(memoryview(buf)[pos:stop], events)
                    pos = stop
                    break
                self._discard(memoryview(buf)[pos:start], events)
                pos = start
            self._flush_junk(events)
            if n - pos < 6:
                break
            length_field = buf[pos + 2 : pos + 6]
            if not _DIGITS.issuperset(length_field):
                if buf[pos + 2] == _HASH:
                    # "###0101…": the first '#' is noise, the frame starts after it.
                    self._discard(memoryview(buf)[pos : pos + 1], events)
                    pos += 1
                else:
                    error = Hj212Error(
                        e.BAD_LENGTH, f"length field {bytes(length_field)!r} is not 4 digits"
                    )
                    self._discard(memoryview(buf)[pos : pos + 2], events, error)
                    pos += 2
                continue
            declared = int(length_field)
            end = self._frame_end(buf, pos, declared)
            if end is None:
                if n - pos > self._max:
                    pos = self._resync(
                        buf,
                        pos,
                        events,
                        Hj212Error(
                            e.BUFFER_OVERFLOW,
                            f"no frame end within max_buffer={self._max} bytes",
                        ),
                    )
                    continue
                # Char-counting loggers send at most 4 bytes per counted character.
                if n - pos > 4 * declared + 12:
                    pos = self._resync(
                        buf,
                        pos,
                        events,
                        Hj212Error(
                            e.LENGTH_MISMATCH,
                            f"no CRLF where length field {declared} says the frame ends",
                        ),
                    )
                    continue
                break
            self._scanned = 0
            pos = self._emit(buf, pos, end, events)
        return pos

    def _frame_end(self, buf: bytearray, pos: int, declared: int) -> int | None:
        """End offset of the frame at ``pos`` (after its CRLF), or None to wait."""
        start = pos + max(6, self._scanned - 1)
        crlf = buf.find(b"\r\n", start)
        if crlf >= 0:
            return crlf + 2
        self._scanned = len(buf) - pos
        # A logger that omits CRLF: the next frame starts right after the CRC.
        expected = pos + declared + 12
        if len(buf) >= expected and buf[expected - 2 : expected] == b"##":
            return expected - 2
        return None

    def _emit(self, buf: bytearray, pos: int, end: int, events: list[Frame]) -> int:
        """Decode ``buf[pos:end]``, append its event, return the next position."""
        candidate = bytes(buf[pos:end])
        try:
            events.append(
                Frame(
                    candidate,
                    decode(
                        candidate,
                        crc_variants=self._crc_variants,
                        length_offsets=self._length_offsets,
                    ),
                )
            )
            return end
        except Hj212Error as err:
            inner = candidate.find(b"##", 2)
            if inner < 0:
                events.append(Frame(candidate, error=err))
                return end
        # A new "##" inside a bad frame: the frame before it was cut short (or
        # lacks its CRLF); report it alone and resume at the inner frame.
        head = candidate[:inner]
        try:
            events.append(
                Frame(
                    head,
                    decode(
                        head, crc_variants=self._crc_variants, length_offsets=self._length_offsets
                    ),
                )
            )
        except Hj212Error as err:
            events.append(
                Frame(
                    head,
                    error=Hj212Error(
                        e.TRUNCATED,
                        f"frame cut short by a new '##' after {len(head)} bytes ({err.reason})",
                    ),
                )
            )
        return pos + inner

    def _resync(self, buf: bytearray, pos: int, events: list[Frame], error: Hj212Error) -> int:
        """Drop the frame at ``pos`` up to the next ``##``; return that position."""
        self._scanned = 0
        nxt = buf.find(b"##", pos + 2)
        if nxt < 0:
            nxt = len(buf) - 1 if buf[-1] == _HASH else len(buf)
        self._discard(memoryview(buf)[pos:nxt], events, error)
        return nxt

    def _discard(
        self, chunk: memoryview, events: list[Frame], error: Hj212Error | None = None
    ) -> None:
        if error is not None:
            self._flush_junk(events)
            self._junk_error = error
        while chunk:
            room = self._max - len(self._junk)
            self._junk += chunk[:room]
            chunk = chunk[room:]
            if len(self._junk) >= self._max:
                self._flush_junk(events)

    def _flush_junk(self, events: list[Frame]) -> None:
        junk, error = self._junk, self._junk_error
        self._junk_error = None
        if not junk:
            return
        # CRLFs and spaces between frames are noise, not garbage worth a report.
        if error is not None or junk.strip():
            events.append(
                Frame(
                    bytes(junk),
                    error=error
                    or Hj212Error(e.GARBAGE, f"{len(junk)} bytes outside any frame skipped"),
                )
            )
        self._junk = bytearray()


# --------------------------------------------------------------------------- split packets


@dataclass(slots=True)
class _Group:
    pnum: int
    first_seen: float
    last_seen: float
    parts: dict[int, Message] = field(default_factory=dict)
    # The caller's token of each packet kept (the receiver's journal entry).
    tokens: dict[int, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Released:
    """A group that left the assembler: merged (``item`` a message) or given
    up (``item`` an error), with the tokens its packets were added with."""

    item: Message | Hj212Error
    tokens: tuple[object, ...] = ()


class SplitAssembler:
    """Reassemble split packets (Flag D bit, PNUM/PNO; §6.3.2 Table 3).

    Packets belong together when MN, CN and QN agree (whichever packet carries
    the DataTime, in any order; not across two DataTimes), or when MN, CN and
    CP ``DataTime`` agree: a device that waits for a 9014 per packet may give
    every packet its own QN (§7.7).
    When PNO 1..PNUM have all arrived, one merged message comes out (pollutants
    merged, the first packet's header, D and A bits cleared).  Answers are per
    packet, before reassembly (the receiver sends each once the packet is
    durable in its journal: :mod:`.splitjournal`).  Each packet may carry a
    token (:meth:`take`) that comes back with its group when it leaves.

    Memory is bounded: at most ``max_groups`` open groups (the oldest is
    evicted as an error), at most ``max_parts`` packets per group, and groups
    idle longer than ``timeout`` seconds are returned by :meth:`expire`.
    ``now`` is any monotonic clock in seconds, passed in by the caller.
    """

    def __init__(
        self, *, timeout: float = 600.0, max_groups: int = 256, max_parts: int = 1000
    ) -> None:
        self._timeout = timeout
        self._max_groups = max_groups
        self._max_parts = max_parts
        self._groups: dict[tuple[str, str, str], _Group] = {}
        # The group each (MN, CN) opened last: later packets of loggers that
        # put DataTime in the first packet only (and a QN of their own in each)
        # belong to it.
        self._latest: dict[tuple[str, str], tuple[str, str, str]] = {}
        # The group each (MN, CN, QN) opened: packets sharing a QN (common
        # loggers) belong together whichever of them carries the DataTime and
        # in whatever order they arrive.
        self._by_qn: dict[tuple[str, str, str], tuple[str, str, str]] = {}

    def __len__(self) -> int:
        return len(self._groups)

    def key_for(self, message: Message) -> tuple[str, str, str]:
        """The group a packet belongs to (MN, CN, DataTime or QN); a later packet
        without DataTime joins the group its MN and CN opened last with one."""
        if message.qn is not None:
            opened = self._by_qn.get((message.mn, message.cn, message.qn))
            group = self._groups.get(opened) if opened is not None else None
            if opened is not None and group is not None and _same_time(group, message):
                return opened
        key = _group_key(message)
        if "DataTime" not in message.cp.fields and (message.pno or 0) > 1:
            latest = self._latest.get((message.mn, message.cn))
            group = self._groups.get(latest) if latest is not None else None
            # Only a group whose first packet had the DataTime: without any,
            # packets are grouped by QN.
            if (
                latest is not None
                and group is not None
                and group.pnum == message.pnum
                and latest[2].startswith("DataTime=")
            ):
                return latest
        return key

    def add(self, message: Message, now: float) -> list[Message | Hj212Error]:
        """Take one packet; return a merged message when a group completes,
        errors for groups given up, or nothing while waiting."""
        return [r.item for r in self.take(message, now)[0]]

    def take(
        self, message: Message, now: float, token: object = None
    ) -> tuple[list[Released], bool]:
        """:meth:`add` with a token for the packet (``None``: the message).

        Returns the groups released (each with the tokens of its packets) and
        whether this packet is now held in an open group (False when it
        completed its group, was refused, or repeats a packet held already).
        """
        token = message if token is None else token
        if message.pnum is None or message.pno is None:
            return [Released(message, (token,))], False
        out: list[Released] = []
        if message.pnum > self._max_parts:
            error = Hj212Error(
                e.SPLIT_INCOMPLETE,
                f"MN={message.mn} CN={message.cn}: PNUM={message.pnum} exceeds "
                f"max_parts={self._max_parts}",
            )
            return [Released(error, (token,))], False
        key = self.key_for(message)
        group = self._groups.get(key)
        if group is not None and group.pnum != message.pnum:
            del self._groups[key]
            out.append(
                Released(
                    Hj212Error(
                        e.SPLIT_CONFLICT,
                        f"{_describe(key)}: PNUM changed from {group.pnum} to {message.pnum}; "
                        f"{len(group.parts)} earlier packets dropped",
                    ),
                    tuple(group.tokens.values()),
                )
            )
            group = None
        if group is None:
            if len(self._groups) >= self._max_groups:
                oldest = next(iter(self._groups))
                out.append(_incomplete(oldest, self._groups.pop(oldest), "evicted (max_groups)"))
            group = _Group(message.pnum, now, now)
            self._groups[key] = group
            if len(self._latest) > 4 * self._max_groups:
                self._latest.clear()
            self._latest[(message.mn, message.cn)] = key
            if len(self._by_qn) > 4 * self._max_groups:
                self._by_qn = {k: v for k, v in self._by_qn.items() if v in self._groups}
            if message.qn is not None:
                self._by_qn[(message.mn, message.cn, message.qn)] = key
        group.last_seen = max(group.last_seen, now)
        # A repeated PNO is a retransmission (the 9014 got lost): keep the first.
        held = message.pno not in group.parts
        if held:
            group.parts[message.pno] = message
            group.tokens[message.pno] = token
        if len(group.parts) == group.pnum:
            del self._groups[key]
            order = sorted(group.parts)
            out.append(
                Released(
                    _merge([group.parts[i] for i in order]),
                    tuple(group.tokens[i] for i in order),
                )
            )
            held = False
        return out, held

    def discard(self, message: Message, token: object) -> None:
        """Take back a packet added with ``token`` (the caller could not keep
        it: its resend must count as new, not as a repeat)."""
        key = self.key_for(message)
        group = self._groups.get(key)
        if group is None or message.pno is None or group.tokens.get(message.pno) is not token:
            return
        del group.parts[message.pno], group.tokens[message.pno]
        if not group.parts:
            del self._groups[key]

    def expire(self, now: float) -> list[Hj212Error]:
        """Give up groups idle for longer than ``timeout``; return them as errors."""
        return [r.item for r in self.expire_released(now) if isinstance(r.item, Hj212Error)]

    def expire_released(self, now: float) -> list[Released]:
        """:meth:`expire` with the tokens of each group's packets."""
        stale = [k for k, g in self._groups.items() if now - g.last_seen > self._timeout]
        return [
            _incomplete(key, self._groups.pop(key), f"timed out after {self._timeout:g} s")
            for key in stale
        ]


def _group_key(message: Message) -> tuple[str, str, str]:
    data_time = message.cp.fields.get("DataTime")
    tag = f"DataTime={data_time}" if data_time is not None else f"QN={message.qn}"
    return (message.mn, message.cn, tag)


def _same_time(group: _Group, message: Message) -> bool:
    """No packet of ``group`` names another DataTime than ``message`` (a QN
    reused for another period's upload does not join it)."""
    data_time = message.cp.fields.get("DataTime")
    if data_time is None:
        return True
    return all(p.cp.fields.get("DataTime", data_time) == data_time for p in group.parts.values())


def _describe(key: tuple[str, str, str]) -> str:
    return f"MN={key[0]} CN={key[1]} {key[2]}"


def _incomplete(key: tuple[str, str, str], group: _Group, why: str) -> Released:
    have = ",".join(str(p) for p in sorted(group.parts))
    error = Hj212Error(
        e.SPLIT_INCOMPLETE,
        f"{_describe(key)}: {why} with PNO {have} of PNUM={group.pnum}",
    )
    return Released(error, tuple(group.tokens[i] for i in sorted(group.tokens)))


def _merge(parts: list[Message]) -> Message:
    first = parts[0]
    fields: dict[str, str] = {}
    pollutants: dict[str, dict[str, str]] = {}
    warnings: list[str] = []
    for part in parts:
        warnings.extend(part.warnings)
        for key, value in part.cp.fields.items():
            if fields.setdefault(key, value) != value:
                warnings.append(f"split packets disagree on {key}; first value kept")
        for code, items in part.cp.pollutants.items():
            merged = pollutants.setdefault(code, {})
            for name, value in items.items():
                if merged.setdefault(name, value) != value:
                    warnings.append(f"split packets disagree on {code}-{name}; first value kept")
    warnings.append(f"reassembled from {len(parts)} packets")
    return Message(
        qn=first.qn,
        st=first.st,
        cn=first.cn,
        pw=first.pw,
        mn=first.mn,
        # Version bits only: the packets were answered one by one on arrival, and
        # the merged message must not look like it still wants an answer.
        flag=None if first.flag is None else first.flag & ~(FLAG_D | FLAG_A),
        cp=CpData(fields, pollutants, ";".join(p.cp.raw for p in parts if p.cp.raw)),
        warnings=tuple(dict.fromkeys(warnings)),
    )
