"""``envmon import``: a file → validation → the sink, pipelined.

Reading, validating and preparing the COPY of the next chunk (in a worker
thread) overlaps with the database storing the previous one, so the two cores
of a small server are both busy; at most two chunks are in memory at once,
whatever the file's size.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from envmon.db.writer import Prepared, WriteResult, prepare
from envmon.ingest.files import Chunk, read_chunks
from envmon.ingest.sink import Sink
from envmon.schemas.readings import Rejection, ValidationResult, Validator

Progress = Callable[[int, int, WriteResult], None]  # rows read, bytes read, result so far
Validated = tuple[Chunk, ValidationResult, Prepared]


@dataclass
class ImportReport:
    path: Path
    rows: int = 0
    result: WriteResult = field(default_factory=WriteResult)
    rejects: list[Rejection] = field(default_factory=list)  # the first ``keep_rejects``
    rejected_total: int = 0
    encoding: str | None = None  # of a text file, as detected or given


async def import_file(
    path: Path,
    *,
    validator: Validator,
    sink: Sink,
    source: str | None = None,
    on_progress: Progress | None = None,
    on_batch: Callable[[int], object] | None = None,
    keep_rejects: int = 1000,
    reader: Callable[[Path], Iterator[Chunk]] = read_chunks,
) -> ImportReport:
    """Import one file; raises ImportFileError only when the file cannot be read."""
    src = source or f"import:{path.name}"
    report = ImportReport(path)
    chunks = reader(path)
    queue: asyncio.Queue[Validated | BaseException | None] = asyncio.Queue(maxsize=1)

    def next_validated() -> Validated | None:
        chunk = next(chunks, None)
        if chunk is None:
            return None
        validated = validator.validate_frame(chunk.frame, src, chunk.raw)
        return chunk, validated, prepare(validated.batch)

    async def produce() -> None:
        try:
            while True:
                item = await asyncio.to_thread(next_validated)
                if item is None:
                    break
                await queue.put(item)
        except Exception as err:  # handed to the consumer, which raises it
            await queue.put(err)
            return
        await queue.put(None)

    producer = asyncio.create_task(produce())
    n_batches = 0
    try:
        while True:
            item = await queue.get()
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            chunk, validated, prepared = item
            report.rows += len(chunk.frame)
            report.encoding = chunk.encoding
            report.result += await sink.store(validated, history=True, prepared=prepared)
            report.rejected_total += len(validated.rejected)
            room = keep_rejects - len(report.rejects)
            if room > 0:
                report.rejects.extend(validated.rejected[:room])
            n_batches += 1
            if on_progress:
                on_progress(report.rows, chunk.bytes_read, report.result)
            if on_batch:
                on_batch(n_batches)
    finally:
        if not producer.done():
            producer.cancel()
        # The producer never raises (its errors reach the consumer above); only the
        # cancellation of a producer stopped early is expected here.
        with contextlib.suppress(asyncio.CancelledError):
            await producer
    return report
