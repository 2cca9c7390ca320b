"""Defender XDR advanced-hunting stream ingestor: Event Hubs / Kafka -> Logs Ingestion API."""

__version__ = "0.1.0"
