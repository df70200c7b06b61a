"""``PluginClient``: the async Python client of ``auton8n.v1.PluginService``."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

import grpc
import grpc.aio
from auton8n.v1 import plugin_service_pb2 as pb
from auton8n.v1 import plugin_service_pb2_grpc as pb_grpc
from google.protobuf import empty_pb2, json_format

from client._archive import Artifact, safe_unpack, verified_artifact
from client._errors import (
    ClientError,
    EventGapError,
    IntegrityError,
    RateLimitedError,
    error_from_rpc,
)

__all__ = ["DEFAULT_TARGET", "PluginClient", "Retry", "TlsOptions", "spec_from_dict"]

DEFAULT_TARGET = "localhost:50051"

_T = TypeVar("_T")
_T_co = TypeVar("_T_co", covariant=True)
_Metadata = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class TlsOptions:
    """TLS for the channel; with ``client_cert`` and ``client_key`` also mutual TLS.

    Attributes:
        root_ca: PEM file of the CA that signed the server certificate; None uses the
            system's roots.
        client_cert: PEM certificate chain presented to the server (mTLS).
        client_key: PEM private key of ``client_cert``.
        server_name: the name to verify the server certificate against, when it differs
            from the target's host (``grpc.ssl_target_name_override``).
    """

    root_ca: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    server_name: str | None = None

    def __post_init__(self) -> None:
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("TlsOptions: client_cert and client_key go together")

    def credentials(self) -> Any:
        """Reads the files (blocking) and returns ``grpc.ChannelCredentials``."""
        return grpc.ssl_channel_credentials(
            root_certificates=self.root_ca.read_bytes() if self.root_ca else None,
            private_key=self.client_key.read_bytes() if self.client_key else None,
            certificate_chain=self.client_cert.read_bytes() if self.client_cert else None,
        )


@dataclass(frozen=True, slots=True)
class Retry:
    """How the client retries transient failures (UNAVAILABLE: restart, drain, network).

    Delays grow exponentially from ``initial`` by ``multiplier`` up to ``maximum``, each
    jittered to between half and all of its nominal value; retrying stops once
    ``timeout`` has passed since the first failure of an outage. While the client has
    never reached the server, ``connect_timeout`` is the budget instead: a server that
    is not there is reported within seconds, one that restarts is waited for.

    RESOURCE_EXHAUSTED (rate limited) is retried after the server's RetryInfo delay when
    that is at most ``rate_limit_wait`` (a read bucket refills in milliseconds); a longer
    wait (the hourly job quota) is raised as RateLimitedError at once.
    """

    initial: timedelta = timedelta(milliseconds=200)
    maximum: timedelta = timedelta(seconds=10)
    multiplier: float = 2.0
    timeout: timedelta = timedelta(seconds=60)
    connect_timeout: timedelta = timedelta(seconds=5)
    rate_limit_wait: timedelta = timedelta(seconds=5)

    def delays(self, rand: Callable[[], float] = random.random) -> Iterator[float]:
        """The endless sequence of jittered delays, in seconds (pure but for ``rand``)."""
        nominal = self.initial.total_seconds()
        while True:
            yield nominal * (0.5 + rand() / 2)
            nominal = min(nominal * self.multiplier, self.maximum.total_seconds())

    @staticmethod
    def is_retryable(error: ClientError) -> bool:
        """Whether a failed call may be repeated: the server was not reachable or ready."""
        return bool(error.code == grpc.StatusCode.UNAVAILABLE)


class _Backoff:
    """One outage: the delays so far and the deadline of the retry budget."""

    def __init__(self, retry: Retry, *, reached: bool) -> None:
        self._delays = retry.delays()
        budget = retry.timeout if reached else min(retry.timeout, retry.connect_timeout)
        self._deadline = time.monotonic() + budget.total_seconds()

    def next_delay(self) -> float | None:
        """Seconds to wait before the next try, or None when the budget is spent."""
        remaining = self._deadline - time.monotonic()
        return min(next(self._delays), remaining) if remaining > 0 else None

    def wait(self, seconds: float) -> float | None:
        """``seconds`` (the server's own delay) plus up to 10% jitter, or None when that
        would pass the budget's deadline."""
        delay = seconds * (1 + random.random() / 10)
        return delay if time.monotonic() + delay <= self._deadline else None


class _StreamCall(Protocol[_T_co]):
    def __aiter__(self) -> AsyncIterator[_T_co]: ...
    def cancel(self) -> bool: ...


class _Stub(Protocol):
    """The typed shape of ``PluginServiceStub`` on an aio channel."""

    def CreatePlugin(self, r: pb.CreatePluginRequest, **kw: Any) -> Awaitable[pb.Job]: ...
    def GetJob(self, r: pb.GetJobRequest, **kw: Any) -> Awaitable[pb.Job]: ...
    def ListJobs(self, r: pb.ListJobsRequest, **kw: Any) -> Awaitable[pb.ListJobsResponse]: ...
    def CancelJob(self, r: pb.CancelJobRequest, **kw: Any) -> Awaitable[pb.Job]: ...
    def DeleteJob(self, r: pb.DeleteJobRequest, **kw: Any) -> Awaitable[empty_pb2.Empty]: ...
    def WatchJob(self, r: pb.WatchJobRequest, **kw: Any) -> _StreamCall[pb.JobEvent]: ...
    def DownloadArtifact(
        self, r: pb.DownloadArtifactRequest, **kw: Any
    ) -> _StreamCall[pb.ArtifactChunk]: ...


def spec_from_dict(spec: Mapping[str, Any]) -> pb.PluginSpec:
    """Parses the reference JSON format (protobuf's JSON mapping, lowerCamelCase keys).

    Raises:
        ValueError: unknown fields or wrong types.
    """
    if not isinstance(spec, Mapping):
        raise ValueError(f"invalid plugin spec: a JSON object is needed, not {type(spec).__name__}")
    try:
        return json_format.ParseDict(dict(spec), pb.PluginSpec())
    except json_format.ParseError as error:
        raise ValueError(f"invalid plugin spec: {error}") from error


class PluginClient:
    """Async client of the plugin service on one ``grpc.aio`` channel.

    Use it as an async context manager (or call ``close()``). Every call carries
    ``authorization: Bearer <token>`` when a token is given. Reads and ``create`` (made
    idempotent by its request_id) are retried on UNAVAILABLE per ``retry``; ``cancel``
    and ``delete`` are not, since a lost reply would turn a repeat into an error.
    ``watch`` reconnects on UNAVAILABLE from where it left off.

    Raises (every method): ClientError subclasses, see ``client._errors``.
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        token: str | None = None,
        tls: TlsOptions | None = None,
        retry: Retry | None = None,
        call_timeout: timedelta | None = timedelta(seconds=60),
        on_retry: Callable[[ClientError, float], None] | None = None,
    ) -> None:
        """Opens the channel lazily (no I/O but reading the TLS files).

        Args:
            target: ``host:port`` of the server.
            token: the API token sent as a bearer token.
            tls: TLS / mTLS settings; None means a plaintext channel.
            retry: the retry policy for UNAVAILABLE; default ``Retry()`` (60 s once the
                server has been reached, 5 s before).
            call_timeout: deadline of each unary call (not of streams); None for none.
            on_retry: called with the error and the delay in seconds before each retry
                or reconnect (e.g. to tell a user what is going on).
        """
        if tls is None:
            self._channel = grpc.aio.insecure_channel(target)
        else:
            options = []
            if tls.server_name:
                options.append(("grpc.ssl_target_name_override", tls.server_name))
            self._channel = grpc.aio.secure_channel(target, tls.credentials(), options=options)
        self._stub: _Stub = pb_grpc.PluginServiceStub(self._channel)
        self._metadata: _Metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._retry = retry or Retry()
        self._timeout = call_timeout.total_seconds() if call_timeout is not None else None
        self._on_retry = on_retry
        # Whether the server has ever been reached: decides the retry budget.
        self._reached = False

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the channel, cancelling calls in flight. Idempotent."""
        await self._channel.close()

    async def create(
        self,
        spec: Mapping[str, Any] | pb.PluginSpec | None = None,
        *,
        description: str | None = None,
        model: str = "",
        max_iterations: int = 0,
        request_id: str | None = None,
    ) -> pb.Job:
        """Creates a job from a spec (message or reference JSON dict) or a description.

        Args:
            spec: the plugin specification; exactly one of spec and description.
            description: a plain-English description the server derives a spec from.
            model: generator/model ("template", a Claude model id, "openai:<model>");
                "" for the server's default.
            max_iterations: the repair-loop budget; 0 for the server's default.
            request_id: idempotency key; a uuid4 when None. The same key is used for the
                client's own retries, so a retried create never makes two jobs.

        Returns: the job, QUEUED (or the original job for a repeated request_id).
        Raises: ValueError for a bad dict spec or not exactly one source;
            InvalidArgumentError when the server rejects the request.
        """
        if (spec is None) == (description is None):
            raise ValueError("create: give exactly one of spec and description")
        request = pb.CreatePluginRequest(
            model=model,
            max_iterations=max_iterations,
            request_id=request_id or str(uuid.uuid4()),
        )
        if isinstance(spec, pb.PluginSpec):
            request.spec.CopyFrom(spec)
        elif spec is not None:
            request.spec.CopyFrom(spec_from_dict(spec))
        else:
            request.description = description or ""
        return await self._unary(self._stub.CreatePlugin, request)

    async def get(self, job_id: str) -> pb.Job:
        """Returns the job. Raises NotFoundError for unknown ids."""
        return await self._unary(self._stub.GetJob, pb.GetJobRequest(job_id=job_id))

    async def list(
        self,
        state: pb.JobState.ValueType | None = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> pb.ListJobsResponse:
        """Returns one page of jobs, newest first (page_size 0 = the server's default)."""
        request = pb.ListJobsRequest(
            state=state or pb.JOB_STATE_UNSPECIFIED, page_size=page_size, page_token=page_token
        )
        return await self._unary(self._stub.ListJobs, request)

    async def list_all(
        self, state: pb.JobState.ValueType | None = None, *, page_size: int = 0
    ) -> AsyncGenerator[pb.Job, None]:
        """Yields every job, newest first, fetching pages as they are consumed."""
        token = ""
        while True:
            page = await self.list(state, page_size, token)
            for job in page.jobs:
                yield job
            token = page.next_page_token
            if not token:
                return

    async def cancel(self, job_id: str) -> pb.Job:
        """Cancels a QUEUED or RUNNING job; FailedPreconditionError if it has finished."""
        request = pb.CancelJobRequest(job_id=job_id)
        return await self._unary(self._stub.CancelJob, request, retry=False)

    async def delete(self, job_id: str) -> None:
        """Deletes a finished job with its events and artifact."""
        request = pb.DeleteJobRequest(job_id=job_id)
        await self._unary(self._stub.DeleteJob, request, retry=False)

    async def watch(self, job_id: str, after_seq: int = 0) -> AsyncGenerator[pb.JobEvent, None]:
        """Yields the job's events until the stream ends after the terminal event.

        Every message is yielded: the snapshot and heartbeats (seq 0) and each log event
        with seq > after_seq exactly once and in order. When the stream fails with
        UNAVAILABLE (server restart, drain, network) the client reconnects with the last
        seq it yielded, with jittered backoff, until ``retry.timeout`` passes without a
        message; a reconnect starts with a fresh snapshot.

        Raises:
            EventGapError: a seq was skipped (a server bug; nothing can recover it).
            UnavailableError: the retry budget was spent.
            ClientError: any other failure, at once.
        """
        last = after_seq
        backoff: _Backoff | None = None
        while True:
            call = self._stub.WatchJob(
                pb.WatchJobRequest(job_id=job_id, after_seq=last), metadata=self._metadata
            )
            try:
                async for event in call:
                    self._reached = True
                    if not event.HasField("snapshot"):
                        backoff = None  # the server is back for real, not just accepting
                    if event.seq > 0:
                        if event.seq <= last:
                            continue  # a duplicate after a reconnect
                        if event.seq != last + 1:
                            raise EventGapError(job_id, last, event.seq)
                        last = event.seq
                    yield event
                return
            except grpc.aio.AioRpcError as rpc_error:
                backoff = await self._recover(rpc_error, backoff)
            finally:
                call.cancel()

    async def download(self, job_id: str) -> Artifact:
        """Downloads the job's archive and verifies its size and sha256.

        Restarts from the beginning on UNAVAILABLE (per ``retry``).

        Raises: IntegrityError on a size or checksum mismatch; NotFoundError,
            FailedPreconditionError as the server decides.
        """
        return await self._with_retry(lambda: self._download_once(job_id))

    async def download_to(self, job_id: str, directory: Path) -> Path:
        """Downloads, verifies and safely unpacks the archive into ``directory``.

        Returns: the plugin folder (``directory/<top-level folder of the archive>``).
        Raises: as ``download``; UnsafeArchiveError for absolute paths, ``..``, links or
            devices; FileExistsError when the plugin folder is already there.
        """
        artifact = await self.download(job_id)
        return await asyncio.to_thread(safe_unpack, artifact.data, directory)

    async def _download_once(self, job_id: str) -> Artifact:
        call = self._stub.DownloadArtifact(
            pb.DownloadArtifactRequest(job_id=job_id), metadata=self._metadata
        )
        data = bytearray()
        sha256, total_size = "", 0
        try:
            async for chunk in call:
                data += chunk.data
                sha256, total_size = chunk.sha256, chunk.total_size
                if len(data) > total_size:
                    raise IntegrityError(
                        f"archive exceeds the announced {total_size} bytes", reason="SIZE_MISMATCH"
                    )
        finally:
            call.cancel()
        return verified_artifact(bytes(data), sha256=sha256, total_size=total_size)

    async def _unary(
        self, method: Callable[..., Awaitable[_T]], request: Any, *, retry: bool = True
    ) -> _T:
        return await self._with_retry(
            lambda: method(request, metadata=self._metadata, timeout=self._timeout), retry=retry
        )

    async def _with_retry(self, attempt: Callable[[], Awaitable[_T]], *, retry: bool = True) -> _T:
        backoff: _Backoff | None = None
        while True:
            try:
                result = await attempt()
            except grpc.aio.AioRpcError as rpc_error:
                backoff = await self._recover(rpc_error, backoff, retry=retry)
            else:
                self._reached = True
                return result

    async def _recover(
        self, rpc_error: grpc.aio.AioRpcError, backoff: _Backoff | None, *, retry: bool = True
    ) -> _Backoff:
        """Sleeps before the next try of a retryable failure; otherwise raises it converted."""
        error = error_from_rpc(rpc_error)
        if self._channel.get_state() == grpc.ChannelConnectivity.READY:
            self._reached = True  # the server itself answered (e.g. UNAVAILABLE: draining)
        backoff = backoff or _Backoff(self._retry, reached=self._reached)
        delay = None
        if retry and Retry.is_retryable(error):
            delay = backoff.next_delay()
        elif retry and isinstance(error, RateLimitedError) and error.retry_after is not None:
            if error.retry_after <= self._retry.rate_limit_wait:
                delay = backoff.wait(error.retry_after.total_seconds())
        if delay is None:
            raise error from rpc_error
        if self._on_retry is not None:
            self._on_retry(error, delay)
        await asyncio.sleep(delay)
        return backoff
