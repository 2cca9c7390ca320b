"""Where messages come from. Every source yields Message batches and commits positions it is given; the
application consumes a source through `app.Source` and hears about partitions through `PartitionCallback`."""

from collections.abc import Awaitable, Callable

from ingestor.models import Partition

# Called by a source before partitions go (the application lands and commits their rows) and after they come.
PartitionCallback = Callable[[set[Partition]], Awaitable[None]]
