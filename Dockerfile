# syntax=docker/dockerfile:1
# The ingestor's image, as the Helm chart runs it (docs/deployment.md). No image is published: build it from the
# repository root and push it to your registry:
#   docker build --build-arg VERSION=$(git describe --tags --always) -t REGISTRY/defender-ingestor:TAG .
# The base is pinned by tag; to pin its digest as well:
#   --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:<digest>
# tests/test_image.py checks this file statically.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# Builder: a venv at /opt/venv holding the hash-pinned runtime dependencies (wheels only, nothing is compiled
# from source), then the ingestor's own wheel, then bytecode for all of it, so imports never need to write.
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1
# No pip inside the venv: the base image's pip installs into it, so the final image carries no installer.
RUN python -m venv --without-pip /opt/venv
WORKDIR /src
# Dependencies first, so this layer is rebuilt only when the lock changes.
COPY requirements-runtime.lock ./
RUN pip --python /opt/venv/bin/python install --no-compile --require-hashes --no-deps --only-binary=:all: \
        -r requirements-runtime.lock
COPY pyproject.toml README.md ./
COPY schemas/ schemas/
COPY ingestor/ ingestor/
# checked-hash bytecode stays valid whatever timestamps the copy into the final stage gives the sources.
RUN pip wheel --no-deps --wheel-dir /tmp/wheels . \
    && pip --python /opt/venv/bin/python install --no-compile --no-deps /tmp/wheels/*.whl \
    && /opt/venv/bin/python -m compileall -q -f -j 0 --invalidation-mode checked-hash /opt/venv \
    && /opt/venv/bin/ingestor --version

# Runtime: the same slim base and the venv, nothing else: no compilers, no build tools, no package installs.
FROM ${PYTHON_IMAGE} AS runtime
ARG VERSION=dev
LABEL org.opencontainers.image.title="defender-ingestor" \
      org.opencontainers.image.description="Microsoft Defender XDR advanced-hunting stream (Event Hubs Kafka endpoint) to Azure Log Analytics through the Logs Ingestion API" \
      org.opencontainers.image.source="https://github.com/defender-ingestor/ingestor" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}"
# The slim base ships the standard library without bytecode; compile it once here (about 25 MB), because the
# read-only root filesystem would otherwise make every start compile it again in memory. Then the user the
# chart's podSecurityContext names, and the state directory it may write to (the chart mounts volumes there).
RUN python -m compileall -q -j 0 --invalidation-mode checked-hash -x '/(test|tests|idle_test|site-packages)/' \
        /usr/local/lib/python3.11 \
    && groupadd --system --gid 10001 ingestor \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin ingestor \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/ingestor
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /var/lib/ingestor
USER 10001:10001
# /metrics, /healthz and /readyz (metrics.port). No HEALTHCHECK: Kubernetes probes those endpoints.
EXPOSE 9464
ENTRYPOINT ["ingestor"]
CMD ["run", "--config", "/etc/ingestor/ingestor.yaml"]
