# The Thermostat operator image: `thermostat operator` with the `operator` extra only (no test tools,
# no numpy, no torch). The build context is a wheelhouse (images/build.sh wheels-operator makes it):
# thermostat's own wheel and every dependency, so the build runs offline (`--network none`).
#   images/build.sh operator                       # wheelhouse, then buildah/podman/docker build
# BASE is any image with Python 3.11 (or a Debian/Ubuntu image, which gets its distribution's python3);
# images/build.sh base makes one from Debian bookworm with mmdebstrap.
ARG BASE=docker.io/library/python:3.11.14-slim-bookworm

FROM ${BASE} AS python
# hadolint ignore=DL3008
RUN if ! python3 -c "import ensurepip" 2>/dev/null; then \
      apt-get update \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv \
      && rm -rf /var/lib/apt/lists/*; \
    fi

FROM python AS build
ARG THERMOSTAT_VERSION=0.1.0
# Only wheels from the context: what the image holds is exactly what the wheelhouse resolved.
RUN --mount=type=bind,source=.,target=/wheels \
    python3 -m venv /opt/thermostat \
    && /opt/thermostat/bin/pip install --no-index --find-links /wheels --no-cache-dir \
       --disable-pip-version-check "thermostat[operator]==${THERMOSTAT_VERSION}"

FROM python
ARG THERMOSTAT_VERSION=0.1.0
LABEL org.opencontainers.image.title="thermostat-operator" \
      org.opencontainers.image.description="Thermostat operator: keeps routed LLM inference inside its SLO and power budget" \
      org.opencontainers.image.version="${THERMOSTAT_VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# A numeric USER lets the kubelet check runAsNonRoot without reading /etc/passwd.
RUN groupadd --gid 10001 thermostat \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin thermostat
COPY --from=build /opt/thermostat /opt/thermostat
# Bytecode was compiled at install: nothing needs writing under a read-only root filesystem.
ENV PATH=/opt/thermostat/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
# Kopf's liveness endpoint (/healthz) and the operator's /metrics.
EXPOSE 8080 9102
ENTRYPOINT ["thermostat"]
CMD ["operator"]
