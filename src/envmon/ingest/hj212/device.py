"""A station's data logger (现场机) as a real asyncio TCP client.

It behaves the way HJ 212-2017 asks a field device to (standards.md §7.4, §7.7):
uploads carry Flag with the A bit (5, or 7 when split), the device waits for
the 9014 answering each packet and resends the same packet when none comes
(Table 1: 10 s and 3 retries over GPRS/4G), it answers a 1012 "set time" with
9011 + 9012 and a history request (2031/2051/2061) with 9011, the uploads of
the asked range (each answered by a 9014), then 9012.

The tests drive the receiver with it, and the simulator uses it to push data
over HJ 212 in ``make run``::

    async with Hj212Device("127.0.0.1", 9212, mn, pw, history_provider=past) as dev:
        answer = await dev.send_hourly(ts, {"a34004": (35.2, "N"), "a21005": (0.8, "N")})
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, Final

from envmon import timeutil
from envmon.errors import RetriableError

from .codec import (
    FLAG_A,
    FLAG_D,
    HISTORY_CNS,
    VERSION_2017,
    CpData,
    Message,
    answer_flag,
    encode,
    encode_cp,
    format_time,
    new_qn,
    parse_cp,
    parse_time,
    restamp,
)
from .crc import ANNEX_A, crc_variant
from .crypto import ENCRYPTED_KEY, decrypt_cp, encrypt_cp
from .errors import Hj212Error
from .stream import StreamDecoder

logger = logging.getLogger(__name__)

# code → (value, data flag); the value as a number or as the text to send.
Values = Mapping[str, tuple[float | str, str]]
Upload = tuple[datetime, Values]
# (CN, BeginTime, EndTime) → the uploads to send, oldest first; sync or async.
HistoryProvider = Callable[
    [str, datetime, datetime], Sequence[Upload] | Awaitable[Sequence[Upload]]
]

_ANSWER_CNS: Final = frozenset({"9013", "9014"})
_ITEM_BY_CN: Final = {"2011": "Rtd", "2051": "Avg", "2061": "Avg", "2031": "Avg"}
ST_ANSWER: Final = "91"


class DeviceTimeout(RetriableError):
    """The host did not answer a packet, even after the retries."""


def format_value(value: float | str) -> str:
    """A value as Table 4's Nx.y text: plain decimal notation, no exponent."""
    if isinstance(value, str):
        return value
    text = format(Decimal(repr(float(value))), "f")
    return text[:-2] if text.endswith(".0") else text


class Hj212Device:
    """One data logger: connect, upload, answer the host's requests."""

    def __init__(
        self,
        host: str,
        port: int,
        mn: str,
        pw: str,
        st: str = "22",
        *,
        version: int = VERSION_2017,
        timeout: float = 10.0,
        retries: int = 3,
        history_provider: HistoryProvider | None = None,
        clock: Callable[[], datetime] = timeutil.now,
        crc: str = ANNEX_A,
        length_offset: int = 0,
        sm4_key: bytes | None = None,
    ) -> None:
        """``crc``, ``length_offset`` and ``sm4_key`` make a logger of the kinds
        found in the field: a MODBUS CRC (or its bytes swapped), a length field
        counting 6 more, an HJ 212-2025 SM4-encrypted CP area."""
        self.host = host
        self.port = port
        self.mn = mn
        self.pw = pw
        self.st = st
        self.version = version
        self.timeout = timeout
        self.retries = retries
        self.history_provider = history_provider
        self.clock = clock
        self.crc = crc
        self.length_offset = length_offset
        self.sm4_key = sm4_key
        self.received: list[Message] = []  # every frame the host sent, in order
        self.errors: list[Hj212Error] = []  # frames from the host that did not decode
        self.time_set: list[datetime] = []  # SystemTime of each 1012
        self.history_requests: list[Message] = []
        self.new_keys: list[str] = []  # NewSK of each 1014 from the host
        self.resends = 0
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._waiters: dict[str, asyncio.Future[Message]] = {}
        self._send_lock = asyncio.Lock()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._children: set[asyncio.Task[None]] = set()
        self._closed = asyncio.Event()
        self._closing = False
        self._child_failures: list[BaseException] = []
        self._last_qn = 0
        self._time_event = asyncio.Event()

    # ------------------------------------------------------------------ connection

    async def connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        self._closed.clear()
        self._closing = False
        self._task = asyncio.create_task(self._read_loop(), name=f"hj212-device-{self.mn}")

    async def close(self) -> None:
        self._closing = True
        for child in list(self._children):
            child.cancel()
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self._writer.wait_closed()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        # Children report their own errors (``_child_done``); wait for them only.
        await asyncio.gather(*self._children, return_exceptions=True)
        self._fail_waiters(ConnectionResetError("device closed"))
        if self._child_failures:
            failure, self._child_failures = self._child_failures[0], []
            raise failure

    async def __aenter__(self) -> Hj212Device:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def closed(self) -> bool:
        """The host closed the connection (or it was lost)."""
        return self._closed.is_set()

    async def wait_closed(self) -> None:
        """Wait until the host closes the connection (wrap in ``asyncio.timeout``)."""
        await self._closed.wait()

    # ------------------------------------------------------------------ sending

    def message(
        self,
        cn: str,
        cp: CpData | None = None,
        *,
        flag: int | None = None,
        pnum: int | None = None,
        pno: int | None = None,
        pw: str | None = None,
    ) -> Message:
        """A message from this device (a fresh QN; A = 1 unless ``flag`` says otherwise)."""
        return Message(
            qn=self._qn(),
            st=self.st,
            cn=cn,
            pw=self.pw if pw is None else pw,
            mn=self.mn,
            flag=(self.version << 2) | FLAG_A if flag is None else flag,
            pnum=pnum,
            pno=pno,
            cp=cp or CpData(),
        )

    def frame(self, message: Message) -> bytes:
        """The frame this logger sends for ``message``: its CRC variant and
        length field, the CP area encrypted if it has an SM4 key."""
        if self.sm4_key is not None and (message.cp.fields or message.cp.pollutants):
            encrypted = encrypt_cp(encode_cp(message.cp), self.sm4_key)
            message = replace(message, cp=CpData({ENCRYPTED_KEY: encrypted}))
        return restamp(encode(message), crc=self.crc, length_offset=self.length_offset)

    async def send_raw(self, data: bytes) -> None:
        """Write bytes as they are (tests: garbage, chunked and merged frames)."""
        if self._writer is None:
            raise ConnectionError("not connected")
        self._writer.write(data)
        await self._writer.drain()

    async def send(self, message: Message) -> Message | None:
        """Send ``message``; if it wants an answer (A = 1), wait for the 9014/9013
        echoing its QN, resending on timeout ``retries`` times."""
        return await self._send_frame(message, self.frame(message))

    async def _send_frame(self, message: Message, frame: bytes) -> Message | None:
        if not message.needs_answer or message.qn is None:
            await self.send_raw(frame)
            return None
        async with self._send_lock:
            loop = asyncio.get_running_loop()
            future: asyncio.Future[Message] = loop.create_future()
            self._waiters[message.qn] = future
            try:
                for attempt in range(self.retries + 1):
                    if attempt:
                        self.resends += 1
                        logger.info(
                            "hj212 device resend mn=%s qn=%s attempt=%d",
                            self.mn,
                            message.qn,
                            attempt,
                        )
                    await self.send_raw(frame)
                    try:
                        async with asyncio.timeout(self.timeout):
                            return await asyncio.shield(future)
                    except TimeoutError:
                        continue
            finally:
                self._waiters.pop(message.qn, None)
                if not future.done():
                    future.cancel()
        raise DeviceTimeout(
            f"MN {self.mn}: no answer to QN {message.qn} after {self.retries + 1} tries"
        )

    def upload_message(
        self,
        cn: str,
        ts: datetime,
        values: Values,
        *,
        item: str | None = None,
        fields: Mapping[str, str] | None = None,
        flag: int | None = None,
    ) -> Message:
        item = item or _ITEM_BY_CN.get(cn, "Avg")
        cp = CpData(
            {"DataTime": format_time(ts), **(fields or {})},
            {
                code: {item: format_value(value), "Flag": data_flag}
                for code, (value, data_flag) in values.items()
            },
        )
        return self.message(cn, cp, flag=flag)

    async def upload(
        self,
        cn: str,
        ts: datetime,
        values: Values,
        *,
        item: str | None = None,
        fields: Mapping[str, str] | None = None,
        flag: int | None = None,
    ) -> Message | None:
        """One data upload (2011 ``Rtd``; 2031/2051/2061 ``Avg``)."""
        return await self.send(
            self.upload_message(cn, ts, values, item=item, fields=fields, flag=flag)
        )

    async def send_hourly(self, ts: datetime, values: Values) -> Message:
        """A 2061 hourly upload (``ts`` = start of the hour), Flag=5; the 9014."""
        reply = await self.upload("2061", ts, values)
        assert reply is not None
        return reply

    async def send_realtime(self, ts: datetime, values: Values) -> Message:
        reply = await self.upload("2011", ts, values)
        assert reply is not None
        return reply

    async def send_minute(
        self, ts: datetime, values: Values, *, interval: int | None = None
    ) -> Message:
        fields = {"MinInterval": str(interval)} if interval is not None else None
        reply = await self.upload("2051", ts, values, fields=fields)
        assert reply is not None
        return reply

    async def send_split(
        self,
        cn: str,
        ts: datetime,
        parts: Sequence[Values],
        *,
        item: str | None = None,
        datatime_first_only: bool = False,
        pad: int = 0,
    ) -> list[Message]:
        """One upload split over ``len(parts)`` packets (Flag D|A, PNUM/PNO), each
        with its own QN and waiting for its own 9014 (Annex C Table C.50).

        ``datatime_first_only``: DataTime in the first packet only, as some
        loggers do; ``pad``: PNUM/PNO zero-padded to that many digits."""
        answers: list[Message] = []
        for pno, values in enumerate(parts, start=1):
            base = self.upload_message(cn, ts, values, item=item)
            if datatime_first_only and pno > 1:
                base = replace(base, cp=CpData({}, base.cp.pollutants))
            packet = Message(
                qn=base.qn,
                st=base.st,
                cn=base.cn,
                pw=base.pw,
                mn=base.mn,
                flag=(self.version << 2) | FLAG_D | FLAG_A,
                pnum=len(parts),
                pno=pno,
                cp=base.cp,
            )
            reply = await (self._send_padded(packet, pad) if pad else self.send(packet))
            assert reply is not None
            answers.append(reply)
        return answers

    async def _send_padded(self, packet: Message, pad: int) -> Message | None:
        """``packet`` with PNUM/PNO written zero-padded (``PNUM=00000003``)."""
        data = self.frame(packet)[6:-6].replace(
            f";PNUM={packet.pnum};PNO={packet.pno};".encode(),
            f";PNUM={packet.pnum:0{pad}d};PNO={packet.pno:0{pad}d};".encode(),
        )
        frame = b"##%04d%b%04X\r\n" % (
            len(data) + self.length_offset,
            data,
            crc_variant(data, self.crc),
        )
        return await self._send_frame(packet, frame)

    async def request_time(self) -> Message:
        """1013 time-calibration request; returns the 9013 (the 1012 that
        follows is answered by the device and recorded in :attr:`time_set`)."""
        reply = await self.send(self.message("1013"))
        assert reply is not None
        return reply

    async def heartbeat(self) -> Message:
        """2025 heartbeat 9015; returns the 9013."""
        reply = await self.send(self.message("9015"))
        assert reply is not None
        return reply

    async def wait_time_set(self) -> datetime:
        """The SystemTime of the first 1012 received (wrap in ``asyncio.timeout``)."""
        await self._time_event.wait()
        return self.time_set[-1]

    async def next_message(self) -> Message:
        """The next frame from the host that was not an awaited answer."""
        return await self._inbox.get()

    # ------------------------------------------------------------------ receiving

    def _qn(self) -> str:
        value = max(int(new_qn(self.clock())), self._last_qn + 1)
        self._last_qn = value
        return f"{value:017d}"

    async def _read_loop(self) -> None:
        assert self._reader is not None
        decoder = StreamDecoder(
            crc_variants=(ANNEX_A, self.crc), length_offsets=(0, self.length_offset)
        )
        try:
            while True:
                data = await self._reader.read(65536)
                if not data:
                    break
                for frame in decoder.feed(data):
                    if frame.message is None:
                        assert frame.error is not None
                        self.errors.append(frame.error)
                        continue
                    self._dispatch(frame.message)
        except (ConnectionError, OSError):
            pass
        finally:
            self._closed.set()
            self._fail_waiters(ConnectionResetError("connection closed by the host"))

    def _fail_waiters(self, error: BaseException) -> None:
        for future in self._waiters.values():
            if not future.done():
                future.set_exception(error)
                # Retrieved or not, an unanswered packet is not worth a warning.
                future.exception()

    def _dispatch(self, message: Message) -> None:
        encrypted = message.cp.fields.get(ENCRYPTED_KEY)
        if encrypted is not None and self.sm4_key is not None:
            try:
                cp = parse_cp(f"&&{decrypt_cp(encrypted, self.sm4_key)}&&", [])
            except Hj212Error as err:
                self.errors.append(err)
                return
            message = replace(message, cp=cp)
        self.received.append(message)
        if message.cn in _ANSWER_CNS:
            future = self._waiters.get(message.qn or "")
            if future is not None and not future.done():
                future.set_result(message)
                return
        elif message.cn == "1012":
            self._spawn(self._answer_set_time(message))
            return
        elif message.cn == "1014" and "NewSK" in message.cp.fields:
            # HJ 212-2025 key distribution: take the key, confirm with 9011 + 9012.
            self.new_keys.append(message.cp.fields["NewSK"])
            self._spawn(
                self.send_raw(
                    self.frame(self._result(message, "9011", "QnRtn", 1))
                    + self.frame(self._result(message, "9012", "ExeRtn", 1))
                )
            )
            return
        elif message.cn in HISTORY_CNS:
            self.history_requests.append(message)
            self._spawn(self._answer_history(message))
            return
        elif message.needs_answer:
            # A request this logger does not implement: refuse it (Table 7).
            self._spawn(self._refuse(message))
        self._inbox.put_nowait(message)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Answer the host in a task of its own, owned until :meth:`close`.

        The coroutine itself becomes the task (no wrapper coroutine): a task
        cancelled before its first step throws ``CancelledError`` into its
        coroutine, so the answer is always started or closed. A wrapper that
        awaited ``coro`` left it never awaited when :meth:`close` cancelled the
        wrapper before it ran ("coroutine ... was never awaited"). Nothing is
        spawned once :meth:`close` has begun.
        """
        if self._closing:
            coro.close()
            return
        task = asyncio.create_task(coro)
        self._children.add(task)
        task.add_done_callback(self._child_done)

    def _child_done(self, task: asyncio.Task[None]) -> None:
        self._children.discard(task)
        if task.cancelled():
            return
        err = task.exception()  # retrieved: an answer cut short is not an error of the test
        if isinstance(err, (ConnectionError, DeviceTimeout, OSError)):
            logger.info("hj212 device mn=%s: answering the host failed: %s", self.mn, err)
        elif err is not None:
            self._child_failures.append(err)  # raised by close(), as before

    def _result(self, request: Message, cn: str, key: str, code: int) -> Message:
        return Message(
            qn=request.qn,
            st=ST_ANSWER,
            cn=cn,
            pw=self.pw,
            mn=self.mn,
            flag=answer_flag(request),
            cp=CpData({key: str(code)}),
        )

    async def _refuse(self, request: Message) -> None:
        await self.send_raw(self.frame(self._result(request, "9011", "QnRtn", 2)))

    async def _answer_set_time(self, request: Message) -> None:
        value = request.cp.fields.get("SystemTime")
        try:
            when = parse_time(value or "", name="SystemTime")
        except Hj212Error:
            await self.send_raw(self.frame(self._result(request, "9011", "QnRtn", 100)))
            return
        await self.send_raw(
            self.frame(self._result(request, "9011", "QnRtn", 1))
            + self.frame(self._result(request, "9012", "ExeRtn", 1))
        )
        self.time_set.append(when)
        self._time_event.set()

    async def _answer_history(self, request: Message) -> None:
        """9011, the uploads of the asked range (each waiting for its 9014), 9012."""
        try:
            begin = parse_time(request.cp.fields.get("BeginTime", ""), name="BeginTime")
            end = parse_time(request.cp.fields.get("EndTime", ""), name="EndTime")
        except Hj212Error:
            await self.send_raw(self.frame(self._result(request, "9011", "QnRtn", 100)))
            return
        if self.history_provider is None:
            await self.send_raw(self.frame(self._result(request, "9011", "QnRtn", 2)))
            return
        await self.send_raw(self.frame(self._result(request, "9011", "QnRtn", 1)))
        found = self.history_provider(request.cn, begin, end)
        uploads = await found if inspect.isawaitable(found) else found
        code = 1 if uploads else 100  # Table 6: 100 = no data
        try:
            for ts, values in uploads:
                await self.upload(request.cn, ts, values)
        except DeviceTimeout:
            code = 4  # communication timeout
        await self.send_raw(self.frame(self._result(request, "9012", "ExeRtn", code)))
