"""The journal of open split groups (issue 18): real files, a real receiver.

The SIGKILL proof is ``test_hj212_split_kill.py``; here the journal's own
promises: what was appended and not dropped comes back in order after a
torn write, the files are 0600 in a 0700 folder without passwords, and a
receiver started on a journal stores the groups complete in it and lets the
others wait for their packets on a new connection.
"""

from __future__ import annotations

import asyncio
import stat
from datetime import datetime, timedelta

import pytest

from envmon.ingest.hj212 import CpData, Message
from envmon.ingest.hj212.splitjournal import SplitJournal, SplitPacket
from envmon.timeutil import BEIJING

from .conftest import AIR, PASSWORDS, Harness

T0 = datetime(2025, 6, 1, 8, tzinfo=BEIJING)
PW = PASSWORDS[AIR.mn or ""]


def _packet(
    pno: int,
    code: str,
    value: str,
    *,
    pnum: int = 2,
    qn: str = "20250601100000001",
    hour: str = "20250601080000",
) -> Message:
    return Message(
        qn=qn,
        st="22",
        cn="2061",
        pw=PW,
        mn=AIR.mn or "",
        flag=7,
        pnum=pnum,
        pno=pno,
        cp=CpData({"DataTime": hour}, {code: {"Avg": value, "Flag": "N"}}),
    )


def _journalled(message: Message, at: datetime = T0) -> SplitPacket:
    return SplitPacket.of(AIR.id, at, f"QN=1;PW={PW};PNO={message.pno}", message)


async def test_journal_keeps_what_was_not_dropped_through_a_torn_write(hj: Harness) -> None:
    directory = hj.tmp_path / "hj212" / "open-splits"
    journal = SplitJournal(directory)
    assert journal.open() == []
    packets = [_journalled(_packet(i, "a34004", str(i), pnum=4)) for i in (1, 2, 3)]
    for packet in packets:
        journal.append(packet)
    journal.drop([packets[1]])
    await journal.sync()
    assert len(journal) == 2
    journal.close()
    [segment] = directory.iterdir()
    with segment.open("ab") as f:
        f.write(b'{"seq":4,"at":"2025-06-')  # killed in the middle of a write
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(segment.stat().st_mode) == 0o600
    text = segment.read_text()
    assert f"PW={PW}" not in text and f'"pw":"{PW}"' not in text
    assert text.count('"pw":"***"') == 3

    again = SplitJournal(directory)
    back = again.open()
    assert [(p.seq, p.message.pno, p.station_id, p.at) for p in back] == [
        (1, 1, AIR.id, T0),
        (3, 3, AIR.id, T0),
    ]
    assert back[0].message.pw == "***" and back[0].message.cp == packets[0].message.cp
    assert back[0].text == "QN=1;PW=***;PNO=1"
    # Compacted: one fresh segment, the old one gone; new entries go on numbering.
    [fresh] = directory.iterdir()
    assert fresh != segment and stat.S_IMODE(fresh.stat().st_mode) == 0o600
    later = _journalled(_packet(4, "a34004", "4", pnum=4))
    again.append(later)
    assert later.seq == 4
    again.drop([*back, later])
    await again.sync()
    again.close()
    assert SplitJournal(directory).open() == []


async def test_receiver_stores_groups_complete_in_the_journal_and_waits_for_the_rest(
    hj: Harness,
) -> None:
    settings = hj.settings()
    journal = SplitJournal(settings.split_journal_dir)
    journal.open()
    # A complete group (both packets) and the first packet of another hour.
    complete = [_packet(1, "a34004", "35"), _packet(2, "a34002", "70")]
    ninth = {"qn": "20250601100000009", "hour": "20250601090000"}
    waiting = _packet(1, "a34004", "40", **ninth)
    for message in [*complete, waiting]:
        journal.append(_journalled(message, at=datetime.now(BEIJING)))
    await journal.sync()
    journal.close()

    async with hj.server() as srv:
        await srv.flush()
        rows = [(r[1], r[3], r[4]) for r in await hj.readings()]
        assert rows == [("pm10", T0, 70.0), ("pm25", T0, 35.0)]
        assert len(srv.journal) == 1  # the 09:00 packet waits for its second
        # The device sends the rest on a new connection.
        second = _packet(2, "a34002", "80", **ninth)
        async with hj.device(srv) as dev:
            reply = await dev.send(second)
            assert reply is not None and reply.cn == "9014"
        await hj.settled(srv)
        nine = [(r[1], r[4]) for r in await hj.readings() if r[3] == T0 + timedelta(hours=1)]
        assert nine == [("pm10", 80.0), ("pm25", 40.0)]
        assert len(srv.journal) == 0
    assert await hj.rejected() == []
    # Nothing comes back at the next start.
    assert SplitJournal(settings.split_journal_dir).open() == []


async def test_a_drop_outlives_nothing_it_is_needed_for(hj: Harness) -> None:
    # Small segments: each packet starts a new one. A drop is written to the
    # current segment, later than its packet's: a later segment without live
    # packets must stay while an earlier one does, or its drops are lost and
    # the dropped packets come back at the next start.
    directory = hj.tmp_path / "open-splits"
    journal = SplitJournal(directory, segment_bytes=1)
    journal.open()
    x, y, z, w = (_journalled(_packet(i, "a34004", str(i), pnum=5)) for i in (1, 2, 3, 4))
    journal.append(x)  # segment 2 (1 is the empty start)
    journal.append(y)  # segment 3
    journal.append(z)  # segment 4
    journal.drop([y])  # written to segment 4
    journal.append(w)  # segment 5
    journal.drop([z, w])  # segment 5: segments 3, 4 hold nothing live, 2 still x
    await journal.sync()
    journal.close()
    assert [p.message.pno for p in SplitJournal(directory).open()] == [1]
    # Once the oldest live packet goes, the segments behind it go too.
    again = SplitJournal(directory, segment_bytes=1)
    [back] = again.open()
    again.append(_journalled(_packet(5, "a34004", "5", pnum=5)))
    again.drop([back])
    await again.sync()
    assert len(list(directory.iterdir())) == 1
    again.close()


@pytest.mark.parametrize("hourly_first", [False, True], ids=["split-first", "hourly-first"])
async def test_answers_keep_their_order_whichever_hold_they_wait_for(
    hj: Harness, hourly_first: bool
) -> None:
    # A logger that does not wait: a split packet (answered after the journal's
    # fsync), an hourly upload (after its batch is stored) and the packet that
    # completes the group, one right after the other. The answers come in the order sent:
    # a packet behind a held reply is not answered before it.
    async with hj.server() as srv:
        async with hj.device(srv) as dev:
            first, last = _packet(1, "a34004", "35"), _packet(2, "a34002", "70")
            hourly = dev.upload_message("2061", T0 + timedelta(hours=2), {"a21004": (20.0, "N")})
            order = [hourly, first, last] if hourly_first else [first, hourly, last]
            for message in order:  # each its own chunk, well within one batch's wait
                await dev.send_raw(dev.frame(message))
                await asyncio.sleep(0.005)

            async def answered() -> bool:
                return len(dev.received) == 3

            await hj.wait_until(answered)
            assert [(m.cn, m.qn) for m in dev.received] == [("9014", m.qn) for m in order]
            assert dev.received[1].qn == order[1].qn != order[0].qn
        await hj.settled(srv)
    assert [(r[1], r[4]) for r in await hj.readings()] == [
        ("no2", 20.0),
        ("pm10", 70.0),
        ("pm25", 35.0),
    ]
