"""Typed settings from ``AUTON8N_*`` environment variables (plus command-line overrides).

Nothing here reads the environment at import time: ``Settings.from_env`` is called once
by the composition root (or the CLI) with the mapping to read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_CLAUDE_MODEL", "Settings", "SettingsError", "env_name"]

# A current Claude model (not in the SDK's deprecation table); opaque to the service.
DEFAULT_CLAUDE_MODEL = "claude-sonnet-5-5"
ENV_PREFIX = "AUTON8N_"


def env_name(setting: str) -> str:
    """The environment variable of a Settings field: ``AUTON8N_<FIELD>``, except the
    model providers' keys and URLs, which keep their SDKs' standard names."""
    if setting.startswith(("anthropic_", "openai_")):
        return setting.upper()
    return ENV_PREFIX + setting.upper()


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    """Every knob of the server. Field name ``x_y`` is read from ``AUTON8N_X_Y``."""

    data_dir: Path = Path("./data")
    # Empty means SQLite (WAL) at <data_dir>/auton8n.db.
    database_url: str = ""
    # PostgreSQL: seconds the server waits at start for a database that does not answer
    # yet (it often starts after us), retrying; 0 fails at once. SQLite never waits.
    database_wait_s: float = 60.0
    listen_address: str = "127.0.0.1:50051"
    metrics_address: str = "127.0.0.1:9464"
    # Default generator/model for jobs that name none: "template" (offline) or a model id.
    # Empty: a Claude model when ANTHROPIC_API_KEY is set, else "template".
    model: str = ""
    log_level: str = "INFO"
    log_format: str = "auto"  # "json", "text" or "auto" (text on a terminal)

    # Jobs.
    max_concurrent_jobs: int = 2  # pipelines running at once in this replica
    default_max_iterations: int = 5
    max_iterations_limit: int = 20
    job_timeout_s: float = 1800.0
    command_timeout_s: float = 300.0
    output_limit_bytes: int = 1_000_000
    # Leases: a worker renews its job's lease every heartbeat; an expired lease lets
    # another worker (or this one after a restart) take the job over.
    lease_timeout_s: float = 30.0
    heartbeat_interval_s: float = 5.0
    max_attempts: int = 3
    claim_poll_interval_s: float = 1.0

    # Retention: finished jobs (their events, iterations and artifact) are purged this
    # many days after they ended; 0 keeps them forever. Checked every interval.
    retention_days: float = 30.0
    retention_interval_s: float = 3600.0

    # Readiness: how often the database (and toolchain) are checked, and how long one
    # check may take before it counts as failed.
    health_check_interval_s: float = 5.0
    health_check_timeout_s: float = 2.0

    # Streams and shutdown.
    watch_heartbeat_s: float = 10.0
    watch_poll_interval_s: float = 1.0
    shutdown_grace_s: float = 10.0

    # Sandbox: generated code runs under bubblewrap; without it the worker refuses to
    # run jobs unless this is true (loud warning).
    allow_unsandboxed: bool = False
    # Shared npm toolchain cache; empty means <data_dir>/toolchain.
    toolchain_dir: str = ""
    # Memory per sandboxed process (RLIMIT_DATA: heap, buffers, native); an optional V8
    # heap cap on top (0: none; it slows every Node start, see SandboxLimits).
    sandbox_max_memory_bytes: int = 1024 * 1024 * 1024
    sandbox_node_heap_mb: int = 0
    sandbox_max_processes: int = 256
    sandbox_max_file_bytes: int = 100_000_000

    # Request limits.
    max_request_bytes: int = 1_000_000
    max_spec_components: int = 50
    max_description_chars: int = 4000
    max_struct_depth: int = 8

    # Security (DESIGN.md section 7). Authentication by API token ("auton8n tokens"):
    # "auto" requires it unless the listen address is loopback-only (or a unix socket);
    # "required"; "off" (on a non-loopback address a loud warning at start).
    auth_mode: str = "auto"
    # Seconds a token check is cached. Revocation is immediate in the revoking process
    # and (NOTIFY) on PostgreSQL replicas; this bounds every other path. 0: no cache.
    auth_cache_s: float = 2.0
    # Failed authentications per peer address (per replica): past the burst, that
    # address is refused (RESOURCE_EXHAUSTED) until the next refill; 0 = no limit.
    auth_failures_per_minute: float = 10.0
    auth_failures_burst: int = 20
    # TLS for the gRPC port: PEM certificate chain and private key files (both or none).
    tls_cert_file: str = ""
    tls_key_file: str = ""
    # Mutual TLS: the CA bundle client certificates must chain to; with
    # tls_require_client_cert a client without a valid certificate fails the handshake.
    tls_client_ca_file: str = ""
    tls_require_client_cert: bool = False
    # Token buckets per client (API token; the peer address when auth is off), shared by
    # the replicas on PostgreSQL. CreatePlugin draws from both buckets. 0 = no limit.
    rate_limit_create_per_hour: float = 10.0
    rate_limit_create_burst: int = 5
    rate_limit_requests_per_s: float = 20.0
    rate_limit_requests_burst: int = 100
    # Requests tokens a replica reserves at once from a shared (PostgreSQL) bucket (or a
    # tenth of a second of the refill, if more): one statement per batch instead of per
    # call, at the cost of admitting up to a batch fewer per replica near the limit.
    rate_limit_shared_batch: int = 10
    # Concurrent WatchJob streams per client and replica; 0 = no limit.
    max_watches_per_client: int = 10
    # RUNNING jobs per tenant over all replicas (more wait QUEUED); 0 = no limit. With
    # auth off every job is the anonymous tenant's: only max_concurrent_jobs applies.
    max_concurrent_jobs_per_tenant: int = 2

    # Model providers (standard variable names, not prefixed: ANTHROPIC_*, OPENAI_*).
    anthropic_api_key: str = field(default="", repr=False)
    anthropic_base_url: str = ""
    # OpenAI-compatible endpoint (GPT, Gemini's compatible endpoint, vLLM, Ollama) for
    # models named "openai:<model>". Either one enables it; a local server needs no key.
    openai_api_key: str = field(default="", repr=False)
    openai_base_url: str = ""

    # Model generators.
    # Output token limit of one model call; an answer cut off there is continued (see
    # model_max_continuations), never used truncated.
    max_output_tokens: int = 16000
    # Follow-up calls within one iteration after an answer hit max_output_tokens; when
    # they are spent the iteration fails with a diagnostic the next iteration sees.
    model_max_continuations: int = 2
    # Seconds one model HTTP request may take.
    model_request_timeout_s: float = 600.0
    # Transient failures (429, 529, 5xx, timeouts, connection errors) retried per job,
    # over all of the job's model calls; then the job fails with MODEL_UNAVAILABLE.
    model_retry_budget: int = 6
    # Jittered exponential backoff: first wait and cap (seconds); a server's retry-after
    # is honoured up to model_max_retry_after_s.
    model_retry_initial_s: float = 1.0
    model_retry_max_s: float = 30.0
    model_max_retry_after_s: float = 120.0
    # Consecutive failed model requests after which the provider counts as degraded
    # (health and metrics) until one succeeds.
    model_degraded_after: int = 3
    # Price overrides, USD per million tokens, by model-id prefix (longest wins):
    # "prefix=input/output[/cache_write/cache_read];...", e.g. "claude-sonnet-=3/15".
    model_prices: str = ""
    # The model's review verdict (0-100) below which an iteration fails and repairs.
    review_score_threshold: int = 70

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'auton8n.db'}"

    @property
    def resolved_toolchain_dir(self) -> Path:
        return Path(self.toolchain_dir) if self.toolchain_dir else self.data_dir / "toolchain"

    @property
    def workspace_root(self) -> Path:
        return self.data_dir / "workspaces"

    @property
    def default_model(self) -> str:
        if self.model:
            return self.model
        return DEFAULT_CLAUDE_MODEL if self.anthropic_api_key else "template"

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str], overrides: Mapping[str, Any] | None = None
    ) -> Settings:
        """Read ``AUTON8N_<FIELD>`` for every field, then apply ``overrides`` (CLI flags).

        Raises SettingsError naming the variable for a value of the wrong type.
        """
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(env_name(f.name))
            if raw is not None and raw != "":
                values[f.name] = _parse(f, raw, env_name(f.name))
        for name, raw in (overrides or {}).items():
            if raw is None:
                continue
            known = {f.name: f for f in dataclasses.fields(cls)}
            if name not in known:
                raise SettingsError(f"unknown setting {name!r}")
            f = known[name]
            values[name] = (
                _parse(f, raw, f"--{name.replace('_', '-')}") if isinstance(raw, str) else raw
            )
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        """Cross-field sanity checks."""
        positive = (
            "max_concurrent_jobs",
            "default_max_iterations",
            "max_iterations_limit",
            "job_timeout_s",
            "command_timeout_s",
            "output_limit_bytes",
            "lease_timeout_s",
            "heartbeat_interval_s",
            "max_attempts",
            "watch_heartbeat_s",
            "retention_interval_s",
            "health_check_interval_s",
            "health_check_timeout_s",
            "sandbox_max_memory_bytes",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise SettingsError(f"{ENV_PREFIX}{name.upper()} must be positive")
        if self.heartbeat_interval_s >= self.lease_timeout_s:
            raise SettingsError(
                f"{ENV_PREFIX}HEARTBEAT_INTERVAL_S must be shorter than {ENV_PREFIX}LEASE_TIMEOUT_S"
            )
        if self.default_max_iterations > self.max_iterations_limit:
            raise SettingsError(
                f"{ENV_PREFIX}DEFAULT_MAX_ITERATIONS exceeds {ENV_PREFIX}MAX_ITERATIONS_LIMIT"
            )
        if self.retention_days < 0:
            raise SettingsError(f"{ENV_PREFIX}RETENTION_DAYS must be 0 (keep forever) or more")
        if self.database_wait_s < 0:
            raise SettingsError(f"{ENV_PREFIX}DATABASE_WAIT_S must be 0 (no wait) or more")
        if self.log_format not in ("json", "text", "auto"):
            raise SettingsError(f"{ENV_PREFIX}LOG_FORMAT must be json, text or auto")
        self._check_security()

    def _check_security(self) -> None:
        if self.auth_mode not in ("auto", "required", "off"):
            raise SettingsError(f"{ENV_PREFIX}AUTH_MODE must be auto, required or off")
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise SettingsError(
                f"{ENV_PREFIX}TLS_CERT_FILE and {ENV_PREFIX}TLS_KEY_FILE go together"
            )
        if self.tls_client_ca_file and not self.tls_cert_file:
            raise SettingsError(f"{ENV_PREFIX}TLS_CLIENT_CA_FILE needs {ENV_PREFIX}TLS_CERT_FILE")
        if self.tls_require_client_cert and not self.tls_client_ca_file:
            raise SettingsError(
                f"{ENV_PREFIX}TLS_REQUIRE_CLIENT_CERT needs {ENV_PREFIX}TLS_CLIENT_CA_FILE"
            )
        not_negative = (
            "auth_cache_s",
            "auth_failures_per_minute",
            "rate_limit_create_per_hour",
            "rate_limit_requests_per_s",
            "max_watches_per_client",
            "max_concurrent_jobs_per_tenant",
        )
        for name in not_negative:
            if getattr(self, name) < 0:
                raise SettingsError(f"{ENV_PREFIX}{name.upper()} must be 0 (no limit) or more")
        if self.rate_limit_shared_batch < 1:
            raise SettingsError(f"{ENV_PREFIX}RATE_LIMIT_SHARED_BATCH must be at least 1")
        for rate, burst in (
            ("auth_failures_per_minute", "auth_failures_burst"),
            ("rate_limit_create_per_hour", "rate_limit_create_burst"),
            ("rate_limit_requests_per_s", "rate_limit_requests_burst"),
        ):
            if getattr(self, rate) > 0 and getattr(self, burst) < 1:
                raise SettingsError(f"{ENV_PREFIX}{burst.upper()} must be at least 1")


def _parse(f: dataclasses.Field[Any], raw: str, where: str) -> Any:
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    try:
        if kind == "bool":
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "Path":
            return Path(raw)
    except ValueError as exc:
        raise SettingsError(f"{where}: cannot use {raw!r} as {kind}") from exc
    return raw
