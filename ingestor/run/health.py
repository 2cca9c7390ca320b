"""HTTP endpoints on `metrics.port`: `/metrics` (Prometheus), `/healthz` (alive), `/readyz` (ready to work).

Alive means every internal task still runs; after one died, `/healthz` answers 503 with `task <name> died: <error>`
while the process shuts down. Ready means the source's credentials give tokens, its start reached every part it
needs, partitions are assigned, the Logs Ingestion API accepts our requests and the dead letter can be written
(`app.Ingestor.readiness`); the body says why not.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ingestor.metrics import Metrics

# A check behind /readyz or /healthz: whether it passes, and if not, why.
Probe = Callable[[], tuple[bool, str]]


class HealthServer:
    def __init__(self, metrics: Metrics, readiness: Probe, liveness: Probe, *, host: str, port: int) -> None:
        self._metrics = metrics
        self._readiness = readiness
        self._liveness = liveness
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self.port = port

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._scrape)
        app.router.add_get("/healthz", self._alive)
        app.router.add_get("/readyz", self._ready)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        sockets = getattr(site._server, "sockets", None)
        if sockets:  # port 0: report the one the OS chose
            self.port = sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _scrape(self, _request: web.Request) -> web.Response:
        self._metrics.ready.set(1 if self._readiness()[0] else 0)  # fresh at every scrape, not only at /readyz
        body = generate_latest(self._metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _alive(self, _request: web.Request) -> web.Response:
        alive, reason = self._liveness()
        return web.Response(text=("ok" if alive else reason) + "\n", status=200 if alive else 503)

    async def _ready(self, _request: web.Request) -> web.Response:
        ready, reason = self._readiness()
        self._metrics.ready.set(1 if ready else 0)
        return web.Response(text=("ready" if ready else f"not ready: {reason}") + "\n", status=200 if ready else 503)
