"""TLS and mutual TLS end to end, with certificates generated for the test run."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from auton8n.v1 import plugin_service_pb2 as pb
from auton8n.v1 import plugin_service_pb2_grpc as pb_grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from client import ClientError, PluginClient, Retry, TlsOptions
from client.cli import run as cli_run
from server import healthprobe
from server.app import App
from server.settings import Settings, SettingsError
from tests.conftest import AppFactory

FAST = Retry(timeout=datetime.timedelta(seconds=1), connect_timeout=datetime.timedelta(seconds=1))


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_cert: Path  # a client certificate from another CA
    rogue_key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer or (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if server:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(
    folder: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> None:
    (folder / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca_key, rogue_ca_key = _key(), _key()
    ca = _cert("auton8n test CA", ca_key, None, ca=True)
    rogue_ca = _cert("rogue CA", rogue_ca_key, None, ca=True)
    _write(folder, "ca", ca, ca_key)
    for name, issuer, server in (
        ("server", (ca.subject, ca_key), True),
        ("client", (ca.subject, ca_key), False),
        ("rogue", (rogue_ca.subject, rogue_ca_key), False),
    ):
        key = _key()
        _write(folder, name, _cert(f"{name}.test", key, issuer, server=server), key)
    return Pki(
        ca=folder / "ca.pem",
        server_cert=folder / "server.pem",
        server_key=folder / "server.key",
        client_cert=folder / "client.pem",
        client_key=folder / "client.key",
        rogue_cert=folder / "rogue.pem",
        rogue_key=folder / "rogue.key",
    )


async def _list(app: App, tls: TlsOptions | None) -> int:
    async with PluginClient(f"localhost:{app.port}", tls=tls, retry=FAST) as client:
        return len((await client.list()).jobs)


async def test_tls_end_to_end_and_plaintext_is_refused(make_app: AppFactory, pki: Pki) -> None:
    app = await make_app(tls_cert_file=str(pki.server_cert), tls_key_file=str(pki.server_key))
    assert await _list(app, TlsOptions(root_ca=pki.ca)) == 0
    # By IP address too (the certificate names 127.0.0.1).
    async with PluginClient(
        f"127.0.0.1:{app.port}", tls=TlsOptions(root_ca=pki.ca), retry=FAST
    ) as client:
        await client.list()
    with pytest.raises(ClientError) as caught:
        await _list(app, None)
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    # A client that does not trust the CA refuses the server.
    with pytest.raises(ClientError) as caught:
        await _list(app, TlsOptions(root_ca=pki.rogue_cert))
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE


async def test_the_container_probe_reads_health_over_http_when_grpc_has_tls(
    make_app: AppFactory, pki: Pki
) -> None:
    """The image's HEALTHCHECK holds no client certificate: with TLS on (mutual TLS here)
    it asks /livez and /healthz on the metrics port, which report the gRPC health."""
    app = await make_app(
        tls_cert_file=str(pki.server_cert),
        tls_key_file=str(pki.server_key),
        tls_client_ca_file=str(pki.ca),
        tls_require_client_cert=True,
    )
    env = {
        "AUTON8N_LISTEN_ADDRESS": f"0.0.0.0:{app.port}",
        "AUTON8N_METRICS_ADDRESS": f"0.0.0.0:{app.metrics_port}",
        "AUTON8N_TLS_CERT_FILE": str(pki.server_cert),
    }

    async def probe(*args: str, environ: dict[str, str] = env) -> int:
        return await asyncio.to_thread(healthprobe.main, list(args), environ)

    liveness = ("--service", "auton8n.v1.PluginService.liveness")
    assert await probe(*liveness) == 0
    assert await probe() == 0  # readiness
    assert await probe("--service", "auton8n.v1.PluginService.readiness") == 0
    assert await probe("--service", "auton8n.v1.PluginService.model") == 1  # no endpoint for it
    # What the probe did before: plaintext gRPC against the TLS port never says SERVING.
    assert await probe("--address", f"127.0.0.1:{app.port}", "--timeout", "1", *liveness) == 1
    plain = {k: v for k, v in env.items() if k != "AUTON8N_TLS_CERT_FILE"}
    assert await probe("--timeout", "1", *liveness, environ=plain) == 1
    await app.stop(grace_s=1.0)
    assert await probe("--timeout", "1", *liveness) == 1  # unreachable


async def test_mutual_tls_needs_a_client_certificate_from_the_ca(
    make_app: AppFactory, pki: Pki
) -> None:
    app = await make_app(
        tls_cert_file=str(pki.server_cert),
        tls_key_file=str(pki.server_key),
        tls_client_ca_file=str(pki.ca),
        tls_require_client_cert=True,
    )
    good = TlsOptions(root_ca=pki.ca, client_cert=pki.client_cert, client_key=pki.client_key)
    assert await _list(app, good) == 0
    for refused in (
        TlsOptions(root_ca=pki.ca),  # no client certificate
        TlsOptions(root_ca=pki.ca, client_cert=pki.rogue_cert, client_key=pki.rogue_key),
    ):
        with pytest.raises(ClientError) as caught:
            await _list(app, refused)
        assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    # The raw channel sees the handshake fail, never a served call.
    creds = grpc.ssl_channel_credentials(root_certificates=pki.ca.read_bytes())
    async with grpc.aio.secure_channel(f"localhost:{app.port}", creds) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raw:
            await pb_grpc.PluginServiceStub(channel).ListJobs(pb.ListJobsRequest(), timeout=5)
    assert raw.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_the_command_line_speaks_mutual_tls(
    make_app: AppFactory, pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    app = await make_app(
        tls_cert_file=str(pki.server_cert),
        tls_key_file=str(pki.server_key),
        tls_client_ca_file=str(pki.ca),
        tls_require_client_cert=True,
    )
    base = ["--server", f"localhost:{app.port}", "--retry-timeout", "1", "--json"]
    tls = ["--tls-ca", str(pki.ca), "--tls-cert", str(pki.client_cert)]
    tls += ["--tls-key", str(pki.client_key)]
    assert await asyncio.to_thread(cli_run, [*base, *tls, "list"], environ={}) == 0
    plain = await asyncio.to_thread(cli_run, [*base, "--tls-ca", str(pki.ca), "list"], environ={})
    assert plain == 5  # unavailable: the handshake fails without a client certificate
    capsys.readouterr()


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"tls_cert_file": "/x.pem"}, "TLS_KEY_FILE"),
        ({"tls_client_ca_file": "/ca.pem"}, "TLS_CLIENT_CA_FILE"),
        ({"tls_require_client_cert": True}, "TLS_REQUIRE_CLIENT_CERT"),
    ],
)
def test_tls_settings_are_checked(overrides: dict[str, object], needle: str) -> None:
    with pytest.raises(SettingsError, match=needle):
        Settings.from_env({}, overrides)


async def test_an_unreadable_certificate_names_the_setting(tmp_path: Path) -> None:
    from tests.conftest import test_settings

    settings = test_settings(tmp_path, tls_cert_file="/nope.pem", tls_key_file="/nope.key")
    app = App(settings)
    with pytest.raises(SettingsError, match="TLS_KEY_FILE"):
        await app.start()
    await app.stop(0)
