"""Reaching the outside: Entra ID credentials and what they refuse (`identity`), Kafka connection settings for
Event Hubs and plain Kafka (`kafka`), and waiting, with capped jittered back-off, for a part not reachable yet
(`reachability`). Shared by the sources, the sinks and the runtime.

May import: the shared leaves (config, errors, metrics, bounds).
"""
