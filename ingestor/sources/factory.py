"""`make_source`: the source of a configuration, Kafka (aiokafka) or Event Hubs over AMQP (azure-eventhub)."""

from __future__ import annotations

from ingestor.config import EventHubsSourceConfig, KafkaSourceConfig
from ingestor.connect.identity import SourceCredentials
from ingestor.connect.reachability import Unreachable
from ingestor.sources.base import PartitionCallback, Source
from ingestor.sources.eventhubs import EventHubsSource
from ingestor.sources.kafka import KafkaSource


def make_source(
    config: KafkaSourceConfig | EventHubsSourceConfig,
    *,
    on_revoked: PartitionCallback,
    on_assigned: PartitionCallback,
    credentials: SourceCredentials,
    unreachable: Unreachable,
) -> Source:
    """The source for `config.type`, calling back before partitions go and after they come; its Entra ID
    credentials report to `credentials`, the parts its start cannot reach yet to `unreachable`."""
    if isinstance(config, KafkaSourceConfig):
        return KafkaSource(
            config, on_revoked=on_revoked, on_assigned=on_assigned, credentials=credentials, unreachable=unreachable
        )
    return EventHubsSource(
        config, on_revoked=on_revoked, on_assigned=on_assigned, credentials=credentials, unreachable=unreachable
    )
