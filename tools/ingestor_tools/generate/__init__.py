"""Synthetic Defender Streaming API traffic: seeded records for every table of the schemas (the ten Device tables,
alerts, mail, identity, cloud apps, URL clicks) in named mixes, message bodies, file and Kafka writers, and the
`ingestor generate` command (`run(argv)`), with a manifest of what was made.
"""

from ingestor_tools.generate.cli import run
from ingestor_tools.generate.manifest import (
    ENVELOPES,
    INVALID_KINDS,
    MAX_MESSAGE_BYTES,
    Envelope,
    InvalidKind,
    Manifest,
)
from ingestor_tools.generate.sinks import ensure_topic, produce_kafka, write_file
from ingestor_tools.generate.traffic import DEFAULT_MIX, DEVICE_MIX, MIXES, PARENTS, TrafficGenerator

__all__ = [
    "DEFAULT_MIX",
    "DEVICE_MIX",
    "ENVELOPES",
    "INVALID_KINDS",
    "MAX_MESSAGE_BYTES",
    "MIXES",
    "PARENTS",
    "Envelope",
    "InvalidKind",
    "Manifest",
    "TrafficGenerator",
    "ensure_topic",
    "produce_kafka",
    "run",
    "write_file",
]
