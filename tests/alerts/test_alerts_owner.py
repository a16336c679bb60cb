"""One alert owner across instances (issue 16, docs/scaling.md, ``envmon.alerts.relay``).

Two real apps (each its own pool, sink and alert service, as two ``envmon run``
have) over one database: readings stored by either reach the one owner of the
``envmon.alerts`` lock, each exceedance is notified once, and when the owner
stops or its session dies the other takes over from the persisted episodes and
the watermark — readings stored while nobody owned are judged, open episodes
are not announced again. The full-process proof (``kill -9``) is
tests/ops/test_two_instances.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from envmon.alerts.relay import decode, encode
from envmon.alerts.service import AlertService
from envmon.app import App, open_app
from envmon.schemas.readings import RawReading
from envmon.settings import Settings

from .conftest import (
    AIR,
    AIR2,
    AIR_XZ,
    PM25_RULE,
    REPO,
    Receiver,
    base_hour,
    config,
    feed,
    hook,
    quick,
    rows,
)


async def eventually(check: Callable[[], bool], within: float = 30.0) -> None:
    """Until ``check`` holds (other tasks change what it reads: no event to await)."""
    async with asyncio.timeout(within):
        while not check():  # noqa: ASYNC110
            await asyncio.sleep(0.05)


def _service(app: App, db_url: str, receiver: Receiver, name: str) -> AlertService:
    cfg = config(
        [PM25_RULE],
        channels={"duty": hook(receiver)},
        routes=[{"name": "default", "channels": ["duty"]}],
    )
    return AlertService(
        app.pool,
        app.catalog,
        sink=app.sink,
        settings=quick(claim_s=0.1, catch_up_margin_s=5),
        config=cfg,
        shared=db_url,
        instance=name,
    )


@asynccontextmanager
async def _other_app(db_url: str, tmp: Path) -> AsyncIterator[App]:
    settings = Settings(data_dir=tmp, config_dir=REPO / "config", pool_min_size=0, pool_max_size=4)
    async with open_app(settings, url=db_url) as other:
        yield other


@dataclass
class Pair:
    owner: AlertService
    rest: AlertService
    owner_app: App
    rest_app: App


@asynccontextmanager
async def _pair(app: App, db_url: str, receiver: Receiver, tmp: Path) -> AsyncIterator[Pair]:
    """Two instances' alert services over one database, once one of them owns the alerts."""
    async with _other_app(db_url, tmp / "b") as other, AsyncExitStack() as stack:
        one = await stack.enter_async_context(_service(app, db_url, receiver, "one"))
        two = await stack.enter_async_context(_service(other, db_url, receiver, "two"))
        owner = await _owner(one, two)
        if owner is one:
            yield Pair(one, two, app, other)
        else:
            yield Pair(two, one, other, app)


async def _owner(*services: AlertService) -> AlertService:
    """The one service that owns the alerts, once one does."""
    await eventually(lambda: any(s.owner and s.owner.running for s in services))
    owners = [s for s in services if s.owner and s.owner.running]
    assert len(owners) == 1
    return owners[0]


async def _firing(receiver: Receiver) -> list[str]:
    """Subjects of the firing notices received, in order."""
    return [r.json["subject"] for r in receiver.on("/hook") if r.json["kind"] == "firing"]


def test_a_forwarded_batch_keeps_every_recent_row_within_the_notification_limit() -> None:
    from envmon.schemas.readings import Validator

    stations = (AIR, AIR2, AIR_XZ)
    params = ("pm25", "pm10", "so2", "no2", "co", "o3")
    raws = [
        RawReading(sid, p, base_hour(h), float(h * 100 + i), "N", "1h")
        for h in range(1, 48)
        for sid in stations
        for i, p in enumerate(params)
    ]
    batch = Validator(dict.fromkeys(stations, "air")).validate(raws, "t").batch
    payloads = encode(batch, "a", base_hour(0).timestamp())
    assert len(payloads) >= 3 and all(len(p.encode()) <= 7000 for p in payloads)
    back = [decode(p) for p in payloads]
    got = sorted(
        (sid, p, int(v))
        for b in back
        for sid, p, v in zip(
            b.station_id.tolist(), b.parameter.tolist(), b.value.tolist(), strict=True
        )
    )
    # History (older than a day) is not sent: the engine drops it too.
    day_ago = base_hour(24)
    want = sorted((sid, p, int(v)) for sid, p, _, ts, v, _ in batch.rows() if ts >= day_ago)
    assert len(batch) > len(want) > 300
    assert got == want
    assert {b.source for b in back} == {"t"}


async def test_two_instances_raise_each_alert_once_and_the_other_takes_over(
    app: App, db_url: str, receiver: Receiver, tmp_path: Path
) -> None:
    hour = base_hour(2)
    async with _pair(app, db_url, receiver, tmp_path) as pair:
        owner, rest, owner_app, rest_app = pair.owner, pair.rest, pair.owner_app, pair.rest_app
        # An exceedance whose readings reach both instances (a logger reconnecting):
        # judged by the owner alone, announced once.
        await feed(rest_app, [(AIR, "pm25", hour, 180.0)])
        await feed(owner_app, [(AIR, "pm25", hour, 180.0)])
        await feed(owner_app, [(AIR, "pm25", base_hour(1), 190.0)])
        await feed(rest_app, [(AIR, "pm25", base_hour(1), 190.0)])
        await receiver.wait_for(1, "/hook")
        # Stored by the non-owner only: forwarded, judged, announced.
        await feed(rest_app, [(AIR2, "pm25", hour, 200.0)])
        await receiver.wait_for(2, "/hook")
        await asyncio.sleep(0.5)
        assert sorted(await _firing(receiver)) == sorted([AIR, AIR2])
        assert rest.engine is None and rest.owner is not None and rest.owner.forwarded >= 3

        # The owner stops; readings stored meanwhile (nobody owns for a moment) are
        # judged by the next owner's catch-up.
        _pause(rest)
        await owner.aclose()
        await feed(rest_app, [(AIR_XZ, "pm25", hour, 210.0)])
        await _resume(rest)
        assert await _owner(rest) is rest
        await receiver.wait_for(3, "/hook")
        await asyncio.sleep(0.5)
        # AIR and AIR2 were open before: not announced again.
        assert sorted(await _firing(receiver)) == sorted([AIR, AIR2, AIR_XZ])
        assert rest.owner is not None and rest.owner.caught_up >= 1
    (n,) = (await rows(app, "SELECT count(*) FROM alert_event"))[0]
    assert n == 3


def _pause(svc: AlertService) -> None:
    """Hold an instance's ownership claims back (its claim loop stopped) for a moment."""
    assert svc.owner is not None and svc.owner._loop_task is not None
    svc.owner._loop_task.cancel()


async def _resume(svc: AlertService) -> None:
    assert svc.owner is not None
    await svc.owner.start()


async def test_an_owner_whose_session_dies_stops_judging_and_the_other_takes_over(
    app: App, db_url: str, receiver: Receiver, tmp_path: Path
) -> None:
    hour = base_hour(2)
    async with _pair(app, db_url, receiver, tmp_path) as pair:
        owner, rest, rest_app = pair.owner, pair.rest, pair.rest_app
        await feed(rest_app, [(AIR, "pm25", hour, 180.0)])
        await receiver.wait_for(1, "/hook")
        # The owner's lock session is killed (a crashed host, a cut network).
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'envmon envmon.alerts' AND pid IN"
                " (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)"
            )
        await eventually(lambda: bool(rest.owner and rest.owner.running))
        await eventually(lambda: owner.engine is None)
        await feed(rest_app, [(AIR2, "pm25", hour, 200.0)])
        await receiver.wait_for(2, "/hook")
        await asyncio.sleep(0.5)
        assert sorted(await _firing(receiver)) == sorted([AIR, AIR2])


async def test_a_takeover_does_not_raise_again_an_episode_that_ended_before_it(
    app: App, db_url: str, receiver: Receiver, tmp_path: Path
) -> None:
    async with _pair(app, db_url, receiver, tmp_path) as pair:
        owner, rest, rest_app = pair.owner, pair.rest, pair.rest_app
        # Fired and over, both within the catch-up margin of the takeover below.
        await feed(rest_app, [(AIR, "pm25", base_hour(2), 180.0)])
        await receiver.wait_for(1, "/hook")
        await feed(rest_app, [(AIR, "pm25", base_hour(1), 60.0)])
        await receiver.wait_for(2, "/hook")
        _pause(rest)
        await owner.aclose()
        await _resume(rest)
        assert await _owner(rest) is rest
        assert rest.owner is not None and rest.owner.caught_up >= 2  # both replayed ...
        await feed(rest_app, [(AIR2, "pm25", base_hour(1), 200.0)])
        await receiver.wait_for(3, "/hook")
        await asyncio.sleep(0.5)
        # ... and the exceedance that ended is not announced again.
        assert [r.json["kind"] for r in receiver.on("/hook")] == ["firing", "resolved", "firing"]
        assert await _firing(receiver) == [AIR, AIR2]
