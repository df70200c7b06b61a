# syntax=docker/dockerfile:1.7
# auton8n server image: Python 3.11, Node 20, bubblewrap and the prebuilt plugin toolchain.
#
#   docker build -t auton8n .
#   docker run --rm -p 50051:50051 -p 9464:9464 -v auton8n-data:/data auton8n
#
# The sandbox (bubblewrap) needs unprivileged user namespaces and a fresh /proc inside
# the container; see docs/operations.md "The sandbox in a container" for what the
# runtime must allow. No build secrets: nothing here needs credentials.

# Node 20 (the plugin toolchain's runtime) comes from the official image of the same
# Debian release as the Python image, so the binary's glibc matches.
FROM node:20-bookworm-slim AS node

# The shared npm toolchain, laid out exactly as server/pipeline/toolchain.py's Toolchain
# expects: <dir>/<sha256 of package-lock.json>/{package.json,package-lock.json,
# node_modules/,.auton8n-complete}. Its own stage: rebuilt only when the lockfile changes.
FROM node AS toolchain
ARG AUTON8N_TOOLCHAIN_DIR=/opt/auton8n/toolchain
WORKDIR ${AUTON8N_TOOLCHAIN_DIR}/.build
COPY server/pipeline/toolchain/package.json server/pipeline/toolchain/package-lock.json ./
RUN --mount=type=cache,target=/root/.npm \
    npm ci --ignore-scripts --no-audit --no-fund --no-update-notifier \
    && hash="$(sha256sum package-lock.json)" && hash="${hash%% *}" \
    && printf '%s\n' "$hash" > .auton8n-complete \
    && mv "$AUTON8N_TOOLCHAIN_DIR/.build" "$AUTON8N_TOOLCHAIN_DIR/$hash"

# The Python package and its dependencies in a virtual environment.
FROM python:3.11-slim-bookworm AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/auton8n/venv/bin:$PATH
RUN python -m venv /opt/auton8n/venv
WORKDIR /src
COPY pyproject.toml ./
COPY protos ./protos
COPY server ./server
COPY client ./client
RUN pip install --no-cache-dir . && pip check

FROM python:3.11-slim-bookworm AS runtime
LABEL org.opencontainers.image.title="auton8n" \
      org.opencontainers.image.description="gRPC service that generates, builds, tests and packages ElizaOS plugins"
# Debian versions are not pinned: security updates replace them in the archive.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends bubblewrap ca-certificates tini \
    && rm -rf /var/lib/apt/lists/*
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
    && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
    && node --version && npm --version \
    && groupadd --system --gid 10001 auton8n \
    && useradd --system --uid 10001 --gid auton8n --home-dir /home/auton8n --create-home \
       --shell /usr/sbin/nologin auton8n \
    && mkdir -p /data \
    && chown auton8n:auton8n /data
COPY --from=builder /opt/auton8n/venv /opt/auton8n/venv
COPY --from=toolchain /opt/auton8n/toolchain /opt/auton8n/toolchain
ENV PATH=/opt/auton8n/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PROMETHEUS_DISABLE_CREATED_SERIES=true \
    AUTON8N_DATA_DIR=/data \
    AUTON8N_LISTEN_ADDRESS=0.0.0.0:50051 \
    AUTON8N_METRICS_ADDRESS=0.0.0.0:9464 \
    AUTON8N_TOOLCHAIN_DIR=/opt/auton8n/toolchain \
    AUTON8N_LOG_FORMAT=json
# Fail the build if the installed code would not recognise the prebuilt toolchain
# (it would then try to install it at startup, into a read-only directory).
RUN python -c "from pathlib import Path; from server.pipeline.toolchain import Toolchain; t = Toolchain(Path('/opt/auton8n/toolchain')); assert (t.root / '.auton8n-complete').is_file(), t.root; print('toolchain', t.root)"
USER 10001:10001
WORKDIR /home/auton8n
EXPOSE 50051 9464
VOLUME ["/data"]
# Liveness, not readiness: restarting the container cures no database outage.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "server.healthprobe", "--service", "auton8n.v1.PluginService.liveness"]
# tini as PID 1 forwards SIGTERM (graceful drain) and reaps orphaned npm/node children.
ENTRYPOINT ["/usr/bin/tini", "--", "auton8n", "serve"]
