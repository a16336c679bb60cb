"""Frames published by independent HJ 212 implementations (issue 17), as facts.

Each ``field/<case>/input.bin`` is what one implementation sends or parses
(README.md names the source); ``expected.json`` says how envmon reads it with
the given device profile (``crc_variants``, ``length_offsets``): per frame the
error reason, or the command, the CRC variant that matched, the answer and the
readings (Annex B default units: no station override).  Split cases are
reassembled by a :class:`SplitAssembler`; 3019/3020 uploads list their items
in order (repeated ``PolId`` groups included).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from envmon.ingest.hj212 import Message, SplitAssembler, StreamDecoder, answer, encode, readings
from envmon.ingest.hj212.records import cp_items

FIELD = Path(__file__).parent / "field"
CASES = sorted(p for p in FIELD.iterdir() if p.is_dir())


def _readings(message: Message) -> list[list[Any]]:
    return [
        [r.parameter or r.hj212_code, r.period, r.ts.isoformat(), r.value, r.unit_in, r.problem]
        for r in readings(message)
    ]


def _event(message: Message) -> dict[str, Any]:
    reply = answer(message)
    event: dict[str, Any] = {
        "cn": message.cn,
        "version": message.version,
        "crc": message.crc,
        "length_offset": message.length_offset,
        "answer": None if reply is None else encode(reply)[6:-6].decode(),
        # Split packets are read once reassembled (see "assembled").
        "readings": _readings(message) if message.pnum is None else None,
        "warnings": list(message.warnings),
    }
    if message.cn in ("3019", "3020"):
        event["items"] = [list(i) for i in cp_items(message.cp)]
    return event


def run(case: Path) -> dict[str, Any]:
    expected = json.loads((case / "expected.json").read_text(encoding="utf-8"))
    decoder = StreamDecoder(
        crc_variants=tuple(expected["crc_variants"]),
        length_offsets=tuple(expected["length_offsets"]),
    )
    frames = decoder.feed((case / "input.bin").read_bytes()) + decoder.close()
    assembler = SplitAssembler()
    events: list[dict[str, Any]] = []
    assembled: list[dict[str, Any]] = []
    for frame in frames:
        if frame.message is None:
            assert frame.error is not None
            events.append({"error": frame.error.reason})
            continue
        events.append(_event(frame.message))
        for item in assembler.add(frame.message, 0.0):
            if isinstance(item, Message) and item is not frame.message:
                assembled.append({"cn": item.cn, "readings": _readings(item)})
    return {**expected, "events": events, "assembled": assembled}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_field_case(case: Path) -> None:
    expected = json.loads((case / "expected.json").read_text(encoding="utf-8"))
    assert run(case) == expected


def test_every_case_names_its_source() -> None:
    readme = (FIELD / "README.md").read_text(encoding="utf-8")
    for case in CASES:
        assert f"`{case.name}`" in readme
        assert json.loads((case / "expected.json").read_text(encoding="utf-8"))["source"]
