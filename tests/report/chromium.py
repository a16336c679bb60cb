"""Open a page in headless Chromium over the DevTools protocol: screenshot + console errors."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import shutil
from pathlib import Path
from typing import Any

import aiohttp
from PIL import Image

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--remote-debugging-port=0",
)


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


async def open_pages(
    pages: list[tuple[str, Path]], profile: Path, *, width: int = 1000, height: int = 1400
) -> list[dict[str, Any]]:
    """Load each URL in one browser; per page, the console errors and a full-page PNG."""
    binary = chromium_binary()
    assert binary is not None
    proc = await asyncio.create_subprocess_exec(
        binary,
        *FLAGS,
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        ws_url = ""
        async with asyncio.timeout(30):
            while not ws_url:
                line = (await proc.stderr.readline()).decode(errors="replace")
                if not line:
                    raise RuntimeError("chromium exited before its DevTools endpoint was up")
                m = re.search(r"DevTools listening on (ws://\S+)", line)
                if m:
                    ws_url = m.group(1)
        port = int(ws_url.split(":")[2].split("/")[0])
        drain = asyncio.create_task(_drain(proc.stderr))
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as r:
                targets = await r.json(content_type=None)
            page = next(t for t in targets if t["type"] == "page")
            results = []
            for url, screenshot in pages:
                async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                    results.append(await _drive(ws, url, screenshot))
        drain.cancel()
        return results
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


def paper_fraction(png: bytes) -> float:
    """Share of near-white pixels: a drawn page is mostly paper, the viewer's frame is dark."""
    with Image.open(io.BytesIO(png)) as im:
        grey = im.convert("L")
        return sum(grey.histogram()[235:]) / (grey.width * grey.height)


async def _drive(ws: aiohttp.ClientWebSocketResponse, url: str, shot: Path) -> dict[str, Any]:
    next_id = 0
    errors: list[str] = []
    loaded = asyncio.Event()
    replies: dict[int, asyncio.Future[dict[str, Any]]] = {}

    async def reader() -> None:
        async for msg in ws:
            data = json.loads(msg.data)
            if "id" in data and data["id"] in replies:
                replies.pop(data["id"]).set_result(data)
                continue
            method, params = data.get("method"), data.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                errors.append(" ".join(str(a.get("value", a)) for a in params.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                errors.append(str(params.get("exceptionDetails", {}).get("text")))
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                errors.append(str(params["entry"].get("text")))
            elif method == "Page.loadEventFired":
                loaded.set()

    async def call(method: str, **params: Any) -> dict[str, Any]:
        nonlocal next_id
        next_id += 1
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        replies[next_id] = fut
        await ws.send_str(json.dumps({"id": next_id, "method": method, "params": params}))
        reply = await asyncio.wait_for(fut, 30)
        assert "error" not in reply, reply
        return reply.get("result", {})

    task = asyncio.create_task(reader())
    try:
        for domain in ("Page", "Runtime", "Log"):
            await call(f"{domain}.enable")
        await call("Page.navigate", url=url)
        await asyncio.wait_for(loaded.wait(), 30)
        await asyncio.sleep(0.5)  # late console messages, if any
        metrics = await call("Page.getLayoutMetrics")
        size = metrics.get("cssContentSize") or metrics.get("contentSize") or {}
        # The PDF viewer draws its pages after the load event, in its own process: wait
        # (polling, up to a minute on a busy machine) until the pages are on screen.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (60 if url.endswith(".pdf") else 0)
        while True:
            shot_data = await call(
                "Page.captureScreenshot", format="png", captureBeyondViewport=True
            )
            png = base64.b64decode(shot_data["data"])
            if paper_fraction(png) > 0.2 or loop.time() >= deadline:
                break
            await asyncio.sleep(0.5)
        await asyncio.to_thread(shot.write_bytes, png)
        title = (await call("Runtime.evaluate", expression="document.title"))["result"].get("value")
        return {"errors": errors, "height": size.get("height", 0), "title": title}
    finally:
        task.cancel()
