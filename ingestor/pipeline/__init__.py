"""Between source and sink: decode, validate and shape each record (`decode`, on the typed row codecs of `codec`),
then batch rows by destination (`batch`). Pure and in-process: no I/O, no network.

May import: the shared leaves (models, commit, config, retention, tables, bounds, errors).
"""
