"""Device passwords stay secret (issue 18): after successful and failed
logins, a bad CRC and an unknown MN, no password is in any table, the
archive, the spool or the log."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

import pytest

from envmon.ingest.hj212 import encode
from envmon.timeutil import BEIJING

from .conftest import AIR, AIR2, PASSWORDS, Harness, wrong_crc

T0 = datetime(2025, 6, 1, 8, tzinfo=BEIJING)
SECRET = "Zq7-secret-Pw"  # AIR's real password
OTHER = "Kx4-other-Pw"  # AIR2's, sent by an intruder on AIR's MN
GUESS = "Gz9-guess-Pw"  # an attacker's guess
UNKNOWN = "Uv3-unknown-Pw"  # sent with an MN the receiver does not know
NEW = "Nw5-new-Pw"  # in the CP of a frame (NewPW=)
ALL = (SECRET, OTHER, GUESS, UNKNOWN, NEW)


async def _grep_database(hj: Harness) -> list[str]:
    tables = await hj.query(
        "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name)"
        " FROM information_schema.tables"
        " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
        " AND table_schema NOT LIKE '\\_timescaledb%' AND table_type = 'BASE TABLE'"
    )
    found = []
    for (table,) in tables:
        for secret in ALL:
            [(n,)] = await hj.query(
                f"SELECT count(*) FROM {table} AS t WHERE t::text LIKE %s",
                (f"%{secret}%",),
            )
            if n:
                found.append(f"{table}: {secret}")
    return found


def _grep_files(root: Path) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path}: {s}" for s in ALL if s.encode() in data]
    return found


async def test_no_password_in_any_sink(hj: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="envmon")
    secrets = {**PASSWORDS, AIR.mn or "": SECRET, AIR2.mn or "": OTHER}
    values = {"a34004": (35.0, "N")}
    async with hj.server(secrets=secrets, auth_failures_before_close=10) as srv:
        async with hj.device(srv, pw=SECRET) as dev:
            await dev.send_hourly(T0, values)  # a successful login
            bad = encode(dev.upload_message("2061", T0.replace(hour=9), values))
            await dev.send_raw(wrong_crc(bad))  # a CRC mismatch
            # A frame with a password in its CP (a 1072 would carry it so).
            await dev.send_hourly(T0.replace(hour=10), {"a34004": ("x", "N")})
            cp = dev.upload_message("2061", T0.replace(hour=11), {"a34004": (f"NewPW={NEW}", "N")})
            await dev.send_raw(encode(cp))
        for pw in (GUESS, OTHER):
            async with hj.device(srv, pw=pw, timeout=0.2, retries=0) as intruder:
                await intruder.send_raw(encode(intruder.upload_message("2061", T0, values)))
        async with hj.device(
            srv, mn="0100A0A0A0A0A0A0A0A0A0A0", pw=UNKNOWN, timeout=0.2, retries=0
        ) as stranger:
            await stranger.send_raw(encode(stranger.upload_message("2061", T0, values)))
        await hj.settled(srv)
    assert len(await hj.readings()) == 1
    rejected = await hj.rejected()
    assert len(rejected) >= 4 and all("PW=***" in r[4] for r in rejected if "PW=" in r[4])
    assert await _grep_database(hj) == []
    assert _grep_files(hj.tmp_path) == []
    assert [m for m in caplog.messages if any(s in m for s in ALL)] == []
