"""Whether calls must carry an API token: secure by default off loopback.

``auto`` (the default) requires tokens unless the server listens only on loopback (or a
unix socket), where only local users can reach it: local development and the demo run
without tokens. ``required`` always, ``off`` never; ``off`` on an address other machines
can reach is allowed, but logged loudly at start.
"""

from __future__ import annotations

import ipaddress

from loguru import logger

from server.settings import Settings

__all__ = ["auth_required", "is_loopback_only"]

_LOCAL_NAMES = frozenset({"localhost", "ip6-localhost", "ip6-loopback"})


def is_loopback_only(listen_address: str) -> bool:
    """Whether a gRPC listen address (``host:port``, ``[v6]:port``, ``unix:path``) can
    only be reached from this machine. Wildcards, host names and "" are not."""
    if listen_address.startswith(("unix:", "unix-abstract:")):
        return True
    host = listen_address.rpartition(":")[0] if ":" in listen_address else listen_address
    host = host.strip().removeprefix("[").removesuffix("]")
    if host.lower() in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name (could resolve anywhere), "" or a wildcard


def auth_required(settings: Settings) -> bool:
    """Resolve ``settings.auth_mode``; logs a loud warning when auth is switched off on
    an address other machines can reach."""
    loopback = is_loopback_only(settings.listen_address)
    if settings.auth_mode == "required":
        return True
    if settings.auth_mode == "off":
        if not loopback:
            logger.warning(
                "AUTHENTICATION IS OFF on {} (AUTON8N_AUTH_MODE=off): anyone who can reach "
                "this address can create, read and delete every job. Use "
                "AUTON8N_AUTH_MODE=auto or required with API tokens (auton8n tokens create)",
                settings.listen_address,
            )
        return False
    return not loopback
