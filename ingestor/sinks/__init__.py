"""Where rows go. The Logs Ingestion API in its parts: `request` builds a request from a closed batch (gzip with
`compress`, measure, trim and give back, the ratio the batcher learns), `service` sends it and carries out what the
retry policy (`retry`) decides, `events` counts and logs each outcome and holds the sink's health; `delivery` runs
the queue and the workers over them, and `logs_ingestion` is the client. And the dead letter: `dead_letter` (the
entry and the queue that settles its tickets once a store made it durable) and its stores, `dead_letter_file` and
`dead_letter_kafka`.

May import: the shared leaves (models, commit, config, errors, metrics, bounds) and `connect`; not `pipeline`: the
batchers come in through `request.Batches`.
"""
