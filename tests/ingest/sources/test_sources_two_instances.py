"""Two instances sharing one database poll each source once (issue 16, docs/scaling.md).

Two real apps (each its own pool, sink and collectors, as two ``envmon run``
would have) over one database and one real HTTP platform: the advisory-lock
ownership lets one of them poll; the other takes over when the owner stops.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from envmon.app import App, open_app
from envmon.ingest.collectors import Collectors
from envmon.settings import Settings

from .conftest import REPO, FakeClock, FakePlatform, FakeSleep, Reply, config_of, eventually, query
from .test_sources_poller import NOW, by_hour, cnemc


@asynccontextmanager
async def two_instances(
    app: App, db_url: str, platform: FakePlatform, session: aiohttp.ClientSession, tmp: Path
) -> AsyncIterator[tuple[Collectors, Collectors]]:
    """Two apps' collectors, started at once on one source: (its owner, the other)."""
    platform.on("/air", by_hour(Reply([])))
    cfg = config_of(cnemc(platform.base_url, interval="1h"))
    settings = Settings(data_dir=tmp, config_dir=REPO / "config", pool_min_size=0, pool_max_size=4)
    async with open_app(settings, url=db_url) as other:
        one = Collectors(app.intake, cfg, session, clock=FakeClock(NOW), sleep=FakeSleep())
        two = Collectors(other.intake, cfg, session, clock=FakeClock(NOW), sleep=FakeSleep())
        async with one, two:
            # Both schedulers fire their first poll at once; one instance polls.
            await eventually(
                lambda: any(
                    c.pollers["t-cnemc-air"].health.last_success_at is not None for c in (one, two)
                )
            )
            await asyncio.sleep(0.3)  # the other's job has run (and skipped) by now
            owners = [c for c in (one, two) if c.ownership and c.ownership.held]
            assert len(owners) == 1
            yield owners[0], two if owners[0] is one else one


async def tick_until_owned(c: Collectors, name: str) -> None:
    """The scheduler's ticks, sooner: until this instance owns the source."""
    while not (c.ownership and name in c.ownership.held):
        await c._job(name)
        await asyncio.sleep(0.05)


async def test_two_instances_poll_each_source_once_and_take_over_when_the_owner_stops(
    app: App, db_url: str, platform: FakePlatform, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    async with two_instances(app, db_url, platform, session, tmp_path) as (owner, loser):
        assert len(platform.seen("/air")) == 2  # two hours asked, once — not twice
        # The loser's tick again: still not its source.
        await loser._job("t-cnemc-air")
        assert len(platform.seen("/air")) == 2
        await owner.__aexit__(None, None, None)  # the owner stops
        owner.scheduler = None
        # The next tick of the survivor takes the source over, from the saved cursor
        # (the server frees the lock once the closed session's backend has ended).
        await tick_until_owned(loser, "t-cnemc-air")
        assert loser.ownership is not None and loser.ownership.held == {"t-cnemc-air"}
        assert loser.pollers["t-cnemc-air"].cursor is not None
    (n,) = await query(db_url, "SELECT count(*) FROM reading WHERE source = 't-cnemc-air'")
    assert n == (12,)


async def test_an_owner_whose_session_dies_gives_the_source_up_to_the_other(
    app: App, db_url: str, platform: FakePlatform, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    async with two_instances(app, db_url, platform, session, tmp_path) as (owner, rival):
        # The owner's lock session is killed (a crashed host, a cut network).
        await query(
            db_url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'envmon envmon.poll' AND pid IN"
            " (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)",
        )
        await tick_until_owned(rival, "t-cnemc-air")  # the lock is free: the rival takes it
        assert rival.ownership is not None and rival.ownership.held == {"t-cnemc-air"}
        asked = len(platform.seen("/air"))
        await owner._job("t-cnemc-air")  # the old owner learns it lost it, polls nothing
        assert owner.ownership is not None and owner.ownership.held == set()
        assert len(platform.seen("/air")) == asked
    (n,) = await query(db_url, "SELECT count(*) FROM reading WHERE source = 't-cnemc-air'")
    assert n == (12,)
