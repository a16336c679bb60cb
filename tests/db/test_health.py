"""The container healthcheck's extra checks (issue 12): a stuck spool, a receiver that
accepts nothing — real files and real sockets."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import numpy as np

from envmon.db.embedded import free_port
from envmon.db.spool import Spool
from envmon.health import problems
from envmon.schemas.readings import ReadingBatch
from envmon.settings import Hj212Settings, Settings


def _batch() -> ReadingBatch:
    o = np.array(["air-a"], dtype=object)
    return ReadingBatch(
        "t", o, np.array(["pm25"], dtype=object), np.array(["1h"], dtype=object),
        np.array(["2025-01-01T00:00"], dtype="datetime64[us]"), np.array([1.0]),
        np.array(["N"], dtype=object),
    )  # fmt: skip


def test_healthy_then_stuck_spool_then_receiver_down(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        settings = Settings(
            data_dir=tmp_path, hj212=Hj212Settings(host="0.0.0.0", port=port)
        ).model_copy()
        settings.api.enabled = False
        assert problems(settings) == []
        # A batch spooled a moment ago is normal (the database just went away).
        path = Spool(settings.spool_dir).append_batch(_batch())
        assert problems(settings) == []
        # Still there 20 minutes later: stuck.
        old = time.time() - 1200
        os.utime(path, (old, old))
        assert problems(settings) == ["spool stuck: 1 file(s) waiting, the oldest for 20 min"]
        path.unlink()
    # The receiver's port no longer accepts.
    assert problems(settings) == [f"HJ 212 receiver not accepting connections on port {port}"]
    settings.api.enabled = True
    settings.api.port = free_port()
    assert len(problems(settings)) == 2
