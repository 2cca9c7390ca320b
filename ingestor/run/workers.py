"""`ingestor run --workers N`: N worker processes in one consumer group, supervised by this one.

Each worker is a full `ingestor run` with its own event loop and partitions (a process per core, past the GIL),
serving metrics on `metrics.port + index`. SIGTERM/SIGINT go to every worker; if one exits on its own, the
others are stopped too and its exit code is returned (1 if that was 0), so the pod restarts as a whole.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

log = logging.getLogger(__name__)
POLL_SECS = 0.2


def supervise(config_path: Path | None, workers: int, metrics_port: int) -> int:
    children: list[subprocess.Popen[bytes]] = []
    for index in range(workers):
        env = dict(os.environ)
        env["INGESTOR_METRICS__PORT"] = str(metrics_port + index if metrics_port else 0)
        command = [sys.executable, "-m", "ingestor", "run"]
        if config_path is not None:
            command += ["--config", str(config_path)]
        children.append(subprocess.Popen(command, env=env))
    log.info("workers started", extra={"workers": workers, "pids": [c.pid for c in children]})

    stopping = False

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    failed = 0
    while any(child.poll() is None for child in children):
        for child in children:
            code = child.poll()
            if code is not None and not stopping:
                log.error("a worker exited; stopping the others", extra={"pid": child.pid, "exit_code": code})
                failed = code or 1
                forward(signal.SIGTERM, None)
        time.sleep(POLL_SECS)
    codes = [child.returncode for child in children]
    return failed or next((c for c in codes if c), 0)
