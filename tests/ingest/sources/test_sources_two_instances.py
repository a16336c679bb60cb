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
async def second_app(db_url: str, tmp: Path) -> AsyncIterator[App]:
    settings = Settings(data_dir=tmp, config_dir=REPO / "config", pool_min_size=0, pool_max_size=4)
    async with open_app(settings, url=db_url) as a:
        yield a


async def test_two_instances_poll_each_source_once_and_take_over_when_the_owner_stops(
    app: App, db_url: str, platform: FakePlatform, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    platform.on("/air", by_hour(Reply([])))
    cfg = config_of(cnemc(platform.base_url, interval="1h"))
    async with second_app(db_url, tmp_path / "b") as other:
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
            assert len(platform.seen("/air")) == 2  # two hours asked, once — not twice
            # The loser's tick again: still not its source.
            loser = two if owners[0] is one else one
            await loser._job("t-cnemc-air")
            assert len(platform.seen("/air")) == 2
            await owners[0].__aexit__(None, None, None)  # the owner stops
            owners[0].scheduler = None
            # The next tick of the survivor takes the source over, from the saved cursor.
            await loser._job("t-cnemc-air")
            assert loser.ownership is not None and loser.ownership.held == {"t-cnemc-air"}
            assert loser.pollers["t-cnemc-air"].cursor is not None
    (n,) = await query(db_url, "SELECT count(*) FROM reading WHERE source = 't-cnemc-air'")
    assert n == (12,)
