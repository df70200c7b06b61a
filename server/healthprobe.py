"""``python -m server.healthprobe``: exit 0 when the server says SERVING.

For container HEALTHCHECKs and scripts (Kubernetes uses its native probes instead).
Service names (server/health_monitor.py): ``auton8n.v1.PluginService.liveness`` (the
image's HEALTHCHECK: the process answers), ``auton8n.v1.PluginService.readiness`` or
``""`` (the default: database, sandbox and toolchain usable).

Plaintext gRPC port: asks ``grpc.health.v1.Health/Check`` on the server's own listen
address (the ``AUTON8N_LISTEN_ADDRESS`` it was started with, a wildcard host replaced
by loopback). With TLS on the gRPC port (``AUTON8N_TLS_CERT_FILE`` set; the probe holds
no client certificate for mutual TLS, nor a CA for the server's) it asks the same
health over HTTP instead: ``/livez`` or ``/healthz`` on ``AUTON8N_METRICS_ADDRESS``,
which report the gRPC health services' states. ``--address`` / ``--http`` pick one.
Exit codes: 0 SERVING, 1 anything else (NOT_SERVING, unknown service, unreachable).
"""

from __future__ import annotations

import argparse
import http.client
import os
import sys
from collections.abc import Mapping, Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

__all__ = ["http_path", "main", "probe", "probe_http", "probe_target"]

_DEFAULT_LISTEN = "127.0.0.1:50051"
_DEFAULT_METRICS = "127.0.0.1:9464"
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "[::]": "[::1]", "::": "[::1]"}
_SERVICE = "auton8n.v1.PluginService"
# The HTTP endpoints answer for these health names only (server/metrics_http.py).
_HTTP_PATHS = {
    f"{_SERVICE}.liveness": "/livez",
    f"{_SERVICE}.readiness": "/healthz",
    _SERVICE: "/healthz",
    "": "/healthz",
}


def probe_target(listen_address: str) -> str:
    """Where a local probe should connect to reach a server listening on this address."""
    host, _, port = listen_address.rpartition(":")
    return f"{_WILDCARDS.get(host, host)}:{port}"


def http_path(service: str) -> str | None:
    """The HTTP endpoint reporting this health service, or None when there is none."""
    return _HTTP_PATHS.get(service)


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


def probe_http(target: str, service: str = "", timeout_s: float = 3.0) -> tuple[bool, str]:
    """(serving, what was seen) for one GET of the service's HTTP health endpoint."""
    path = http_path(service)
    if path is None:
        return False, f"no HTTP health endpoint for service {service!r}"
    host, _, port = target.rpartition(":")
    connection = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=timeout_s)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read(256).decode(errors="replace").strip()
    except (OSError, http.client.HTTPException) as exc:
        return False, f"GET {path}: {exc}"
    finally:
        connection.close()
    return response.status == 200, f"GET {path}: {response.status} {body}"


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(prog="python -m server.healthprobe", description=__doc__)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--address", help="gRPC host:port (default: from AUTON8N_LISTEN_ADDRESS)")
    where.add_argument("--http", help="metrics host:port (default: from AUTON8N_METRICS_ADDRESS)")
    parser.add_argument("--service", default="", help='health service name (default: "")')
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    args = parser.parse_args(argv)
    if args.http is None and args.address is None and env.get("AUTON8N_TLS_CERT_FILE"):
        args.http = probe_target(env.get("AUTON8N_METRICS_ADDRESS") or _DEFAULT_METRICS)
    if args.http is not None:
        target, (serving, seen) = args.http, probe_http(args.http, args.service, args.timeout)
    else:
        target = args.address or probe_target(env.get("AUTON8N_LISTEN_ADDRESS") or _DEFAULT_LISTEN)
        serving, seen = probe(target, args.service, args.timeout)
    print(f"{target} {args.service or '(server)'}: {seen}")
    return 0 if serving else 1


if __name__ == "__main__":
    sys.exit(main())
