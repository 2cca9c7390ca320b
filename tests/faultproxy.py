"""A fault-injecting TCP proxy for tests: pass, slow (bandwidth and latency), reset, or black-hole connections.

Runs its own event loop in a thread so subprocess-based tests can switch faults while they poll:
`proxy.set_mode("blackhole")`, `proxy.reset_all()`. It forwards bytes unchanged (TLS passes through).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from typing import Literal

Mode = Literal["pass", "slow", "blackhole"]


class FaultProxy:
    def __init__(self, target_host: str, target_port: int, *, listen_port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.mode: Mode = "pass"
        self.slow_bytes_per_sec = 64 * 1024
        self.slow_delay_secs = 0.2
        self.connections = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._listen_port = listen_port
        self.port = 0
        self._thread = threading.Thread(target=self._run, daemon=True, name="fault-proxy")
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fault proxy did not start")

    # -- control (any thread) -----------------------------------------------------------------------------

    def set_mode(self, mode: Mode) -> None:
        self.mode = mode

    def reset_all(self) -> None:
        """Abort every open connection with a TCP reset."""
        asyncio.run_coroutine_threadsafe(self._reset_all(), self._loop).result(10)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    # -- the proxy ----------------------------------------------------------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._accept, "127.0.0.1", self._listen_port))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _abort(client_writer)
            return
        self._writers |= {client_writer, upstream_writer}
        await asyncio.gather(
            self._pipe(client_reader, upstream_writer), self._pipe(upstream_reader, client_writer),
            return_exceptions=True,
        )  # fmt: skip
        for writer in (client_writer, upstream_writer):
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                with contextlib.suppress(Exception):
                    writer.write_eof()
                return
            while self.mode == "blackhole":  # hold the bytes: the peer sees a silent network
                await asyncio.sleep(0.05)
            if self.mode == "slow":
                await asyncio.sleep(self.slow_delay_secs + len(data) / self.slow_bytes_per_sec)
            writer.write(data)
            await writer.drain()

    async def _reset_all(self) -> None:
        for writer in list(self._writers):
            _abort(writer)
        self._writers.clear()


def _abort(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
