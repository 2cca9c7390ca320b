"""Any internal task of `ingestor run` that dies takes liveness with it (issue 12, item 3).

Each task is made to die after it started: the method it runs works for real for a while, then raises. The
ingestor runs in-process on the real broker (or the AMQP source at the SDK boundary, with checkpoints in Azurite)
against the HTTPS emulator. What is asserted: `/healthz` answers 503 `task <name> died: <Type>: <message>` while the
process shuts down (read just before the health server closes), one ERROR line names the task, and `run()` raises
TaskDied (the CLI's exit code 3) within the grace period plus the time to close the clients. The last test runs the
real CLI as a process, with delivery made to die once rows are in flight, and asserts the exit code.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import IllegalStateError
from azure.eventhub.exceptions import ConnectionLostError
from eventhubs_sdk import ReplayClient
from realparts import (
    EmulatorProcess,
    emulator_sink,
    http_get,
    ingestor_config,
    produce,
    unique_names,
    wait_for,
)
from test_source_contract import EventHubsRig, KafkaRig, traffic

from ingestor.cli import EXIT_TASK_DIED
from ingestor.config import parse_config
from ingestor.errors import MAX_DEATH_CHARS, TaskDied, describe
from ingestor.metrics import Metrics
from ingestor.run.app import Ingestor
from ingestor.run.flow import Flow
from ingestor.run.health import HealthServer
from ingestor.sinks.dead_letter import DeadLetterQueue
from ingestor.sinks.delivery import Delivery
from ingestor_tools.emulator import Emulator

GRACE_SECS = 2.0
DIES_AFTER_SECS = 4.0  # past Tansu's first join (half the 6 s session timeout): rows are flowing
CLOSE_SECS = 6.0  # leaving the group and closing the clients, after the grace period

# task name -> (class, method the task runs, error it dies with)
DEATHS: dict[str, tuple[type, str, BaseException]] = {
    "delivery": (Delivery, "run", RuntimeError("upload worker broke")),
    "dead-letter": (DeadLetterQueue, "run", OSError(5, "Input/output error")),
    "linger": (Flow, "_linger", RuntimeError("linger clock broke")),
    "committer": (Ingestor, "_commit_every", ValueError("committer broke")),
    "source": (AIOKafkaConsumer, "getmany", IllegalStateError("consumer broke")),  # the Kafka consumer
}


def dies_after(original: Callable[..., Awaitable[Any]] | None, error: BaseException, at: float) -> Any:
    """`original`, working for real until monotonic time `at`, then raising `error` (at once, from then on)."""

    async def dying(*args: Any, **kwargs: Any) -> Any:
        remaining = at - time.monotonic()
        if remaining > 0:
            try:
                async with asyncio.timeout(remaining):
                    if original is None:
                        await asyncio.Event().wait()
                    else:
                        return await original(*args, **kwargs)
            except TimeoutError:
                pass
        raise error

    return dying


class Probed:
    """What `/healthz` and `/readyz` answered just before the health server closed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.answers: dict[str, tuple[int, str]] = {}
        stop = HealthServer.stop

        async def probing_stop(server: HealthServer) -> None:
            async with aiohttp.ClientSession() as session:
                for path in ("/healthz", "/readyz"):
                    async with session.get(f"http://127.0.0.1:{server.port}{path}") as response:
                        self.answers[path] = (response.status, await response.text())
            await stop(server)

        monkeypatch.setattr(HealthServer, "stop", probing_stop)


def config_for(rig: KafkaRig | EventHubsRig, emulator: Emulator, tmp: Path) -> Any:
    return parse_config(
        {
            "source": rig.source(),
            "sink": emulator_sink(emulator, linger_secs=0.3, auth_retry_secs=0.3, max_backoff_secs=0.5),
            "dead_letter": {"path": str(tmp / "dead-letter")},
            "metrics": {"host": "127.0.0.1", "port": 0},
            "shutdown_grace_secs": GRACE_SECS,
        }
    )


async def run_until_death(
    ingestor: Ingestor, probed: Probed, caplog: pytest.LogCaptureFixture, name: str, error: BaseException
) -> None:
    """Run `ingestor` until the death planned at DIES_AFTER_SECS, and check everything it must do."""
    started = time.monotonic()
    within = DIES_AFTER_SECS + GRACE_SECS + CLOSE_SECS + 30
    with caplog.at_level(logging.ERROR, logger="ingestor.run.app"), pytest.raises(TaskDied) as raised:
        await asyncio.wait_for(ingestor.run(), within)
    ended = time.monotonic()
    expected = f"task {name} died: {describe(error)}"
    assert str(raised.value) == expected and raised.value.task == name
    assert probed.answers["/healthz"] == (503, expected + "\n")
    assert probed.answers["/readyz"] == (503, f"not ready: {expected}\n")
    deaths = [r for r in caplog.records if r.levelno == logging.ERROR and r.name == "ingestor.run.app"]
    assert [(r.getMessage(), getattr(r, "task", None)) for r in deaths] == [("internal task died; shutting down", name)]
    # Shut down within the grace period (plus leaving the group and closing the clients) after the death.
    assert ended - (started + DIES_AFTER_SECS) < GRACE_SECS + CLOSE_SECS, ended - started


@pytest.mark.parametrize("name", list(DEATHS))
async def test_a_dead_task_fails_liveness_and_ends_the_run(
    name: str,
    kafka_bootstrap: str,
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    rig = KafkaRig(kafka_bootstrap)
    messages, _ = traffic(seed=12, records=400)
    await rig.feed(messages)
    owner, method, error = DEATHS[name]
    at = time.monotonic() + DIES_AFTER_SECS
    monkeypatch.setattr(owner, method, dies_after(getattr(owner, method), error, at))
    probed = Probed(monkeypatch)
    metrics = Metrics()
    ingestor = Ingestor(config_for(rig, emulator, tmp_path), metrics=metrics)
    await run_until_death(ingestor, probed, caplog, name, error)
    assert metrics.total("ingestor_read_messages_total") == len(messages)  # it died at work


async def test_the_event_hubs_receive_loop_dying_fails_liveness_and_ends_the_run(
    azurite: Any, emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    rig = EventHubsRig(azurite)
    await rig.open()
    try:
        error = ConnectionLostError("the AMQP link was detached and could not be re-established")
        # The SDK's receive loop (`EventHubConsumerClient.receive_batch`) ends with an error after it started.
        at = time.monotonic() + DIES_AFTER_SECS
        monkeypatch.setattr(ReplayClient, "receive_batch", dies_after(None, error, at))
        probed = Probed(monkeypatch)
        ingestor = Ingestor(config_for(rig, emulator, tmp_path), metrics=Metrics(), source_factory=rig.factory())
        await run_until_death(ingestor, probed, caplog, "source", error)
    finally:
        await rig.close()


async def test_a_task_that_returns_is_a_death_too(
    kafka_bootstrap: str,
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    at = time.monotonic() + DIES_AFTER_SECS

    async def returns(_flow: Flow) -> None:
        await asyncio.sleep(at - time.monotonic())

    monkeypatch.setattr(Flow, "_linger", returns)
    probed = Probed(monkeypatch)
    ingestor = Ingestor(config_for(KafkaRig(kafka_bootstrap), emulator, tmp_path), metrics=Metrics())
    with caplog.at_level(logging.ERROR, logger="ingestor.run.app"), pytest.raises(TaskDied) as raised:
        await asyncio.wait_for(ingestor.run(), 60)
    assert str(raised.value) == "task linger died: it returned, but it must run until shutdown"
    assert probed.answers["/healthz"][0] == 503


def test_the_reason_is_one_bounded_line() -> None:
    long = TaskDied("delivery", RuntimeError("line one\nline two " + "x" * 5000))
    assert "\n" not in str(long)
    assert len(str(long)) <= len("task delivery died: ") + MAX_DEATH_CHARS
    assert str(long).startswith("task delivery died: RuntimeError: line one line two xxx")
    # A TaskGroup's group of one error is that error; aiokafka's messages already carry their type.
    group = ExceptionGroup("unhandled errors in a TaskGroup", [OSError(28, "No space left on device")])
    assert describe(group) == "OSError: [Errno 28] No space left on device"
    assert describe(IllegalStateError("x")) == "IllegalStateError: x"


# `ingestor run` (the real CLI: uvloop, signal handlers, exit code), with its delivery workers made to die once rows
# wait for them. Without workers nothing lands, so the drain lasts the whole grace period: /healthz is 503 meanwhile.
DYING_DELIVERY = """
import asyncio, sys
from ingestor.sinks.delivery import Delivery

async def dies(self):
    while not self.inflight_bytes:
        await asyncio.sleep(0.05)
    raise RuntimeError("upload worker broke")

Delivery.run = dies
from ingestor.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.emulator
@pytest.mark.process
def test_ingestor_run_exits_3_after_the_grace_period_when_a_task_dies(kafka_bootstrap: str, tmp_path: Path) -> None:
    grace = 4.0
    topic, group = unique_names()
    messages, _ = traffic(seed=13, records=300)
    produce(kafka_bootstrap, topic, messages, partitions=2)
    emulator = EmulatorProcess(tmp_path / "emulator")
    try:
        config = ingestor_config(tmp_path, kafka_bootstrap, emulator, topic=topic, group=group)
        config["shutdown_grace_secs"] = grace
        config_path = tmp_path / "ingestor.yaml"
        config_path.write_text(yaml.safe_dump(config))
        port = config["metrics"]["port"]
        with (tmp_path / "ingestor.log").open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-c", DYING_DELIVERY, "run", "--config", str(config_path)],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=tmp_path,
            )
            try:
                assert wait_for(lambda: http_get(port, "/healthz")[0] == 200, timeout=30, what="alive")
                _, body = wait_for(
                    lambda: (answer := http_get(port, "/healthz"))[0] == 503 and answer, timeout=60, what="503"
                )
                dead_at = time.monotonic()
                code = process.wait(timeout=grace + CLOSE_SECS + 30)
                took = time.monotonic() - dead_at
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        log = (tmp_path / "ingestor.log").read_text()
        assert code == EXIT_TASK_DIED == 3, log[-3000:]
        assert body == "task delivery died: RuntimeError: upload worker broke\n"
        assert grace - 1 < took < grace + CLOSE_SECS, (took, log[-3000:])
        errors = [line for line in log.splitlines() if '"level":"ERROR"' in line]
        assert len(errors) == 1 and '"task":"delivery"' in errors[0], log[-3000:]
        assert '"grace period ended with rows still in flight' in log
    finally:
        emulator.stop()
