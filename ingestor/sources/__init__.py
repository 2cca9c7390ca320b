"""Where messages come from: Kafka (`kafka`, aiokafka; also Event Hubs' Kafka endpoint) and Event Hubs over AMQP
(`eventhubs`, azure-eventhub with the blob checkpoint store). Each yields Message batches, commits the positions it is
given and calls back when partitions go and come (`base`); `factory.make_source` picks one for a configuration.

May import: the shared leaves (config, models, commit, errors) and `connect` (identity, kafka, reachability).
"""
