"""A durable, append-only spool for batches the database could not take.

When the database is unreachable the writer appends each validated batch (and
each batch of rejects) here as one file, written to a temporary name, fsynced
and renamed, so a crash never leaves half a batch. Files are named by a
monotonically increasing sequence number and replayed in that order; a file is
deleted only after its batch is committed. Replaying twice is harmless: the
writer's upsert is idempotent, so no reading is lost and none duplicated.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import numpy as np

from envmon.log import db_logger as logger
from envmon.schemas.readings import ReadingBatch, Rejection


class Spool:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _next_name(self, suffix: str) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        seqs = [int(p.name.split("-", 1)[0]) for p in self._files()]
        seq = max(seqs, default=0) + 1
        return self.directory / f"{seq:012d}-{suffix}"

    def _files(self) -> list[Path]:
        if not self.directory.exists():
            return []
        return sorted(
            p
            for p in self.directory.iterdir()
            if p.name[:12].isdigit() and not p.name.endswith(".tmp")
        )

    def _write_atomic(self, path: Path, write: object) -> None:
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            write(f)  # type: ignore[operator]
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        self._fsync_dir()

    def _fsync_dir(self) -> None:
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def append_batch(self, batch: ReadingBatch) -> Path:
        path = self._next_name("readings.npz")
        self._write_atomic(path, _npz_writer(batch))
        logger.warning("database unavailable: %d readings spooled to %s", len(batch), path.name)
        return path

    def append_rejects(self, rejects: list[Rejection]) -> Path:
        path = self._next_name("rejected.jsonl")

        def write(f: object) -> None:
            for r in rejects:
                d = asdict(r)
                d["ts"] = r.ts.isoformat() if r.ts else None
                f.write((json.dumps(d, ensure_ascii=False) + "\n").encode())  # type: ignore[attr-defined]

        self._write_atomic(path, write)
        logger.warning("database unavailable: %d rejects spooled to %s", len(rejects), path.name)
        return path

    def pending(self) -> list[Path]:
        return self._files()

    def adopt(self, other: Path) -> int:
        """Take over the spool of another process that no longer runs (an HJ 212
        receiver worker): its pending files, in their order, after this one's,
        and its quarantine. Returns the files moved."""
        moved = 0
        for path in Spool(other)._files():
            kind = path.name.split("-", 1)[1]
            os.replace(path, self._next_name(kind))
            moved += 1
        quarantine = Spool(other).quarantine_dir
        if quarantine.is_dir():
            target = self.quarantine_dir
            target.mkdir(parents=True, exist_ok=True)
            for path in sorted(quarantine.iterdir()):
                os.replace(path, target / f"{other.parent.name}-{path.name}")
                moved += 1
        if moved:
            self._fsync_dir()
        return moved

    # Quarantine: batches the database refused for a reason other than being
    # unreachable (a constraint, a TimescaleDB limit, a bug). They must never
    # block the spool or the batches after them, and must never be lost:
    # each is kept with its reason for an operator (``envmon spool status``).
    @property
    def quarantine_dir(self) -> Path:
        return self.directory / "quarantine"

    def quarantine(self, path_or_batch: Path | ReadingBatch, reason: str) -> Path:
        """Move a spool file, or write a batch, into the quarantine with its reason."""
        qdir = self.quarantine_dir
        qdir.mkdir(parents=True, exist_ok=True)
        if isinstance(path_or_batch, Path):
            target = qdir / path_or_batch.name
            os.replace(path_or_batch, target)
        else:
            spool = Spool(qdir)
            target = spool._next_name("readings.npz")
            spool._write_atomic(target, _npz_writer(path_or_batch))
        target.with_name(target.name + ".reason.txt").write_text(reason + "\n", encoding="utf-8")
        logger.error("batch quarantined file=%s reason=%s", target, reason)
        return target

    def quarantined(self) -> list[Path]:
        qdir = self.quarantine_dir
        if not qdir.exists():
            return []
        return sorted(p for p in qdir.iterdir() if p.name.endswith((".npz", ".jsonl")))

    def pending_readings(self) -> int:
        total = 0
        for p in self._files():
            if p.name.endswith(".npz"):
                with np.load(p) as z:
                    total += int(z["value"].shape[0])
        return total

    @staticmethod
    def load(path: Path) -> ReadingBatch | list[Rejection]:
        if path.name.endswith(".npz"):
            with np.load(path) as z:
                return ReadingBatch(
                    str(z["source"]),
                    z["station_id"].astype(object),
                    z["parameter"].astype(object),
                    z["period"].astype(object),
                    z["ts"],
                    z["value"],
                    z["flag"].astype(object),
                )
        out = []
        with open(path, encoding="utf-8") as f:
            for line in f:
                d = json.loads(line)
                d["ts"] = datetime.fromisoformat(d["ts"]) if d["ts"] else None
                out.append(Rejection(**d))
        return out

    def __iter__(self) -> Iterator[Path]:
        return iter(self._files())


def _npz_writer(batch: ReadingBatch) -> Callable[[object], None]:
    def write(f: object) -> None:
        np.savez(
            f,  # type: ignore[arg-type]
            source=np.array(batch.source),
            station_id=batch.station_id.astype(str),
            parameter=batch.parameter.astype(str),
            period=batch.period.astype(str),
            ts=batch.ts.astype("datetime64[us]"),
            value=batch.value,
            flag=batch.flag.astype(str),
        )

    return write
