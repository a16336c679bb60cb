"""The codec's fixture corpus (``tests/ingest/hj212/cases``) served to a real receiver.

Each case's ``input.bin`` is written to a TCP connection as one burst and the
write side closed; the receiver must send exactly the answers ``expected.json``
lists (plus the 1012 after a 1013), store exactly the readings that are valid
for the station, and quarantine everything else — every error event and every
reading that is not stored — so that nothing a device sent is lost silently.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from envmon.catalog import Catalog
from envmon.ingest.hj212 import StreamDecoder, encode
from envmon.ingest.hj212.session import Hj212Config, StationConfig
from envmon.parameters import BY_CODE
from envmon.schemas.readings import MEASURES

from .conftest import AIR, CATALOG, WATER, Harness

CASES = Path(__file__).resolve().parents[1] / "hj212" / "cases"
# The corpus's devices, as stations of a test catalog (kind by what they send).
DEVICES = {
    "88888880000001140010A0A1": ("air-corpus", AIR, "123456"),
    "010000A8900016F000169DC0": ("air-corpus-source", AIR, "100000"),
    "LD130133000015": ("water-corpus-2005", WATER, "000000"),
    "33010600000021A000000017": ("water-corpus", WATER, "123456"),
}
TEST_CATALOG = Catalog(
    [
        *CATALOG.stations,
        *(
            # model_copy skips validation: the 2005 MN is 14 characters, not 24 hex.
            base.model_copy(update={"id": sid, "mn": mn})
            for mn, (sid, base, _) in DEVICES.items()
        ),
    ]
)
SECRETS = {mn: pw for mn, (_, _, pw) in DEVICES.items()}


async def serve(port: int, data: bytes) -> list[Any]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    writer.write_eof()
    received = b""
    async with asyncio.timeout(5):
        while chunk := await reader.read(65536):
            received += chunk
    writer.close()
    await writer.wait_closed()
    decoder = StreamDecoder()
    frames = decoder.feed(received) + decoder.close()
    assert all(f.message is not None for f in frames)
    return [f.message for f in frames]


def expectations(expected: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]], int]:
    """(answer segments, candidates that should be stored, how many rejects)."""
    answers: list[str] = []
    candidates: list[dict[str, Any]] = []
    rejects = 0
    for event in expected["events"]:
        if "error" in event:
            rejects += 1
            continue
        if event["answer"]:
            answers.append(event["answer"])
        if event["message"]["cn"] == "1013":
            answers.append("CN=1012")
        if "readings_error" in event:
            rejects += 1
        if "assembled" not in expected:
            candidates.extend(event.get("readings", []))
    for merged in expected.get("assembled", []):
        candidates.extend(merged["readings"])
    return answers, candidates, rejects


async def test_corpus_served_to_the_receiver(hj: Harness) -> None:
    cases = sorted(p for p in CASES.iterdir() if p.is_dir())
    assert len(cases) >= 20
    for case in cases:
        expected = json.loads((case / "expected.json").read_text(encoding="utf-8"))
        overrides = expected.get("unit_overrides") or {}
        config = Hj212Config(
            stations={sid: StationConfig(overrides) for sid, _, _ in DEVICES.values()}
        )
        answers, candidates, rejects = expectations(expected)
        kind = {sid: base.kind for sid, base, _ in DEVICES.values()}
        mn_station = {mn: sid for mn, (sid, _, _) in DEVICES.items()}
        stations = {mn_station[e["message"]["mn"]] for e in expected["events"] if "message" in e}
        station = stations.pop() if stations else None
        stored = [
            c
            for c in candidates
            if c["problem"] is None
            and c["parameter"] is not None
            and station is not None
            # An air station's logger also sends its weather sensors (a01001…).
            and BY_CODE[c["parameter"]].kind in MEASURES[kind[station]]
            and c["period"] in ("rt", "1min", "5min", "1h", "4h", "1d")
        ]
        rejects += len(candidates) - len(stored)

        await hj.execute("TRUNCATE reading, rejected")
        async with hj.server(
            catalog=TEST_CATALOG, secrets=SECRETS, server_args={"config": config}
        ) as srv:
            replies = await serve(srv.port, (case / "input.bin").read_bytes())
            await hj.settled(srv)
        got = ["CN=1012" if m.cn == "1012" else encode(m)[6:-6].decode("utf-8") for m in replies]
        assert got == answers, case.name
        rows = await hj.readings()
        want = sorted(
            (
                station,
                c["parameter"],
                c["period"],
                datetime.fromisoformat(c["ts"]),
                c["value"],
                c["flag"],
            )
            for c in stored
        )
        assert sorted(r[:6] for r in rows) == want, case.name
        quarantined = await hj.rejected()
        assert len(quarantined) == rejects, (case.name, [r[5] for r in quarantined])
