"""One device connection's protocol logic, sans-IO: bytes in, what to do out.

A :class:`Session` is fed the bytes of one TCP connection and returns an
:class:`Output`: the frames to send back, the readings and rejects for the
writer, the lines for the raw-frame archive, events for the server (a station
seen, an authentication failure, a request finished) and whether to close.  It
never touches a socket, a clock or the database: the caller passes ``now``
(Beijing wall time, for QNs and the 1012 "set time") and ``mono`` (a monotonic
clock in seconds, for timeouts) in.

What it implements (HJ 212-2017; standards.md §7):

* authentication of every frame by MN and access password; unknown MN or
  wrong password → the frame is quarantined, nothing else happens, and the
  connection is closed after ``auth_failures_before_close`` failures;
* the answers of §7.7: 9014 to uploads with A = 1 (one per split packet),
  9013 to notifications with A = 1 (1013, the 2025 heartbeat 9015),
  and a 1012 "set time" after a 1013 time-calibration request;
* split-packet reassembly, and uploads → :class:`Readings` (columns) / :class:`Rejection`;
* bookkeeping of the requests the host sends (1012, 2061 history): the 9011
  QnRtn, the uploads, the 9012 ExeRtn, and a timeout.

Also here: the receiver's small YAML config (``config/hj212.yaml``: the units
each station's logger really sends) and the :class:`Directory` that joins the
catalog, the passwords and that config into one lookup by MN.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Final

from envmon.schemas.readings import RawReading, Rejection

from .auth import check_password, normalize_mn
from .codec import (
    PROTOCOLS,
    VERSION_2017,
    CpData,
    Message,
    answer_frame,
    encode,
    format_time,
    history_request,
    new_qn,
    parse_cp,
    parse_time,
    restamp,
    set_time_request,
)
from .crc import ANNEX_A, crc_fits
from .crypto import DECRYPT, ENCRYPTED_KEY, decrypt_cp, encrypt_cp
from .errors import Hj212Error
from .mapping import DATA_CNS, upload_rows
from .profile import AUTO, Device, Directory, Hj212Config, StationConfig, load_config, parse_config
from .records import RECORD_CNS, DeviceRecord, cp_items
from .redact import MAX_REJECT_TEXT, frame_text
from .splitjournal import SplitPacket
from .stream import Frame, Released, SplitAssembler, StreamDecoder

logger = logging.getLogger(__name__)
# Re-exported: the receiver's config and directory used to live here.
__all__ = [
    "Device",
    "Directory",
    "Hj212Config",
    "Session",
    "StationConfig",
    "load_config",
    "parse_config",
]
CN_NEW_KEY: Final = "1014"
_MAX_NOTED: Final = 100_000

SOURCE: Final = "hj212"
CN_TIME_CALIBRATION: Final = "1013"
CN_REQUEST_ANSWER: Final = "9011"
CN_EXECUTION_RESULT: Final = "9012"

# HJ 212-2017 Table 7 (QnRtn) and Table 6 (ExeRtn).
QNRTN_TEXT: Final = {
    "1": "ready to execute",
    "2": "request refused",
    "3": "PW error",
    "4": "MN error",
    "5": "ST error",
    "6": "Flag error",
    "7": "QN error",
    "8": "CN error",
    "9": "CRC error",
    "100": "unknown error",
}
EXERTN_TEXT: Final = {
    "1": "success",
    "2": "failed, reason unknown",
    "3": "request condition error",
    "4": "communication timeout",
    "5": "system busy",
    "6": "system fault",
    "100": "no data",
}


# --------------------------------------------------------------------------- output


@dataclass(frozen=True, slots=True)
class StationSeen:
    """The first authenticated frame of an MN on this connection."""

    mn: str
    station_id: str


@dataclass(frozen=True, slots=True)
class AuthFailed:
    mn: str
    station_id: str | None  # set when the MN is known but the password is wrong
    reason: str
    failures: int  # on this connection so far


@dataclass(frozen=True, slots=True)
class RequestFinished:
    """A request the host sent (``kind`` "history" or "set_time") has ended."""

    kind: str
    qn: str
    mn: str
    station_id: str
    ok: bool
    detail: str
    uploads: int = 0  # history: data uploads received in the requested range
    begin: datetime | None = None
    end: datetime | None = None


Event = StationSeen | AuthFailed | RequestFinished


@dataclass(frozen=True, slots=True)
class ArchiveEntry:
    mn: str | None
    status: str  # ok | rejected | error
    raw: bytes


@dataclass(slots=True)
class Readings:
    """Readings of uploads, in columns: no object per value.

    Per upload: the station, DataTime, period and frame text (the ``raw`` a
    rejected reading is stored with) and how many values it gave; per value:
    the parameter, the value in the parameter's unit and the flag.  The
    receiver gathers these from every connection and validates one DataFrame
    per batch; iterating gives :class:`RawReading` objects.
    """

    station: list[str] = field(default_factory=list)
    time: list[datetime] = field(default_factory=list)
    period: list[str] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)
    count: list[int] = field(default_factory=list)
    parameter: list[str] = field(default_factory=list)
    value: list[float] = field(default_factory=list)
    flag: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.value)

    def __iter__(self) -> Iterator[RawReading]:
        i = 0
        for station, ts, period, raw, n in zip(
            self.station, self.time, self.period, self.raw, self.count, strict=True
        ):
            for j in range(i, i + n):
                yield RawReading(
                    station, self.parameter[j], ts, self.value[j], self.flag[j], period, raw
                )
            i += n

    def rows(self) -> list[RawReading]:
        return list(self)

    def add(
        self,
        station: str,
        ts: datetime,
        period: str,
        raw: str,
        parameters: list[str],
        values: list[float],
        flags: list[str],
    ) -> None:
        """One upload's values (parallel lists)."""
        if not values:
            return
        self.station.append(station)
        self.time.append(ts)
        self.period.append(period)
        self.raw.append(raw)
        self.count.append(len(values))
        self.parameter += parameters
        self.value += values
        self.flag += flags

    def extend(self, other: Readings) -> None:
        self.station += other.station
        self.time += other.time
        self.period += other.period
        self.raw += other.raw
        self.count += other.count
        self.parameter += other.parameter
        self.value += other.value
        self.flag += other.flag


@dataclass(slots=True)
class Output:
    """What the caller must do after feeding a session."""

    replies: list[bytes] = field(default_factory=list)
    readings: Readings = field(default_factory=Readings)
    rejects: list[Rejection] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    archive: list[ArchiveEntry] = field(default_factory=list)
    records: list[DeviceRecord] = field(default_factory=list)
    # Split packets fed (those ``held`` in an open group go to the journal
    # before their answer), and packets whose group left (stored or rejected
    # with this output: their journal entries go once that is durable).
    split_packets: list[SplitPacket] = field(default_factory=list)
    split_done: list[SplitPacket] = field(default_factory=list)
    close_reason: str | None = None

    @property
    def close(self) -> bool:
        return self.close_reason is not None


# --------------------------------------------------------------------------- session


@dataclass(slots=True)
class _Peer:
    """How an authenticated MN talks (echoed in the requests sent to it)."""

    mn: str  # as the device spells it
    st: str
    version: int
    crc: str = ANNEX_A  # how its frames are checked: the host answers alike
    length_offset: int = 0
    encrypted: bool = False  # it encrypts its data segments: so does the host


@dataclass(slots=True)
class _Request:
    kind: str
    qn: str
    mn: str
    device: Device
    progress: float  # mono time of the last sign of life
    cn: str = ""
    begin: datetime | None = None
    end: datetime | None = None
    accepted: bool = False
    uploads: int = 0


class Session:
    """The protocol state of one device connection (see the module doc)."""

    def __init__(
        self,
        directory: Directory,
        *,
        max_buffer: int = 65536,
        auth_failures_before_close: int = 3,
        max_errors: int = 100,
        request_timeout: float = 60.0,
        split_timeout: float = 600.0,
        max_split_groups: int = 256,
        splits: SplitAssembler | None = None,
    ) -> None:
        self.directory = directory
        self.auth_failures_before_close = auth_failures_before_close
        self.max_errors = max_errors
        self.request_timeout = request_timeout
        self.split_timeout = split_timeout
        self.auth_failures = 0
        self.frames = 0
        self._errors = 0  # undecodable frames since the last good one
        self._decoder = StreamDecoder(
            max_buffer=max_buffer,
            crc_variants=directory.crc_variants,
            length_offsets=directory.length_offsets,
        )
        # The receiver shares one assembler among its connections (a device
        # may send the rest of a group on its next connection) and times its
        # groups out itself; a session alone keeps its own.
        self._own_splits = splits is None
        if splits is None:
            splits = SplitAssembler(timeout=split_timeout, max_groups=max_split_groups)
        self._splits = splits
        self._peers: dict[str, _Peer] = {}
        self._pending: dict[str, _Request] = {}
        self._last_qn = 0

    # ------------------------------------------------------------------ public API

    @property
    def buffered(self) -> int:
        return self._decoder.buffered

    @property
    def stations(self) -> list[str]:
        """MNs (upper case) authenticated on this connection."""
        return list(self._peers)

    @property
    def waiting(self) -> bool:
        """Whether time alone can change something: open split groups or
        requests (:meth:`tick` has nothing to do otherwise)."""
        return bool(self._pending or (self._own_splits and len(self._splits)))

    def pending_requests(self, kind: str | None = None) -> list[str]:
        """QNs of requests sent and not finished."""
        return [qn for qn, r in self._pending.items() if kind is None or r.kind == kind]

    def feed(self, data: bytes, *, now: datetime, mono: float) -> Output:
        """Take bytes received from the device."""
        out = Output()
        for frame in self._decoder.feed(data):
            self.receive(frame, now=now, mono=mono, out=out)
        return out

    def receive(
        self, frame: Frame, *, now: datetime, mono: float, out: Output | None = None
    ) -> Output:
        """Take one frame (already cut from the stream)."""
        out = out if out is not None else Output()
        self.frames += 1
        if frame.message is None:
            self._undecodable(frame, out)
            return out
        message = frame.message
        device = self.directory.get(message.mn)
        problem = self._authenticate(message, device)
        if problem is not None or device is None:
            self._auth_failed(frame, message, device, problem or "", out)
            return out
        self._errors = 0
        was_encrypted = ENCRYPTED_KEY in message.cp.fields
        try:
            message = self._check_framing(message, device, frame.raw)
            message = self._decrypt(message, device)
        except Hj212Error as err:
            out.archive.append(ArchiveEntry(message.mn, "rejected", frame.raw))
            out.rejects.append(
                Rejection(SOURCE, frame_text(frame.raw), str(err), station_id=device.station_id)
            )
            return out
        out.archive.append(ArchiveEntry(message.mn, "ok", frame.raw))
        self._note(device, message)
        key = normalize_mn(message.mn)
        version = message.version if message.version in PROTOCOLS else VERSION_2017
        peer = self._peers.get(key)
        if peer is None:
            out.events.append(StationSeen(message.mn, device.station_id))
        if (
            peer is None
            or peer.mn != message.mn
            or peer.st != message.st
            or peer.version != version
            or peer.crc != message.crc
            or peer.length_offset != message.length_offset
            or (was_encrypted and not peer.encrypted)
        ):
            encrypted = was_encrypted or bool(peer and peer.encrypted)
            peer = _Peer(
                message.mn, message.st, version, message.crc, message.length_offset, encrypted
            )
            self._peers[key] = peer

        reply = answer_frame(message)
        if reply is not None:
            out.replies.append(restamp(reply, crc=peer.crc, length_offset=peer.length_offset))
        if message.cn == CN_TIME_CALIBRATION:
            out.replies.append(self._set_time(device, now=now, mono=mono))
        elif message.cn == CN_NEW_KEY:
            self._new_key(device, message, now, out)
        elif message.cn in RECORD_CNS:
            self._record(message, device, frame, out)
        elif message.cn in (CN_REQUEST_ANSWER, CN_EXECUTION_RESULT):
            self._result(message, mono, out)
        if message.cn in DATA_CNS:
            self._touch(message, mono)
            if message.pnum is not None:
                self._split(frame, message, device, now, mono, out)
            else:
                self._ingest(message, device, frame_text(frame.raw), out)
        return out

    def end(self, *, now: datetime, mono: float) -> Output:
        """The connection is gone: what was left in the buffer, open split
        groups and pending requests are reported."""
        out = Output()
        for frame in self._decoder.close():
            self.receive(frame, now=now, mono=mono, out=out)
        if self._own_splits:
            self._released(self._splits.expire_released(float("inf")), out)
        for request in list(self._pending.values()):
            self._finish(request, False, "connection closed before the request finished", out)
        return out

    def tick(self, mono: float) -> Output:
        """Time passes: give up stale split groups and unanswered requests."""
        out = self.expire_splits(mono) if self._own_splits else Output()
        for request in list(self._pending.values()):
            if mono - request.progress > self.request_timeout:
                stage = "9012 execution result" if request.accepted else "9011 request answer"
                self._finish(
                    request,
                    False,
                    f"no {stage} within {self.request_timeout:g} s",
                    out,
                )
        return out

    def expire_splits(self, mono: float) -> Output:
        """Split groups idle longer than the split time-out, as rejects."""
        out = Output()
        self._released(self._splits.expire_released(mono), out)
        return out

    def rejoin(self, packet: SplitPacket, mono: float) -> Output:
        """A packet from the split journal (acknowledged before a restart)
        back into its group: ``mono`` is when it was received."""
        out = Output()
        if self.directory.get(packet.message.mn) is None:
            out.split_done.append(packet)
            out.rejects.append(
                Rejection(
                    SOURCE,
                    packet.text,
                    f"split packet of MN {packet.message.mn}, no longer configured",
                    station_id=packet.station_id,
                )
            )
            return out
        released, packet.held = self._splits.take(packet.message, mono, packet)
        out.split_packets.append(packet)
        self._released(released, out)
        return out

    def request_history(
        self,
        mn: str,
        begin: datetime,
        end: datetime,
        *,
        now: datetime,
        mono: float,
        cn: str = "2061",
    ) -> bytes:
        """A history request (2061 hourly by default) for an MN seen on this
        connection; the answer is tracked until its 9012 or the timeout."""
        peer = self._peers.get(normalize_mn(mn))
        device = self.directory.get(mn)
        if peer is None or device is None or device.password is None:
            raise ValueError(f"MN {mn} has not authenticated on this connection")
        qn = self._qn(now)
        message = history_request(
            peer.mn,
            device.password,
            cn,
            begin=begin,
            end=end,
            qn=qn,
            st=peer.st,
            version=peer.version,
        )
        self._pending[qn] = _Request(
            "history", qn, peer.mn, device, mono, cn=cn, begin=begin, end=end
        )
        return self._to_device(peer, device, message)

    # ------------------------------------------------------------------ internals

    def _authenticate(self, message: Message, device: Device | None) -> str | None:
        if device is None:
            return f"unknown MN {message.mn}"
        if device.password is None:
            return f"no access password configured for MN {message.mn}"
        if not check_password(device.password, message.pw):
            return f"wrong access password for MN {message.mn}"
        return None

    def _undecodable(self, frame: Frame, out: Output) -> None:
        error = frame.error or Hj212Error("garbage")
        out.archive.append(ArchiveEntry(None, "error", frame.raw))
        out.rejects.append(Rejection(SOURCE, frame_text(frame.raw), str(error)))
        self._errors += 1
        if self._errors >= self.max_errors:
            out.close_reason = f"{self._errors} undecodable frames in a row"

    def _auth_failed(
        self, frame: Frame, message: Message, device: Device | None, reason: str, out: Output
    ) -> None:
        self.auth_failures += 1
        station_id = device.station_id if device is not None else None
        out.archive.append(ArchiveEntry(message.mn, "rejected", frame.raw))
        out.rejects.append(Rejection(SOURCE, frame_text(frame.raw), reason, station_id=station_id))
        out.events.append(AuthFailed(message.mn, station_id, reason, self.auth_failures))
        if self.auth_failures >= self.auth_failures_before_close:
            out.close_reason = f"{self.auth_failures} authentication failures"

    def _qn(self, now: datetime) -> str:
        # Unique per session even for two requests in the same millisecond.
        value = max(int(new_qn(now)), self._last_qn + 1)
        self._last_qn = value
        return f"{value:017d}"

    def _set_time(self, device: Device, *, now: datetime, mono: float) -> bytes:
        peer = self._peers[normalize_mn(device.mn)]
        qn = self._qn(now)
        request = set_time_request(
            peer.mn, device.password or "", now, st=peer.st, qn=qn, version=peer.version
        )
        self._pending[qn] = _Request("set_time", qn, peer.mn, device, mono)
        return self._to_device(peer, device, request)

    def _check_framing(self, message: Message, device: Device, raw: bytes) -> Message:
        """The frame's CRC variant and length field against the device's profile
        (the message, with the device's variant when its CRC fits several)."""
        if message.crc == device.crc and not message.length_offset:
            return message  # the usual case: as the profile says (Annex A by default)
        mn = normalize_mn(device.mn)
        known = self.directory.learned.get(mn) if device.crc == AUTO else device.crc
        if known is not None and message.crc != known and crc_fits(raw, known):
            message = replace(message, crc=known)
        if device.crc == AUTO:
            learned = self.directory.learned.get(mn)
            if learned != message.crc:
                self.directory.learned[mn] = message.crc
                logger.info(
                    "hj212 device crc variant station=%s mn=%s crc=%s%s",
                    device.station_id,
                    device.mn,
                    message.crc,
                    "" if learned is None else f" (was {learned})",
                )
        elif message.crc != device.crc:
            raise Hj212Error(
                "crc_mismatch",
                f"the CRC is {message.crc}, the profile of station {device.station_id} says "
                f"{device.crc} (config/hj212.yaml crc:)",
            )
        if message.length_offset not in (0, device.profile.length_offset):
            raise Hj212Error(
                "length_mismatch",
                f"length field exceeds the data segment by {message.length_offset}; the "
                f"profile of station {device.station_id} says standard (config/hj212.yaml length:)",
            )
        return message

    def _decrypt(self, message: Message, device: Device) -> Message:
        """An HJ 212-2025 SM4-encrypted CP area, decrypted (or the message as it is)."""
        value = message.cp.fields.get(ENCRYPTED_KEY)
        if value is None:
            if device.profile.encryption == "sm4" and message.cn in DATA_CNS:
                raise Hj212Error(
                    DECRYPT,
                    f"station {device.station_id} encrypts its uploads (profile "
                    "encryption: sm4), this one is in clear",
                )
            return message
        if device.sm4_key is None:
            raise Hj212Error(DECRYPT, f"no SM4 key configured for MN {message.mn}")
        text = decrypt_cp(value, device.sm4_key)
        warnings: list[str] = []
        try:
            cp = parse_cp(f"&&{text}&&", warnings)
            if "DataTime" in cp.fields:
                parse_time(cp.fields["DataTime"])
        except Hj212Error as err:
            raise Hj212Error(DECRYPT, f"decrypted CP area is not valid: {err}") from err
        return replace(message, cp=cp, warnings=(*message.warnings, *warnings))

    def _note(self, device: Device, message: Message) -> None:
        """Log each tolerated deviation once per device (the frame archive keeps all)."""
        notes = list(message.warnings)
        if message.resend:
            notes.append("RF=1 resend: its values replace the stored ones")
        noted = self.directory.noted
        for text in notes:
            key = (device.station_id, text)
            if key in noted:
                continue
            if len(noted) >= _MAX_NOTED:
                noted.clear()
            noted.add(key)
            logger.info(
                "hj212 deviation station=%s mn=%s cn=%s: %s",
                device.station_id,
                device.mn,
                message.cn,
                text,
            )

    def _to_device(self, peer: _Peer, device: Device, message: Message) -> bytes:
        """A host request as this device expects it: its CRC variant and length
        field, its CP area SM4-encrypted if the device encrypts."""
        if peer.encrypted and device.sm4_key is not None and message.cp.fields:
            content = encode(message)[6:-6].decode("utf-8").split("CP=&&", 1)[1][:-2]
            message = replace(
                message, cp=CpData({ENCRYPTED_KEY: encrypt_cp(content, device.sm4_key)})
            )
        return restamp(encode(message), crc=peer.crc, length_offset=peer.length_offset)

    def _new_key(self, device: Device, message: Message, now: datetime, out: Output) -> None:
        """HJ 212-2025 1014: the device asks for its key (caoyiliang/HJ212: the host
        answers 9013, then sends 1014 with ``SKCreateTime`` and ``NewSK``)."""
        if device.sm4_key is None or device.password is None:
            logger.warning(
                "hj212 key request without a configured SM4 key station=%s mn=%s",
                device.station_id,
                device.mn,
            )
            return
        peer = self._peers[normalize_mn(device.mn)]
        created = message.cp.fields.get("SKCreateTime") or format_time(now)
        request = Message(
            qn=self._qn(now),
            st=peer.st,
            cn=CN_NEW_KEY,
            pw=device.password,
            mn=peer.mn,
            flag=(peer.version << 2) | 1,
            cp=CpData({"SKCreateTime": created, "NewSK": device.sm4_key.hex().upper()}),
        )
        out.replies.append(self._to_device(peer, device, request))

    def _record(self, message: Message, device: Device, frame: Frame, out: Output) -> None:
        data_time = message.cp.fields.get("DataTime")
        out.records.append(
            DeviceRecord(
                device.station_id,
                message.mn,
                message.cn,
                parse_time(data_time) if data_time else None,
                tuple(cp_items(message.cp)),
                frame_text(frame.raw),
            )
        )

    def _result(self, message: Message, mono: float, out: Output) -> None:
        request = self._pending.get(message.qn or "")
        if request is None or normalize_mn(request.mn) != normalize_mn(message.mn):
            return  # an answer to nothing we asked (late, or another host's)
        request.progress = mono
        if message.cn == CN_REQUEST_ANSWER:
            code = message.cp.fields.get("QnRtn", "")
            if code == "1":
                request.accepted = True
            else:
                text = QNRTN_TEXT.get(code, "not in Table 7")
                self._finish(request, False, f"request refused: QnRtn={code} ({text})", out)
            return
        code = message.cp.fields.get("ExeRtn", "")
        text = EXERTN_TEXT.get(code, "not in Table 6")
        self._finish(request, code == "1", f"ExeRtn={code} ({text})", out)

    def _finish(self, request: _Request, ok: bool, detail: str, out: Output) -> None:
        self._pending.pop(request.qn, None)
        out.events.append(
            RequestFinished(
                request.kind,
                request.qn,
                request.mn,
                request.device.station_id,
                ok,
                detail,
                request.uploads,
                request.begin,
                request.end,
            )
        )

    def _history_for(self, message: Message) -> list[_Request]:
        if not self._pending:
            return []
        mn = normalize_mn(message.mn)
        return [
            r
            for r in self._pending.values()
            if r.kind == "history" and r.cn == message.cn and normalize_mn(r.mn) == mn
        ]

    def _touch(self, message: Message, mono: float) -> None:
        for request in self._history_for(message):
            request.progress = mono

    def _split(
        self,
        frame: Frame,
        message: Message,
        device: Device,
        now: datetime,
        mono: float,
        out: Output,
    ) -> None:
        packet = SplitPacket.of(device.station_id, now, frame_text(frame.raw), message)
        released, packet.held = self._splits.take(message, mono, packet)
        out.split_packets.append(packet)
        self._released(released, out)

    def _released(self, released: list[Released], out: Output) -> None:
        """Groups that left the assembler: merged uploads are ingested, groups
        given up rejected with their packets' texts."""
        for group in released:
            packets = [t for t in group.tokens if isinstance(t, SplitPacket)]
            out.split_done.extend(packets)
            raw = "\n".join(p.text for p in packets)
            station_id = packets[0].station_id if packets else None
            item = group.item
            if isinstance(item, Hj212Error):
                if len(raw) > MAX_REJECT_TEXT:
                    raw = f"{raw[:MAX_REJECT_TEXT]}… <{len(packets)} packets>"
                out.rejects.append(
                    Rejection(
                        SOURCE, raw or f"<split packets> {item.detail}", str(item), station_id
                    )
                )
                continue
            device = self.directory.get(item.mn)
            if device is None:
                out.rejects.append(
                    Rejection(SOURCE, raw, f"unknown MN {item.mn}", station_id=station_id)
                )
                continue
            self._ingest(item, device, raw, out)

    def _ingest(self, message: Message, device: Device, raw: str, out: Output) -> None:
        try:
            upload = upload_rows(
                message,
                unit_overrides=device.unit_overrides,
                minute_interval=device.minute_interval,
                period_end=device.profile.period_end,
                edition_units=device.profile.edition_units,
            )
        except Hj212Error as err:
            out.rejects.append(Rejection(SOURCE, raw, str(err), station_id=device.station_id))
            return
        if upload is not None:
            ts, period, rows = upload
            parameters: list[str] = []
            values: list[float] = []
            flags: list[str] = []
            for parameter, code, value, flag, _, _, _, problem in rows:
                if problem is not None or value is None or parameter is None:
                    out.rejects.append(
                        Rejection(
                            SOURCE,
                            raw,
                            problem or "no value",
                            station_id=device.station_id,
                            parameter=parameter or code,
                            ts=ts,
                        )
                    )
                    continue
                parameters.append(parameter)
                values.append(value)
                flags.append(flag)
            out.readings.add(device.station_id, ts, period, raw, parameters, values, flags)
        if self._pending:
            data_time = message.data_time
            for request in self._history_for(message):
                assert request.begin is not None and request.end is not None
                if data_time is not None and request.begin <= data_time <= request.end:
                    request.uploads += 1
