"""TLS for the gRPC port: server credentials from PEM files named by the settings."""

from __future__ import annotations

from pathlib import Path

import grpc

from server.settings import Settings, SettingsError

__all__ = ["server_credentials"]


def _read(path: str, setting: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise SettingsError(f"AUTON8N_{setting}: cannot read {path}: {exc.strerror}") from exc


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """None for plaintext; else TLS, and mutual TLS with a client CA.

    Reads the files (blocking; called once at start). With ``tls_client_ca_file``,
    client certificates are verified against it: required (a client without a valid
    certificate fails the handshake) when ``tls_require_client_cert``, else optional.
    Raises SettingsError naming the setting when a file cannot be read.
    """
    if not settings.tls_cert_file:
        return None
    key = _read(settings.tls_key_file, "TLS_KEY_FILE")
    chain = _read(settings.tls_cert_file, "TLS_CERT_FILE")
    client_ca = (
        _read(settings.tls_client_ca_file, "TLS_CLIENT_CA_FILE")
        if settings.tls_client_ca_file
        else None
    )
    return grpc.ssl_server_credentials(
        [(key, chain)],
        root_certificates=client_ca,
        require_client_auth=settings.tls_require_client_cert,
    )
