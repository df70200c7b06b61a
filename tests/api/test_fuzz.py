"""Fuzzing CreatePlugin: only INVALID_ARGUMENT (or success) comes back, nothing is written
for a rejected request, and the server stays healthy.

The split (10,200 cases, deterministic seeds, about a minute on two busy cores, most of
it hypothesis generating the cases):

- in process, 7,000 cases: hypothesis-generated requests through ``PluginServicer`` ->
  ``JobService`` -> validation -> a real SQLite store (no worker): adversarial and
  random strings, unicode tricks, control characters, huge and deeply nested Structs,
  odd numbers (NaN, infinities), mutated valid specs, descriptions, request fields;
- over the wire, 3,200 cases against a real server: 700 hypothesis-generated requests
  serialized and sent as bytes, and 2,500 malformed protobuf byte strings (random bytes,
  mutated and truncated valid messages, bad UTF-8, absurd lengths, nesting bombs) on a
  raw ``channel.unary_unary`` without serializers.

A request the validator accepts is a job; the tests count distinct jobs returned and
compare with what the database holds.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from auton8n.v1 import plugin_service_pb2 as pb
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.api.servicer import PluginServicer
from server.app import App
from server.auth.principal import Principal, Role
from server.domain.states import JobState
from server.errors import InvalidArgument
from server.events import EventHub
from server.generators.setup import build_describer, build_registry
from server.jobs import JobService
from server.metrics import Metrics
from server.store.engine import create_engine
from server.store.migrate import migrate
from server.store.repository import Store
from tests.conftest import load_spec, test_settings

T = TypeVar("T")
FUZZER = Principal("fuzz", Role.USER, "fuzzer")
CREATE = "/auton8n.v1.PluginService/CreatePlugin"


def fuzz(cases: int) -> settings:
    """Deterministic (CI-stable) seeds, no deadline, no example database on disk."""
    return settings(
        max_examples=cases,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


# -- strategies ----------------------------------------------------------------------

TRICKY = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\x07\x1b[31m",
    "\x7f",
    "\r\n",
    "\u202egnp.exe",  # right-to-left override
    "\u200b\u200c\u200d\ufeff",  # zero-width characters, BOM
    "\uff46\uff55\uff4c\uff4c",  # fullwidth letters
    "e\u0301\u0301\u0301",  # stacked combining marks
    "\U0001f600" * 50,
    "\u210c\U0001d522\U0001d529",  # fraktur homoglyphs
    "@elizaos/plugin-\u0430",  # Cyrillic a
    "@elizaos/plugin-time",
    "@elizaos/../../etc/passwd",
    "..\\..\\windows",
    "%2e%2e%2f",
    "$(curl x|sh)",
    "`id`",
    "; rm -rf / #",
    "' OR 1=1 --",
    "<script>alert(1)</script>",
    "{{7*7}}${7*7}",
    "${jndi:ldap://x/a}",
    "__proto__",
    "constructor",
    "NaN",
    "-0",
    "1e309",
    "A" * 5000,
    "word " * 2000,
    "getCurrentTime",
    "string",
]
_CHARS = st.characters(blacklist_categories=("Cs",))  # protobuf strings are UTF-8
texts = st.one_of(
    st.text(_CHARS, max_size=60),
    st.sampled_from(TRICKY),
    st.tuples(st.sampled_from(TRICKY), st.text(_CHARS, max_size=20)).map("".join),
)
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**53), 2**53),
    texts,
)
json_values = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(texts, children, max_size=4)
    ),
    max_leaves=10,
)


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": "string"}
    for _ in range(depth):
        value = {"inner": value}
    return value


structs = st.one_of(
    st.dictionaries(texts, json_values, max_size=4),
    st.integers(1, 30).map(_nested),  # ~32 is protobuf's own limit (see the wire bombs)
    st.integers(100, 800).map(lambda n: {f"k{i}": "string" for i in range(n)}),
    st.integers(1, 200).map(lambda n: {"list": [[["x"] * 3] * 3] * n}),
)
components = st.fixed_dictionaries(
    {"name": texts, "description": texts}, optional={"parameters": structs}
)


@st.composite
def specs(draw: st.DrawFn) -> pb.PluginSpec:
    spec = pb.PluginSpec(name=draw(texts), description=draw(texts), version=draw(texts))
    for component in draw(st.lists(components, max_size=3)):
        action = spec.actions.add(name=component["name"], description=component["description"])
        if "parameters" in component:
            action.parameters.update(component["parameters"])
    for component in draw(st.lists(components, max_size=2)):
        provider = spec.providers.add(name=component["name"], description=component["description"])
        if "parameters" in component:
            provider.data_structure.update(component["parameters"])
    for name, methods in draw(st.lists(st.tuples(texts, st.lists(texts, max_size=3)), max_size=2)):
        spec.services.add(name=name, description="a service", methods=methods)
    for name, value in draw(st.dictionaries(texts, texts, max_size=3)).items():
        spec.dependencies[name] = value
    for name in draw(st.lists(texts, max_size=3)):
        spec.environment_variables.add(name=name, required=draw(st.booleans()))
    return spec


def _valid_spec(name: str = "time") -> pb.PluginSpec:
    return json_format.ParseDict(load_spec(name), pb.PluginSpec())


@st.composite
def mutated_specs(draw: st.DrawFn) -> pb.PluginSpec:
    """A valid spec with one part replaced by something hostile (sometimes still valid)."""
    spec = _valid_spec(draw(st.sampled_from(["time", "weather", "shell", "astral"])))
    where = draw(st.sampled_from(["name", "description", "version", "action", "param", "dep"]))
    value = draw(texts)
    if where in ("name", "description", "version"):
        setattr(spec, where, value)
    elif where == "action" and spec.actions:
        spec.actions[0].name = value
    elif where == "param" and spec.actions:
        spec.actions[0].parameters.Clear()
        spec.actions[0].parameters.update(draw(structs))
    else:
        spec.dependencies[value] = draw(texts)
    return spec


@st.composite
def requests(draw: st.DrawFn) -> pb.CreatePluginRequest:
    request = pb.CreatePluginRequest(
        model=draw(st.one_of(st.just(""), st.just("template"), texts)),
        max_iterations=draw(st.one_of(st.just(0), st.integers(-(2**31), 2**31 - 1))),
        request_id=draw(st.one_of(st.just(""), texts)),
    )
    source = draw(st.sampled_from(["spec", "mutated", "description", "none"]))
    if source == "spec":
        request.spec.CopyFrom(draw(specs()))
    elif source == "mutated":
        request.spec.CopyFrom(draw(mutated_specs()))
    elif source == "description":
        request.description = draw(
            st.one_of(texts, st.just("a plugin that tells the current time in a city"))
        )
    return request


# -- harness ---------------------------------------------------------------------------


class LoopThread:
    """An event loop in a thread: hypothesis drives sync tests, the server is async."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.run(self.loop.shutdown_asyncgens())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class InProcess:
    """Servicer -> JobService -> validation -> SQLite store, without a worker."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.created: set[str] = set()
        self.cases = 0

    async def start(self) -> None:
        s = test_settings(self.folder)
        self.engine = create_engine(f"sqlite+aiosqlite:///{self.folder / 'fuzz.db'}")
        await migrate(self.engine)
        self.store = Store(self.engine)
        jobs = JobService(
            store=self.store,
            hub=EventHub(),
            generators=build_registry(s),
            settings=s,
            describe=build_describer(s),
            interrupt=lambda _job, _why: False,
            metrics=Metrics(process=False),
        )
        self.servicer = PluginServicer(jobs, identify=lambda: FUZZER)

    async def create(self, request: pb.CreatePluginRequest) -> None:
        self.cases += 1
        try:
            job = await self.servicer.CreatePlugin(request, None)
        except InvalidArgument as rejected:
            assert rejected.violations, rejected.message
            return
        self.created.add(job.id)

    async def stored(self) -> int:
        return await self.store.count_jobs(JobState.QUEUED)

    async def stop(self) -> None:
        await self.store.close()
        await self.engine.dispose()


class OnTheWire:
    """A real server; CreatePlugin called with raw bytes on a serializer-less stub."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.created: set[str] = set()
        self.cases = 0

    async def start(self) -> None:
        self.app = App(
            test_settings(
                self.folder,
                rate_limit_create_per_hour=0,
                rate_limit_requests_per_s=0,
                max_concurrent_jobs=1,
            )
        )
        await self.app.start()
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{self.app.port}")
        self.raw = self.channel.unary_unary(
            CREATE, request_serializer=None, response_deserializer=None
        )

    async def send(self, data: bytes) -> None:
        self.cases += 1
        try:
            reply = await self.raw(data, timeout=30)
        except grpc.aio.AioRpcError as error:
            code = error.code()
            too_big = len(data) > self.app.settings.max_request_bytes
            assert code == grpc.StatusCode.INVALID_ARGUMENT or (
                too_big and code == grpc.StatusCode.RESOURCE_EXHAUSTED
            ), (code, error.details(), data[:200])
            return
        job = pb.Job.FromString(reply)
        self.created.add(job.id)
        await self.app.jobs.cancel(job.id, tenant=None)  # keep the worker idle

    async def healthy(self) -> bool:
        reply = await health_pb2_grpc.HealthStub(self.channel).Check(
            health_pb2.HealthCheckRequest()
        )
        return reply.status == health_pb2.HealthCheckResponse.SERVING

    async def stored(self) -> int:
        jobs, _ = await self.app.jobs.list(tenant=None, state=None, page_size=500, page_token="")
        return len(jobs)

    async def stop(self) -> None:
        await self.channel.close()
        await self.app.stop(1.0)


@pytest.fixture(scope="module")
def loop_thread() -> Iterator[LoopThread]:
    runner = LoopThread()
    yield runner
    runner.close()


@pytest.fixture(scope="module")
def in_process(
    loop_thread: LoopThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcess]:
    harness = InProcess(tmp_path_factory.mktemp("fuzz-in-process"))
    loop_thread.run(harness.start())
    yield harness
    assert loop_thread.run(harness.stored()) == len(harness.created), "a rejected request wrote"
    loop_thread.run(harness.stop())


@pytest.fixture(scope="module")
def wire(loop_thread: LoopThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OnTheWire]:
    harness = OnTheWire(tmp_path_factory.mktemp("fuzz-wire"))
    loop_thread.run(harness.start())
    yield harness
    loop_thread.run(harness.stop())


# -- in process: 7,000 cases -----------------------------------------------------------


@fuzz(2000)
@given(request=requests())
def test_in_process_requests(
    loop_thread: LoopThread, in_process: InProcess, request: pb.CreatePluginRequest
) -> None:
    loop_thread.run(in_process.create(request))


@fuzz(1500)
@given(spec=specs())
def test_in_process_specs(
    loop_thread: LoopThread, in_process: InProcess, spec: pb.PluginSpec
) -> None:
    loop_thread.run(in_process.create(pb.CreatePluginRequest(spec=spec)))


@fuzz(3500)
@given(spec=mutated_specs(), model=st.sampled_from(["", "template"]))
def test_in_process_mutated_specs(
    loop_thread: LoopThread, in_process: InProcess, spec: pb.PluginSpec, model: str
) -> None:
    loop_thread.run(in_process.create(pb.CreatePluginRequest(spec=spec, model=model)))


def test_in_process_wrote_only_accepted_jobs(
    loop_thread: LoopThread, in_process: InProcess
) -> None:
    assert loop_thread.run(in_process.stored()) == len(in_process.created)


# -- on the wire: 3,200 cases ----------------------------------------------------------


def _ld(field: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _nesting_bomb(depth: int) -> bytes:
    """CreatePluginRequest.spec.actions[0].parameters nested ``depth`` Structs deep."""
    value = _ld(3, b"leaf")  # Value.string_value
    for _ in range(depth):
        entry = _ld(1, b"k") + _ld(2, value)  # Struct.fields map entry
        value = _ld(5, _ld(1, entry))  # Value.struct_value
    struct = _ld(1, _ld(1, b"k") + _ld(2, value))
    action = _ld(1, b"getTime") + _ld(2, b"gets it") + _ld(3, struct)
    return _ld(1, _ld(1, b"@elizaos/plugin-x") + _ld(4, action))


VALID = pb.CreatePluginRequest(spec=_valid_spec()).SerializeToString()


@st.composite
def malformed(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["random", "flip", "truncate", "append", "utf8", "length", "bomb"]))
    if kind == "random":
        return draw(st.binary(max_size=600))
    if kind == "flip":
        data = bytearray(VALID)
        for position in draw(st.lists(st.integers(0, len(data) - 1), min_size=1, max_size=8)):
            data[position] = draw(st.integers(0, 255))
        return bytes(data)
    if kind == "truncate":
        return VALID[: draw(st.integers(0, len(VALID) - 1))]
    if kind == "append":
        return VALID + draw(st.binary(min_size=1, max_size=64))
    if kind == "utf8":  # invalid UTF-8 in a string field (spec.name)
        return _ld(1, _ld(1, draw(st.sampled_from([b"\xc3\x28", b"\xff", b"\xed\xa0\x80"]))))
    if kind == "length":  # a length prefix far beyond the data
        return _varint(1 << 3 | 2) + _varint(draw(st.integers(100, 2**35))) + b"x"
    return _nesting_bomb(draw(st.integers(33, 300)))  # past protobuf's depth limit


@fuzz(700)
@given(request=requests())
def test_wire_requests(
    loop_thread: LoopThread, wire: OnTheWire, request: pb.CreatePluginRequest
) -> None:
    loop_thread.run(wire.send(request.SerializeToString()))


@fuzz(2500)
@given(data=malformed())
def test_wire_malformed_bytes(loop_thread: LoopThread, wire: OnTheWire, data: bytes) -> None:
    loop_thread.run(wire.send(data))


def test_wire_server_is_healthy_and_wrote_only_accepted_jobs(
    loop_thread: LoopThread, wire: OnTheWire
) -> None:
    assert loop_thread.run(wire.healthy())
    assert loop_thread.run(wire.stored()) == len(wire.created)
    before = len(wire.created)
    loop_thread.run(wire.send(VALID))  # a good request still works
    assert len(wire.created) == before + 1


def test_error_details_stay_small_enough_for_grpc_trailers() -> None:
    """Hundreds of violations echoing huge values still fit in the trailers."""
    from server.api.interceptors import MAX_DETAILS_BYTES, status_for
    from server.errors import FieldViolation

    violations = [FieldViolation("spec." + "f" * 1000, "\x00" * 10_000) for _ in range(500)]
    status = status_for(InvalidArgument("m" * 10_000, violations))
    assert status.ByteSize() <= MAX_DETAILS_BYTES + 500
    assert "more violations not shown" in str(status.details[1].value)
