"""The receiver's open split groups: one assembler shared by every
connection (a device may send the rest of a group after a reconnect, or
after a restart of the receiver), its journal (:mod:`.splitjournal`), and
what happens to groups no connection is there for — replayed from the
journal at start, timed out, or put back after a batch could not be kept.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from .pipeline import Pipeline
from .profile import Directory
from .session import Output, Session
from .splitjournal import SplitJournal, SplitPacket
from .stream import SplitAssembler

logger = logging.getLogger(__name__)


class OpenSplits:
    """Split groups waiting for packets, for all connections (see the module doc)."""

    def __init__(
        self,
        directory: Directory,
        journal: SplitJournal,
        pipeline: Pipeline,
        clock: Callable[[], datetime],
        *,
        timeout: float,
        max_groups: int,
    ) -> None:
        self.assembler = SplitAssembler(timeout=timeout, max_groups=max_groups)
        self.journal = journal
        self.pipeline = pipeline
        self.clock = clock
        # Ingests and rejects the groups that leave without a connection.
        self._session = Session(directory, splits=self.assembler)
        pipeline.on_lost = self.lost

    def __len__(self) -> int:
        return len(self.assembler)

    def replay(self) -> None:
        """The packets of groups open at the last stop (or crash) back into
        their groups, each as old as it is: groups complete in the journal are
        stored, the others wait for their remaining packets until the split
        time-out (from their last packet) rejects them."""
        packets = self.journal.open()
        if not packets:
            return
        mono, wall = asyncio.get_running_loop().time(), self.clock()
        for packet in packets:
            age = max(0.0, (wall - packet.at).total_seconds())
            self._queue(self._session.rejoin(packet, mono - age))
        logger.info(
            "hj212 split journal replayed packets=%d groups_open=%d",
            len(packets),
            len(self.assembler),
        )

    def journal_packets(self, out: Output) -> None:
        """Append the packets of a session's output left waiting in their
        groups to the journal (durable before their replies go: the pipeline
        syncs the journal before it releases them)."""
        for i, packet in enumerate(out.split_packets):
            if not packet.held or packet.seq >= 0:
                continue
            try:
                self.journal.append(packet)
            except OSError:
                # Not kept, so not answered: the device sends them again, and
                # they must then count as new packets, not as repeats.
                for rest in out.split_packets[i:]:
                    if rest.held and rest.seq < 0:
                        self.assembler.discard(rest.message, rest)
                self.lost(out.split_done)
                raise

    def expire(self, mono: float) -> None:
        """Groups idle longer than the split time-out become rejects."""
        self._queue(self._session.expire_splits(mono))

    def lost(self, packets: list[SplitPacket]) -> None:
        """A batch with these groups could not be kept: their journalled
        packets wait again for the one whose reply was withheld."""
        mono = asyncio.get_running_loop().time()
        for packet in packets:
            if packet.seq >= 0:
                self._queue(self._session.rejoin(packet, mono))

    def _queue(self, out: Output) -> None:
        if len(out.readings) or out.rejects or out.split_done:
            self.pipeline.put(out.readings, out.rejects, done=out.split_done)
