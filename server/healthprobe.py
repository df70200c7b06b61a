"""``python -m server.healthprobe``: exit 0 when the gRPC health service says SERVING.

For container HEALTHCHECKs and scripts (Kubernetes uses its native gRPC probe instead).
Service names (server/health_monitor.py): ``auton8n.v1.PluginService.liveness`` (the
image's HEALTHCHECK: the process answers), ``auton8n.v1.PluginService.readiness`` or
``""`` (the default: database, sandbox and toolchain usable).
Asks ``grpc.health.v1.Health/Check`` on the server's own listen address (the
``AUTON8N_LISTEN_ADDRESS`` it was started with, a wildcard host replaced by loopback).
Exit codes: 0 SERVING, 1 anything else (NOT_SERVING, unknown service, unreachable).
Plaintext only: a server with TLS needs a TLS-aware probe.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

__all__ = ["main", "probe", "probe_target"]

_DEFAULT_LISTEN = "127.0.0.1:50051"
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "[::]": "[::1]", "::": "[::1]"}


def probe_target(listen_address: str) -> str:
    """Where a local probe should connect to reach a server listening on this address."""
    host, _, port = listen_address.rpartition(":")
    return f"{_WILDCARDS.get(host, host)}:{port}"


def probe(target: str, service: str = "", timeout_s: float = 3.0) -> tuple[bool, str]:
    """(serving, what was seen) for one Check call; never raises for RPC failures."""
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
        except grpc.RpcError as exc:
            return False, f"{exc.code().name}: {exc.details()}"
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    return response.status == health_pb2.HealthCheckResponse.SERVING, name


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(prog="python -m server.healthprobe", description=__doc__)
    parser.add_argument(
        "--address",
        default=probe_target(env.get("AUTON8N_LISTEN_ADDRESS") or _DEFAULT_LISTEN),
        help="host:port to probe (default: from AUTON8N_LISTEN_ADDRESS)",
    )
    parser.add_argument("--service", default="", help='health service name (default: "")')
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    args = parser.parse_args(argv)
    serving, seen = probe(args.address, args.service, args.timeout)
    print(f"{args.address} {args.service or '(server)'}: {seen}")
    return 0 if serving else 1


if __name__ == "__main__":
    sys.exit(main())
