"""The runtime of the commands that move rows: `ingestor run` (`app.Ingestor`: a source feeding the `flow.Flow`,
commits, `health` endpoints, `workers` for several processes) and `ingestor replay` (`replay`, which feeds the same
Flow from dead-letter files).

May import: everything below it (sources, pipeline, sinks, connect, the shared leaves); nothing imports it but `cli`.
"""
