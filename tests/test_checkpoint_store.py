"""The Event Hubs blob checkpoint store (`azure-eventhub-checkpointstoreblob-aio`) against a real Azure Storage blob
service: Azurite, started as a process by the `azurite` fixture.

Covers what the AMQP source relies on: claiming partition ownership with ETag `If-Match`, losing a claim made with a
stale ETag, ownership transfer, checkpoints per partition, and the `last_modified_time` the SDK's load balancer uses
to treat ownership as expired. Every test works in its own container.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.eventhub.extensions.checkpointstoreblobaio import BlobCheckpointStore

# azure-storage-blob is not installed: the checkpoint store vendors its own copy of it, which is the client the store
# itself uses. Only container creation goes through it here.
from azure.storage.blob.aio import BlobServiceClient
from realparts import AzuriteProcess

NAMESPACE = "test.servicebus.windows.net"
EVENTHUB = "defender"
CONSUMER_GROUP = "$Default"
PARTITIONS = ["0", "1", "2", "3"]


def ownership(partition: str, owner: str, etag: str | None = None) -> dict[str, Any]:
    """An ownership request as the SDK's load balancer builds it (no etag: a partition never owned before)."""
    request: dict[str, Any] = {
        "fully_qualified_namespace": NAMESPACE,
        "eventhub_name": EVENTHUB,
        "consumer_group": CONSUMER_GROUP,
        "partition_id": partition,
        "owner_id": owner,
    }
    if etag is not None:
        request["etag"] = etag
    return request


def checkpoint(
    partition: str, offset: str, sequence_number: int, consumer_group: str = CONSUMER_GROUP
) -> dict[str, Any]:
    return {
        "fully_qualified_namespace": NAMESPACE,
        "eventhub_name": EVENTHUB,
        "consumer_group": consumer_group,
        "partition_id": partition,
        "offset": offset,
        "sequence_number": sequence_number,
    }


def by_partition(items: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    items = list(items)
    result = {item["partition_id"]: item for item in items}
    assert len(result) == len(items), f"duplicate partitions in {items}"
    return result


def etag(item: dict[str, Any]) -> str:
    """The ETag without quotes: claims return the header form ("0x…"), listings the XML form (0x…)."""
    value = item["etag"]
    assert isinstance(value, str) and value, item
    return value.strip('"')


def expired(item: dict[str, Any], timeout: float, now: float) -> bool:
    """The SDK's rule (`aio/_eventprocessor/_ownership_manager.py`, `_balance_ownership`): an ownership is released
    when `last_modified_time + ownership_timeout < now`, or when its owner_id is empty."""
    return bool(item["last_modified_time"] + timeout < now or not item["owner_id"])


async def owned(store: BlobCheckpointStore) -> dict[str, dict[str, Any]]:
    return by_partition(await store.list_ownership(NAMESPACE, EVENTHUB, CONSUMER_GROUP))


@pytest.fixture
async def container(azurite: AzuriteProcess) -> str:
    """A fresh, existing container."""
    name = f"ckpt-{uuid.uuid4().hex[:16]}"
    async with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        await service.create_container(name)
    return name


@pytest.fixture
async def store(azurite: AzuriteProcess, container: str) -> AsyncIterator[BlobCheckpointStore]:
    async with BlobCheckpointStore.from_connection_string(azurite.connection_string, container) as opened:
        yield opened


@pytest.fixture
async def other_store(azurite: AzuriteProcess, container: str) -> AsyncIterator[BlobCheckpointStore]:
    """A second client on the same container, as a second ingestor process would have."""
    async with BlobCheckpointStore.from_connection_string(azurite.connection_string, container) as opened:
        yield opened


async def test_claim_ownership_of_four_partitions_then_list_them(store: BlobCheckpointStore) -> None:
    assert await owned(store) == {}

    claimed = by_partition(await store.claim_ownership([ownership(p, "owner-a") for p in PARTITIONS]))

    assert sorted(claimed) == PARTITIONS
    for item in claimed.values():
        assert item["owner_id"] == "owner-a"
        assert isinstance(item["last_modified_time"], float)
        etag(item)
    listed = await owned(store)
    assert sorted(listed) == PARTITIONS
    for partition, item in listed.items():
        assert item["owner_id"] == "owner-a"
        assert item["fully_qualified_namespace"] == NAMESPACE
        assert item["eventhub_name"] == EVENTHUB
        assert item["consumer_group"] == CONSUMER_GROUP
        assert etag(item) == etag(claimed[partition])
        assert item["last_modified_time"] == claimed[partition]["last_modified_time"]
    assert len({etag(item) for item in listed.values()}) == len(PARTITIONS)
    # Scoped by namespace, event hub and consumer group.
    assert list(await store.list_ownership(NAMESPACE, "other-hub", CONSUMER_GROUP)) == []
    assert list(await store.list_ownership(NAMESPACE, EVENTHUB, "other-group")) == []
    assert list(await store.list_checkpoints(NAMESPACE, EVENTHUB, CONSUMER_GROUP)) == []


async def test_claim_with_stale_etag_fails_and_with_current_etag_transfers(
    store: BlobCheckpointStore, other_store: BlobCheckpointStore
) -> None:
    first = by_partition(await store.claim_ownership([ownership(p, "owner-a") for p in PARTITIONS]))
    # A renews 0, 1 and 2 (its balancing round): the etags B saw before are stale for those three.
    renewed = by_partition(await store.claim_ownership([first[p] for p in ("0", "1", "2")]))
    assert sorted(renewed) == ["0", "1", "2"]
    assert all(etag(renewed[p]) != etag(first[p]) for p in renewed)

    # B with the stale etags: refused for 0, 1, 2 (excluded from the result), granted for 3, whose etag is current.
    taken = by_partition(
        await other_store.claim_ownership([ownership(p, "owner-b", etag(first[p])) for p in PARTITIONS])
    )
    assert sorted(taken) == ["3"]
    assert taken["3"]["owner_id"] == "owner-b"
    listed = await owned(other_store)
    assert {p: o["owner_id"] for p, o in listed.items()} == {
        "0": "owner-a",
        "1": "owner-a",
        "2": "owner-a",
        "3": "owner-b",
    }
    assert all(etag(listed[p]) == etag(renewed[p]) for p in ("0", "1", "2"))

    # B with the current etags from a fresh listing takes 0 over as well.
    transferred = by_partition(await other_store.claim_ownership([{**listed["0"], "owner_id": "owner-b"}]))
    assert sorted(transferred) == ["0"]
    assert (await owned(store))["0"]["owner_id"] == "owner-b"
    # A's next renewal of 0 carries the etag B replaced: that is how A learns it lost the partition.
    assert list(await store.claim_ownership([renewed["0"]])) == []
    assert (await owned(store))["0"]["owner_id"] == "owner-b"
    # A still renews what it kept.
    assert sorted(by_partition(await store.claim_ownership([renewed["1"]]))) == ["1"]


async def test_update_checkpoint_then_list_per_partition_and_overwrite(store: BlobCheckpointStore) -> None:
    for index, partition in enumerate(PARTITIONS):
        await store.update_checkpoint(checkpoint(partition, str(1000 * index), 10 * index))
    await store.update_checkpoint(checkpoint("0", "999999", 999, consumer_group="other-group"))
    await store.claim_ownership([ownership("0", "owner-a")])

    listed = by_partition(await store.list_checkpoints(NAMESPACE, EVENTHUB, CONSUMER_GROUP))
    assert {p: (c["offset"], c["sequence_number"]) for p, c in listed.items()} == {
        "0": ("0", 0),
        "1": ("1000", 10),
        "2": ("2000", 20),
        "3": ("3000", 30),
    }
    assert all(c["consumer_group"] == CONSUMER_GROUP and c["eventhub_name"] == EVENTHUB for c in listed.values())

    await store.update_checkpoint(checkpoint("1", "1500", 15))
    await store.update_checkpoint(checkpoint("1", "1700", 17))

    listed = by_partition(await store.list_checkpoints(NAMESPACE, EVENTHUB, CONSUMER_GROUP))
    assert {p: (c["offset"], c["sequence_number"]) for p, c in listed.items()} == {
        "0": ("0", 0),
        "1": ("1700", 17),
        "2": ("2000", 20),
        "3": ("3000", 30),
    }
    other = by_partition(await store.list_checkpoints(NAMESPACE, EVENTHUB, "other-group"))
    assert {p: (c["offset"], c["sequence_number"]) for p, c in other.items()} == {"0": ("999999", 999)}
    # Checkpoints and ownership are separate blobs: updating a checkpoint does not touch ownership.
    assert sorted(await owned(store)) == ["0"]


async def test_unrenewed_ownership_keeps_its_old_last_modified_time_while_a_renewed_one_advances(
    store: BlobCheckpointStore, other_store: BlobCheckpointStore
) -> None:
    claimed = by_partition(await store.claim_ownership([ownership(p, "owner-a") for p in ("0", "1")]))
    await asyncio.sleep(2.1)  # Last-Modified has one-second resolution
    renewed = by_partition(await store.claim_ownership([claimed["1"]]))
    assert sorted(renewed) == ["1"]

    listed = await owned(other_store)
    stale, live = listed["0"], listed["1"]
    assert stale["last_modified_time"] == claimed["0"]["last_modified_time"]
    assert etag(stale) == etag(claimed["0"])
    assert live["last_modified_time"] == renewed["1"]["last_modified_time"]
    assert live["last_modified_time"] > claimed["1"]["last_modified_time"]
    assert live["last_modified_time"] > stale["last_modified_time"]

    # With the SDK's rule, at the time of the renewal and a timeout shorter than the gap, 0 is expired and 1 is not.
    now = live["last_modified_time"]
    timeout = (live["last_modified_time"] - stale["last_modified_time"]) / 2
    assert expired(stale, timeout, now)
    assert not expired(live, timeout, now)
    # Expiry is decided by the clients, not the store: B's balancer claims the expired one with its listed etag.
    assert sorted(by_partition(await other_store.claim_ownership([{**stale, "owner_id": "owner-b"}]))) == ["0"]
    assert {p: o["owner_id"] for p, o in (await owned(store)).items()} == {"0": "owner-b", "1": "owner-a"}


async def test_claim_in_a_missing_container_is_reported_as_claimed_without_an_etag(
    azurite: AzuriteProcess,
) -> None:
    """SDK behaviour worth knowing: `claim_ownership` keeps an ownership on errors other than a lost race, so a missing
    container looks like a successful claim (without etag or last_modified_time); listing and checkpointing raise."""
    missing = f"missing-{uuid.uuid4().hex[:16]}"
    async with BlobCheckpointStore.from_connection_string(azurite.connection_string, missing) as store:
        claimed = list(await store.claim_ownership([ownership("0", "owner-a")]))
        assert [c["partition_id"] for c in claimed] == ["0"]
        assert "etag" not in claimed[0]
        assert "last_modified_time" not in claimed[0]
        with pytest.raises(ResourceNotFoundError):
            await store.list_ownership(NAMESPACE, EVENTHUB, CONSUMER_GROUP)
        with pytest.raises(ResourceNotFoundError):
            await store.update_checkpoint(checkpoint("0", "1", 1))


async def test_azurite_grants_an_etagless_claim_of_an_owned_partition(
    store: BlobCheckpointStore, other_store: BlobCheckpointStore
) -> None:
    """Emulator difference: a claim without etag is sent with `If-None-Match: *`, which Azure documents as failing
    when the blob exists. Azurite (conditions/WriteConditionalHeadersValidator) lets it through, so on Azurite two
    processes racing for a never-owned partition can both be told they won. Tests must not rely on that race."""
    await store.claim_ownership([ownership("0", "owner-a")])

    taken = list(await other_store.claim_ownership([ownership("0", "owner-b")]))

    assert [t["owner_id"] for t in taken] == ["owner-b"]
    assert (await owned(store))["0"]["owner_id"] == "owner-b"
