"""The fixture corpus: one folder per case, raw bytes in, expected output out.

Each ``cases/<name>/input.bin`` is fed to a :class:`StreamDecoder` (whole, and
one byte at a time: both must give the same events) and compared with
``expected.json``: every event (decoded message with its answer and reading
candidates, or error reason), ``decode`` of the whole input where given, and
the reassembled messages for split cases.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from envmon.ingest.hj212 import (
    Frame,
    Hj212Error,
    Message,
    ReadingCandidate,
    SplitAssembler,
    StreamDecoder,
    answer,
    decode,
    encode,
    readings,
)

CASES = Path(__file__).parent / "cases"
CASE_DIRS = sorted(p for p in CASES.iterdir() if p.is_dir())


def _message(m: Message) -> dict[str, Any]:
    return {
        "qn": m.qn,
        "st": m.st,
        "cn": m.cn,
        "pw": m.pw,
        "mn": m.mn,
        "flag": m.flag,
        "pnum": m.pnum,
        "pno": m.pno,
        "version": m.version,
        "protocol": m.protocol,
        "needs_answer": m.needs_answer,
        "is_split": m.is_split,
        "data_time": m.data_time.isoformat() if m.data_time else None,
        "fields": m.cp.fields,
        "pollutants": m.cp.pollutants,
        "warnings": list(m.warnings),
    }


def _reading(r: ReadingCandidate) -> dict[str, Any]:
    return {
        "parameter": r.parameter,
        "hj212_code": r.hj212_code,
        "period": r.period,
        "ts": r.ts.isoformat(),
        "value": r.value,
        "flag": r.flag,
        "raw_value": r.raw_value,
        "unit_in": r.unit_in,
        "unit": r.unit,
        "problem": r.problem,
    }


def _answer(m: Message) -> str | None:
    reply = answer(m)
    # The segment only: length and CRC are checked by the codec tests.
    return None if reply is None else encode(reply)[6:-6].decode()


def _event(
    frame: Frame, expected: dict[str, Any], overrides: dict[str, str] | None
) -> dict[str, Any]:
    if frame.message is None:
        assert frame.error is not None
        return {"raw_length": len(frame.raw), "error": frame.error.reason}
    out: dict[str, Any] = {
        "raw_length": len(frame.raw),
        "message": _message(frame.message),
        "answer": _answer(frame.message),
    }
    if "readings" in expected or "readings_error" in expected:
        try:
            out["readings"] = [
                _reading(r) for r in readings(frame.message, unit_overrides=overrides)
            ]
        except Hj212Error as err:
            out["readings_error"] = err.reason
    return out


def _frames(chunks: list[bytes]) -> list[Frame]:
    decoder = StreamDecoder()
    frames: list[Frame] = []
    for chunk in chunks:
        frames.extend(decoder.feed(chunk))
    frames.extend(decoder.close())
    return frames


def test_corpus_has_enough_cases() -> None:
    assert len(CASE_DIRS) >= 15


@pytest.mark.parametrize("case", CASE_DIRS, ids=lambda p: p.name)
def test_case(case: Path) -> None:
    data = (case / "input.bin").read_bytes()
    expected = json.loads((case / "expected.json").read_text(encoding="utf-8"))
    overrides = expected.get("unit_overrides")

    frames = _frames([data])
    assert len(frames) == len(expected["events"])
    for frame, want in zip(frames, expected["events"], strict=True):
        assert _event(frame, want, overrides) == want
    # Framing must not depend on how TCP cut the bytes.
    bytewise = _frames([data[i : i + 1] for i in range(len(data))])
    assert bytewise == frames
    assert all(f.raw in data for f in frames)

    if "decode" in expected:
        try:
            decode(data)
            outcome = "ok"
        except Hj212Error as err:
            outcome = err.reason
        assert outcome == expected["decode"]

    if "assembled" in expected:
        assembler = SplitAssembler()
        merged: list[Message | Hj212Error] = []
        for frame in frames:
            assert frame.message is not None
            merged.extend(assembler.add(frame.message, 0.0))
        assert len(assembler) == 0
        got = [
            {
                "message": _message(m),
                "readings": [_reading(r) for r in readings(m, unit_overrides=overrides)],
            }
            for m in merged
            if isinstance(m, Message)
        ]
        assert got == expected["assembled"]
