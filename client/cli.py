"""The ``auton8n`` command line: run the server, create and follow jobs, fetch plugins.

Exit codes (stable; scripts may rely on them):

     0  success (create --watch / watch: the job SUCCEEDED)
     1  the job ended FAILED
     2  usage error or bad input file
     3  the job was CANCELLED
     4  not found
     5  server unreachable or unavailable
     6  invalid argument rejected by the server (field violations are printed)
     7  authentication or permission error
     8  rate limited (the retry-after is printed)
    10  any other error
   130  interrupted (Ctrl-C)

Errors are one line on stderr, never a traceback. ``--json`` prints one JSON document
per line on stdout (protobuf's JSON mapping of the job, or of each event).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import enum
import json
import os
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
from auton8n.v1 import plugin_service_pb2 as pb
from rich.console import Console

from client._admin import ADMIN_COMMANDS, add_admin_commands, run_admin
from client._archive import safe_unpack
from client._client import DEFAULT_TARGET, PluginClient, Retry, TlsOptions, spec_from_dict
from client._errors import (
    AuthError,
    ClientError,
    InvalidArgumentError,
    NotFoundError,
    RateLimitedError,
    UnavailableError,
)
from client._usage import UsageError
from client._views import JobView, ProgressView, state_name

__all__ = ["Exit", "build_parser", "main", "run"]


class Exit(enum.IntEnum):
    """Process exit codes; see the module docstring."""

    OK = 0
    JOB_FAILED = 1
    USAGE = 2
    JOB_CANCELLED = 3
    NOT_FOUND = 4
    UNAVAILABLE = 5
    INVALID_ARGUMENT = 6
    PERMISSION = 7
    RATE_LIMITED = 8
    ERROR = 10
    INTERRUPTED = 130


# The exit-code table of the module docstring, shown by --help.
_EPILOG = "exit codes:\n" + __doc__.split("may rely on them):\n\n")[1].split("\n\n")[0]
_STATES = {pb.JobState.Name(v).removeprefix("JOB_STATE_").lower(): v for v in pb.JobState.values()}
# How long to retry a server never reached in this run; then exit 5.
_CONNECT_TIMEOUT = timedelta(seconds=5)
_STATE_EXIT = {
    pb.JOB_STATE_SUCCEEDED: Exit.OK,
    pb.JOB_STATE_FAILED: Exit.JOB_FAILED,
    pb.JOB_STATE_CANCELLED: Exit.JOB_CANCELLED,
}
_ERROR_EXIT: dict[type[ClientError], Exit] = {
    NotFoundError: Exit.NOT_FOUND,
    UnavailableError: Exit.UNAVAILABLE,
    InvalidArgumentError: Exit.INVALID_ARGUMENT,
    AuthError: Exit.PERMISSION,
    RateLimitedError: Exit.RATE_LIMITED,
}


def main() -> None:
    """Console-script entry point: runs the command line and exits with its code."""
    sys.exit(run())


def run(argv: Sequence[str] | None = None, *, environ: Mapping[str, str] | None = None) -> int:
    """Runs one command and returns its exit code (see ``Exit``); never raises.

    Args:
        argv: the arguments without the program name; None for ``sys.argv[1:]``.
        environ: the environment to read ``AUTON8N_*`` from; None for ``os.environ``.
    """
    env = os.environ if environ is None else environ
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # argparse has printed the help (0) or a usage error (2)
        return exit_.code if isinstance(exit_.code, int) else Exit.USAGE
    try:
        if args.command == "serve":
            return _serve(args, env)
        if args.command in ADMIN_COMMANDS:
            return run_admin(args, env)
        _prepare(args)
        return asyncio.run(_run_client(args, env))
    except KeyboardInterrupt:
        _fail("interrupted")
        return Exit.INTERRUPTED
    except ClientError as error:
        _fail(_describe(error, args, env))
        return _exit_for(error)
    except (UsageError, FileExistsError) as error:
        _fail(str(error))
        return Exit.USAGE
    except Exception as error:  # the promise is one line, not a traceback
        _fail(f"{type(error).__name__}: {error}" if not isinstance(error, OSError) else str(error))
        return Exit.ERROR


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (``--help`` shows the exit codes)."""
    parser = argparse.ArgumentParser(
        prog="auton8n",
        description="Generate ElizaOS plugins with the auton8n service.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common_options(parser, defaults=True)
    # The same options after the command; SUPPRESS keeps the command's parser from
    # overwriting a value given before the command with a default.
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    _add_common_options(common, defaults=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help_, description=help_, parents=[common])

    serve = commands.add_parser(
        "serve",
        help="run the server",
        description="Run the server; flags override AUTON8N_* variables.",
    )
    serve.add_argument("--listen", metavar="ADDR", help="gRPC address (AUTON8N_LISTEN_ADDRESS)")
    serve.add_argument("--data-dir", metavar="DIR", help="data folder (AUTON8N_DATA_DIR)")
    serve.add_argument("--database-url", metavar="URL", help="database (AUTON8N_DATABASE_URL)")
    serve.add_argument(
        "--metrics-address", metavar="ADDR", help="/metrics (AUTON8N_METRICS_ADDRESS)"
    )
    serve.add_argument("--model", metavar="M", help="default model (AUTON8N_MODEL)")
    serve.add_argument("--log-level", metavar="L", help="log level")
    add_admin_commands(commands)

    create = command("create", "create a plugin job")
    source = create.add_mutually_exclusive_group(required=True)
    source.add_argument("--spec", type=Path, metavar="FILE", help="spec JSON file ('-' = stdin)")
    source.add_argument("--description", metavar="TEXT", help="plain-English description")
    create.add_argument(
        "--model", default="", metavar="M", help="generator/model (default: the server's)"
    )
    create.add_argument("--max-iterations", type=int, default=0, metavar="N")
    create.add_argument("--request-id", metavar="ID", help="idempotency key (default: random)")
    create.add_argument("--watch", action="store_true", help="follow the job until it ends")
    create.add_argument(
        "--download",
        type=Path,
        metavar="DIR",
        help="unpack the plugin into DIR after success (implies --watch)",
    )
    create.add_argument("-v", "--verbose", action="store_true", help="show log lines")

    command("get", "show a job").add_argument("job_id", metavar="ID")
    watch = command("watch", "follow a job until it ends")
    watch.add_argument("job_id", metavar="ID")
    watch.add_argument("--after-seq", type=int, default=0, metavar="N", help="skip events up to N")
    watch.add_argument("-v", "--verbose", action="store_true", help="show log lines")
    list_ = command("list", "list jobs, newest first")
    list_.add_argument(
        "--state", type=str.lower, choices=[s for s in _STATES if s != "unspecified"]
    )
    list_.add_argument(
        "--limit", type=int, default=20, metavar="N", help="at most N jobs (default 20)"
    )
    command("cancel", "cancel a queued or running job").add_argument("job_id", metavar="ID")
    command("delete", "delete a finished job").add_argument("job_id", metavar="ID")
    download = command("download", "download, verify and unpack a plugin")
    download.add_argument("job_id", metavar="ID")
    download.add_argument("-o", "--output", type=Path, required=True, metavar="DIR")
    return parser


def _add_common_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    group = parser.add_argument_group("connection and output")

    def option(*flags: str, default: Any = None, **kwargs: Any) -> None:
        group.add_argument(*flags, default=default if defaults else argparse.SUPPRESS, **kwargs)

    option("--server", help=f"host:port (env AUTON8N_SERVER; {DEFAULT_TARGET})")
    option("--token", help="API token (env AUTON8N_TOKEN)")
    option("--tls", action="store_true", default=False, help="TLS with the system's CAs")
    option("--tls-ca", type=Path, metavar="FILE", help="CA certificate (implies --tls)")
    option("--tls-cert", type=Path, metavar="FILE", help="client certificate (mTLS)")
    option("--tls-key", type=Path, metavar="FILE", help="client key (mTLS)")
    option("--tls-server-name", metavar="NAME", help="name to verify the server cert for")
    retry_help = (
        "how long to wait for a server that went away (default 60; 5 at most if never reached)"
    )
    option("--retry-timeout", type=float, default=60.0, metavar="SECONDS", help=retry_help)
    option("--json", action="store_true", default=False, help="JSON lines on stdout")


def _prepare(args: argparse.Namespace) -> None:
    """Reads and checks local input before connecting (bad input exits 2, not 5).

    Adds ``args.tls_options`` and, for create, ``args.spec_message``.
    """
    for flag, path in (
        ("--tls-ca", args.tls_ca),
        ("--tls-cert", args.tls_cert),
        ("--tls-key", args.tls_key),
    ):
        if path is not None and not path.is_file():
            raise UsageError(f"{flag}: no such file: {path}")
    args.tls_options = None
    if args.tls or args.tls_ca or args.tls_cert or args.tls_key or args.tls_server_name:
        try:
            args.tls_options = TlsOptions(
                root_ca=args.tls_ca,
                client_cert=args.tls_cert,
                client_key=args.tls_key,
                server_name=args.tls_server_name,
            )
        except ValueError as error:
            raise UsageError(str(error)) from error
    if args.command == "list" and args.limit < 1:
        raise UsageError("--limit must be at least 1")
    args.spec_message = None
    if args.command == "create" and args.spec is not None:
        try:
            text = sys.stdin.read() if str(args.spec) == "-" else args.spec.read_text()
            args.spec_message = spec_from_dict(json.loads(text))
        except (OSError, UnicodeDecodeError) as error:
            raise UsageError(f"cannot read spec {args.spec}: {error}") from error
        except ValueError as error:  # JSON syntax, or fields that do not fit PluginSpec
            raise UsageError(f"bad spec {args.spec}: {error}") from error


def _connect(args: argparse.Namespace, env: Mapping[str, str]) -> PluginClient:
    retry_timeout = timedelta(seconds=max(0.0, args.retry_timeout))
    return PluginClient(
        _target(args, env),
        token=args.token or env.get("AUTON8N_TOKEN") or None,
        tls=args.tls_options,
        retry=Retry(timeout=retry_timeout, connect_timeout=min(retry_timeout, _CONNECT_TIMEOUT)),
        on_retry=_retry_notice if sys.stderr.isatty() else None,
    )


def _target(args: argparse.Namespace, env: Mapping[str, str]) -> str:
    return str(args.server or env.get("AUTON8N_SERVER") or DEFAULT_TARGET)


async def _run_client(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    # A pipe has no width: do not wrap tables at rich's default of 80 columns there.
    width = None if sys.stdout.isatty() else 160
    view = JobView(Console(highlight=False, width=width), as_json=args.json)
    async with _connect(args, env) as client:
        return await _COMMANDS[args.command](args, client, view)


async def _create(args: argparse.Namespace, client: PluginClient, view: JobView) -> int:
    job = await client.create(
        args.spec_message,
        description=args.description,
        model=args.model,
        max_iterations=args.max_iterations,
        request_id=args.request_id,
    )
    view.created(job)
    if not (args.watch or args.download):
        return Exit.OK
    code = await _follow(client, job.id, 0, view, verbose=args.verbose)
    if code == Exit.OK and args.download is not None:
        await _download_to(client, job.id, args.download, view)
    return code


async def _watch(args: argparse.Namespace, client: PluginClient, view: JobView) -> int:
    return await _follow(client, args.job_id, args.after_seq, view, verbose=args.verbose)


async def _follow(
    client: PluginClient, job_id: str, after_seq: int, view: JobView, *, verbose: bool
) -> int:
    """Shows the job's events until it ends; the exit code follows its final state."""
    job: pb.Job | None = None
    with ProgressView(view, after_seq=after_seq, verbose=verbose) as progress:
        async for event in client.watch(job_id, after_seq):
            progress.update(event)
            job = event.job
    if job is None or job.state not in _STATE_EXIT:
        job = await client.get(job_id)  # the stream ended without a terminal event
    if not view.as_json:
        view.job(job)
    if job.state not in _STATE_EXIT:
        raise ClientError(
            grpc.StatusCode.UNKNOWN,
            f"the stream ended while job {job_id} is {state_name(job.state)}",
        )
    return _STATE_EXIT[job.state]


async def _get(args: argparse.Namespace, client: PluginClient, view: JobView) -> int:
    view.job(await client.get(args.job_id))
    return Exit.OK


async def _list(args: argparse.Namespace, client: PluginClient, view: JobView) -> int:
    jobs: list[pb.Job] = []
    state = _STATES[args.state] if args.state else None
    async with contextlib.aclosing(client.list_all(state, page_size=min(args.limit, 500))) as all_:
        async for job in all_:
            jobs.append(job)
            if len(jobs) >= args.limit:
                break
    view.jobs(jobs)
    return Exit.OK


async def _cancel(args: argparse.Namespace, client: PluginClient, view: JobView) -> int:
    job = await client.cancel(args.job_id)
    if view.as_json:
        view.message(job)
    else:
        view.line(f"{job.id} {state_name(job.state)}")
    return Exit.OK


async def _delete(args: argparse.Namespace, client: PluginClient, view: JobView) -> int:
    await client.delete(args.job_id)
    view.result(f"deleted {args.job_id}", id=args.job_id, deleted=True)
    return Exit.OK


async def _download(args: argparse.Namespace, client: PluginClient, view: JobView) -> int:
    await _download_to(client, args.job_id, args.output, view)
    return Exit.OK


async def _download_to(client: PluginClient, job_id: str, directory: Path, view: JobView) -> None:
    artifact = await client.download(job_id)
    folder = await asyncio.to_thread(safe_unpack, artifact.data, directory)
    view.result(f"{folder}\nsha256 {artifact.sha256}", path=str(folder), sha256=artifact.sha256)


_COMMANDS: dict[str, Callable[[argparse.Namespace, PluginClient, JobView], Awaitable[int]]] = {
    "create": _create,
    "get": _get,
    "watch": _watch,
    "list": _list,
    "cancel": _cancel,
    "delete": _delete,
    "download": _download,
}


def _serve(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Builds the server settings (flags override AUTON8N_* variables) and runs it."""
    flags = {
        "listen_address": args.listen,
        "data_dir": args.data_dir,
        "database_url": args.database_url,
        "metrics_address": args.metrics_address,
        "model": args.model,
        "log_level": args.log_level,
    }
    overrides = {name: value for name, value in flags.items() if value is not None}
    # Imported here so the client side works without the server's dependencies.
    from server.app import run as run_server
    from server.settings import Settings

    try:
        settings = Settings.from_env(env, overrides)
    except ValueError as error:  # SettingsError names the variable or flag
        raise UsageError(f"invalid configuration: {error}") from error
    asyncio.run(run_server(settings))
    return Exit.OK


def _exit_for(error: ClientError) -> Exit:
    for kind, code in _ERROR_EXIT.items():
        if isinstance(error, kind):
            return code
    return Exit.UNAVAILABLE if error.code == grpc.StatusCode.DEADLINE_EXCEEDED else Exit.ERROR


def _describe(error: ClientError, args: argparse.Namespace, env: Mapping[str, str]) -> str:
    text = str(error)
    if isinstance(error, UnavailableError) or error.code == grpc.StatusCode.DEADLINE_EXCEEDED:
        text = f"server {_target(args, env)} unavailable: {text}"
    elif error.code == grpc.StatusCode.UNAUTHENTICATED:
        text += " (set --token or AUTON8N_TOKEN)"
    return text


def _retry_notice(error: ClientError, delay: float) -> None:
    _fail(f"{error.code.name}, retrying in {delay:.1f}s")


def _fail(message: str) -> None:
    """One line on stderr."""
    sys.stderr.write(f"auton8n: {' '.join(message.split())}\n")
    sys.stderr.flush()
