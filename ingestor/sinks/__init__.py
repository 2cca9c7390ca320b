"""Where rows go: the Logs Ingestion API (`logs_ingestion`, the client; `delivery`, which gzips with `compress` and
follows the retry policy of `retry`) and the dead letter (`dead_letter`).

May import: the shared leaves and `connect` (credentials, the Kafka dead letter's connection); for now also
`pipeline.batch` (delivery puts trimmed rows back into their batcher).
"""
