"""StreamDecoder framing and SplitAssembler reassembly."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envmon.ingest.hj212 import (
    CpData,
    Frame,
    Hj212Error,
    Message,
    SplitAssembler,
    StreamDecoder,
    crc16,
    encode,
)

MN = "010000A8900016F000169DC0"


def frame(segment: str, *, length: str | None = None, crlf: bool = True) -> bytes:
    data = segment.encode("utf-8")
    length = length if length is not None else f"{len(data):04d}"
    return (
        b"##" + length.encode() + data + f"{crc16(data):04X}".encode() + (b"\r\n" if crlf else b"")
    )


A = frame(f"QN=20160801085857223;ST=32;CN=1062;PW=100000;MN={MN};Flag=5;CP=&&RtdInterval=30&&")
B = frame(
    f"QN=20240115090012345;ST=22;CN=2061;PW=123456;MN={MN};Flag=4;"
    "CP=&&DataTime=20240115080000;a34004-Avg=35.2,a34004-Flag=N;备注-Info=正常&&"
)


def run(chunks: list[bytes], **kwargs: int) -> list[Frame]:
    decoder = StreamDecoder(**kwargs)
    out: list[Frame] = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    return out + decoder.close()


def summary(frames: list[Frame]) -> list[str]:
    return [
        f.message.cn if f.message is not None else f"!{f.error.reason if f.error else '?'}"
        for f in frames
    ]


def test_several_frames_in_one_chunk_keep_their_raw_bytes() -> None:
    frames = run([A + B + A])
    assert summary(frames) == ["1062", "2061", "1062"]
    assert [f.raw for f in frames] == [A, B, A]
    assert all(f.ok and f.error is None for f in frames)


def test_split_at_every_byte_boundary() -> None:
    data = A + B
    for cut in range(len(data) + 1):
        frames = run([data[:cut], data[cut:]])
        assert [f.raw for f in frames] == [A, B], cut


def test_one_byte_at_a_time() -> None:
    data = A + B + A
    decoder = StreamDecoder()
    got: list[Frame] = []
    for i in range(len(data)):
        got.extend(decoder.feed(data[i : i + 1]))
        # Nothing is kept beyond the frame being received.
        assert decoder.buffered <= len(B)
    assert [f.raw for f in got] == [A, B, A]
    assert decoder.close() == []


@settings(max_examples=100)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=30))
def test_any_chunking_gives_the_same_events(sizes: list[int]) -> None:
    data = b"junk" + A + b"\r\n" + B + b"##xx" + A
    chunks, pos = [], 0
    for size in sizes:
        chunks.append(data[pos : pos + size])
        pos += size
    chunks.append(data[pos:])
    assert run(chunks) == run([data])


def test_garbage_is_reported_once_per_run() -> None:
    garbage = b"AT+CIPSEND\r\n\x00\x01\xff>"
    frames = run([garbage[i : i + 1] for i in range(len(garbage))] + [A])
    assert summary(frames) == ["!garbage", "1062"]
    assert frames[0].raw == garbage


def test_whitespace_between_frames_is_silent() -> None:
    assert summary(run([A + b"\r\n\r\n  " + A + b"\n"])) == ["1062", "1062"]


def test_huge_garbage_is_bounded() -> None:
    decoder = StreamDecoder(max_buffer=1024)
    events: list[Frame] = []
    for _ in range(100):
        events.extend(decoder.feed(b"x" * 1000))
        assert decoder.buffered == 0
    events.extend(decoder.feed(A))
    assert len(events) == 99  # one per 1024 garbage bytes, then the frame
    assert all(len(f.raw) <= 1024 for f in events)
    assert events[-1].ok


def test_trailing_hash_is_kept_for_the_next_chunk() -> None:
    frames = run([b"xyz#", A[1:]])
    assert summary(frames) == ["!garbage", "1062"]
    assert frames[0].raw == b"xyz"


def test_stray_hash_before_header() -> None:
    assert summary(run([b"#" + A])) == ["!garbage", "1062"]


def test_bad_length_field_resyncs() -> None:
    bad = A.replace(b"##0101", b"##01x1")
    frames = run([A + bad + B])
    assert summary(frames) == ["1062", "!bad_length", "2061"]
    assert frames[1].raw == bad


def test_crc_error_consumes_only_its_frame() -> None:
    bad = A.replace(b"RtdInterval=30", b"RtdInterval=31")
    frames = run([bad + A])
    assert summary(frames) == ["!crc_mismatch", "1062"]
    assert frames[0].raw == bad


def test_length_field_too_large_does_not_swallow_the_next_frame() -> None:
    bad = A.replace(b"##0101", b"##0900")
    assert summary(run([bad, A])) == ["!length_mismatch", "1062"]


def test_length_field_too_small() -> None:
    bad = A.replace(b"##0101", b"##0090")
    assert summary(run([bad + A])) == ["!length_mismatch", "1062"]


def test_frame_cut_short_by_a_new_frame() -> None:
    frames = run([A[:50] + B])
    assert summary(frames) == ["!truncated", "2061"]
    assert frames[0].raw == A[:50]


def test_frames_without_crlf() -> None:
    bare = A[:-2]
    frames = run([bare + bare + bare])
    assert summary(frames) == ["1062", "1062", "1062"]
    assert all(f.raw == bare for f in frames)


def test_truncated_at_end_of_stream() -> None:
    frames = run([A + B[:40]])
    assert summary(frames) == ["1062", "!truncated"]
    assert frames[1].raw == B[:40]


def test_frame_that_never_ends_overflows_the_buffer() -> None:
    header = b"##9999QN=1;" + b"x" * 300  # no CRLF ever
    frames = run([header, b"y" * 300, A], max_buffer=256)
    assert summary(frames)[-1] == "1062"
    assert summary(frames)[0] == "!buffer_overflow"


def test_no_crlf_within_what_the_length_allows() -> None:
    # Declared 10 bytes; even at 4 bytes per character the frame must end by 52.
    frames = run([b"##0010" + b"z" * 100, A])
    assert summary(frames) == ["!length_mismatch", "1062"]
    # Arriving together, the next frame's "##" cuts the bad one short instead.
    assert summary(run([b"##0010" + b"z" * 100 + A])) == ["!truncated", "1062"]


def test_max_buffer_must_be_sane() -> None:
    with pytest.raises(ValueError, match="max_buffer"):
        StreamDecoder(max_buffer=10)


@settings(max_examples=300)
@given(
    st.lists(
        st.binary(max_size=64) | st.sampled_from([A, B, b"##", b"\r\n", b"##0101"]), max_size=20
    )
)
def test_fuzz_stream_only_yields_frames(chunks: list[bytes]) -> None:
    data = b"".join(chunks)
    frames = run(chunks, max_buffer=512)
    for f in frames:
        assert (f.message is None) != (f.error is None)
        assert f.raw
        assert f.raw in data
    assert sum(len(f.raw) for f in frames) <= len(data)


# ------------------------------------------------------------------ SplitAssembler


def part(
    pno: int,
    pnum: int = 3,
    *,
    qn: str | None = None,
    data_time: str | None = "20240115080000",
    flag: int = 7,
) -> Message:
    fields = {"DataTime": data_time} if data_time else {}
    return Message(
        qn=qn or f"2024011509001200{pno}",
        st="22",
        cn="2061",
        pw="123456",
        mn=MN,
        flag=flag,
        pnum=pnum,
        pno=pno,
        cp=CpData(fields, {f"a3400{pno}": {"Avg": str(pno), "Flag": "N"}}),
    )


def test_reassembles_in_any_order() -> None:
    assembler = SplitAssembler()
    assert assembler.add(part(3), 0.0) == []
    assert assembler.add(part(1), 1.0) == []
    assert len(assembler) == 1
    (merged,) = assembler.add(part(2), 2.0)
    assert isinstance(merged, Message)
    assert merged.qn == "20240115090012001"  # first packet's header
    assert (merged.flag, merged.pnum, merged.pno) == (4, None, None)
    assert not merged.needs_answer
    assert not merged.is_split
    assert list(merged.cp.pollutants) == ["a34001", "a34002", "a34003"]
    assert merged.cp.fields == {"DataTime": "20240115080000"}
    assert "reassembled from 3 packets" in merged.warnings
    assert len(assembler) == 0
    # The merged message is a valid message in its own right.
    assert encode(merged)


def test_groups_without_datatime_are_keyed_by_qn() -> None:
    assembler = SplitAssembler()
    assert assembler.add(part(1, 2, qn="1" * 17, data_time=None), 0.0) == []
    assert assembler.add(part(2, 2, qn="2" * 17, data_time=None), 0.0) == []
    assert len(assembler) == 2


def test_duplicate_packet_is_a_retransmission() -> None:
    assembler = SplitAssembler()
    assembler.add(part(1, 2), 0.0)
    assert assembler.add(part(1, 2), 1.0) == []
    (merged,) = assembler.add(part(2, 2), 2.0)
    assert isinstance(merged, Message)


def test_unsplit_messages_pass_through() -> None:
    m = Message(qn=None, st="22", cn="2061", pw=None, mn=MN, flag=4)
    assert SplitAssembler().add(m, 0.0) == [m]


def test_expire_reports_incomplete_groups() -> None:
    assembler = SplitAssembler(timeout=60.0)
    assembler.add(part(1), 0.0)
    assembler.add(part(3), 30.0)
    assert assembler.expire(80.0) == []
    (error,) = assembler.expire(91.0)
    assert error.reason == "split_incomplete"
    assert "PNO 1,3 of PNUM=3" in error.detail
    assert len(assembler) == 0


def test_max_groups_evicts_the_oldest() -> None:
    assembler = SplitAssembler(max_groups=2)
    assembler.add(part(1, data_time="20240115080000"), 0.0)
    assembler.add(part(1, data_time="20240115090000"), 0.0)
    (error,) = assembler.add(part(1, data_time="20240115100000"), 0.0)
    assert isinstance(error, Hj212Error)
    assert error.reason == "split_incomplete"
    assert "DataTime=20240115080000" in error.detail
    assert len(assembler) == 2


def test_pnum_change_and_limits() -> None:
    assembler = SplitAssembler(max_parts=5)
    assembler.add(part(1, 3), 0.0)
    (error,) = assembler.add(part(1, 4), 0.0)
    assert isinstance(error, Hj212Error)
    assert error.reason == "split_conflict"
    assert len(assembler) == 1
    (too_many,) = assembler.add(part(1, 6), 0.0)
    assert isinstance(too_many, Hj212Error)
    assert too_many.reason == "split_incomplete"


def test_datatime_in_the_first_packet_only() -> None:
    # Issue 17: loggers that put DataTime in packet 1 only, each packet its own QN.
    assembler = SplitAssembler()
    assert assembler.add(part(1, 3, qn="1" * 17), 0.0) == []
    assert assembler.add(part(2, 3, qn="2" * 17, data_time=None), 0.0) == []
    (merged,) = assembler.add(part(3, 3, qn="3" * 17, data_time=None), 0.0)
    assert isinstance(merged, Message)
    assert merged.cp.fields["DataTime"] == part(1, 3).cp.fields["DataTime"]


def test_packets_sharing_a_qn_group_whichever_carries_the_datatime() -> None:
    # Issue 18: common loggers give every packet of an upload the same QN and
    # put DataTime in one packet only; packets may arrive in any order.
    qn = "20240115090012345"
    for with_time in (1, 2, 3):
        for order in ((1, 2, 3), (3, 2, 1), (2, 3, 1)):
            assembler = SplitAssembler()
            out: list[Message | Hj212Error] = []
            for pno in order:
                data_time = "20240115080000" if pno == with_time else None
                out += assembler.add(part(pno, 3, qn=qn, data_time=data_time), float(pno))
            assert len(out) == 1, (with_time, order, out)
            (merged,) = out
            assert isinstance(merged, Message)
            assert merged.cp.fields == {"DataTime": "20240115080000"}
            assert list(merged.cp.pollutants) == ["a34001", "a34002", "a34003"]
            assert len(assembler) == 0


def test_interleaved_uploads_of_one_logger_are_kept_apart_by_qn() -> None:
    assembler = SplitAssembler(timeout=60.0)
    qa, qb = "20240115090012345", "20240115090013345"
    assert assembler.add(part(1, 2, qn=qa, data_time="20240115080000"), 0.0) == []
    assert assembler.add(part(1, 2, qn=qb, data_time="20240115090000"), 1.0) == []
    (a,) = assembler.add(part(2, 2, qn=qa, data_time=None), 50.0)
    # B's time-out runs from its last packet (t=1), A's packet did not refresh it.
    assert [err.reason for err in assembler.expire(62.0)] == ["split_incomplete"]
    assert isinstance(a, Message)
    assert (a.qn, a.cp.fields["DataTime"]) == (qa, "20240115080000")
