"""Helpers of the container image tests: build the images with ``images/build.sh``, run commands in
them with ``buildah run`` (host network, the image's own user and environment), start the emulated
API server as a host process, and poll with a deadline.

pytest puts this folder on ``sys.path`` (rootdir-relative imports, no ``__init__.py``), so the tests
and the conftest import it as ``image_support``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "images" / "build.sh"
BASE_TAG = "localhost/thermostat-base:bookworm"
# chroot isolation needs no OCI runtime (Debian's buildah without its Recommends has none).
BUILDAH_ENV = {**os.environ, "BUILDAH_ISOLATION": "chroot"}


def image_tags() -> tuple[str, str]:
    """The operator's and the runtime's image names, as the build script makes them."""
    result = subprocess.run([str(BUILD), "tags"], capture_output=True, text=True, check=True)
    operator, runtime = result.stdout.split()
    return operator, runtime


def buildah(*args: str, check: bool = True, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["buildah", *args], capture_output=True, text=True, env=BUILDAH_ENV, timeout=timeout_s)
    if check and result.returncode != 0:
        raise AssertionError(f"buildah {' '.join(args)} failed ({result.returncode}): {result.stderr[-3000:]}")
    return result


def image_config(tag: str) -> dict[str, Any]:
    """The OCI config of an image: User, Env, Entrypoint, Cmd..."""
    config: dict[str, Any] = json.loads(buildah("inspect", "--type", "image", tag).stdout)["OCIv1"]["config"]
    return config


def image_size(tag: str) -> str:
    """The image's size as ``buildah images`` reports it (uncompressed layers, e.g. "404 MB")."""
    listed = json.loads(buildah("images", "--json", tag).stdout)
    return str(listed[0]["size"])


@dataclass
class BuildReport:
    """How long each step of ``images/build.sh`` took, and the images' sizes."""

    seconds: dict[str, float] = field(default_factory=dict)
    sizes: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        steps = ", ".join(f"{step} {s:.0f} s" for step, s in self.seconds.items())
        sizes = ", ".join(f"{tag} {size}" for tag, size in self.sizes.items())
        return f"build: {steps}; sizes: {sizes}"


def build_images(work: Path, log: Path) -> BuildReport:
    """``images/build.sh base operator runtime``, step by step, the images on the mmdebstrap base."""
    for tool in ("buildah", "mmdebstrap"):
        assert shutil.which(tool), f"{tool} is missing: apt-get install -y --no-install-recommends buildah mmdebstrap"
    tags = (BASE_TAG, *image_tags())
    for tag in tags:  # an earlier build of the same name would be left dangling
        buildah("rmi", "--force", tag, check=False)
    report = BuildReport()
    env = {**BUILDAH_ENV, "WORK": str(work), "BASE": BASE_TAG, "PYTHON": sys.executable}
    with log.open("ab") as out:
        for step in ("base", "operator", "runtime"):
            started = time.monotonic()
            result = subprocess.run([str(BUILD), step], env=env, stdout=out, stderr=subprocess.STDOUT)
            report.seconds[step] = time.monotonic() - started
            if result.returncode != 0:
                raise AssertionError(f"images/build.sh {step} failed: {log.read_text(errors='replace')[-4000:]}")
    report.sizes = {tag: image_size(tag) for tag in tags}
    return report


@contextmanager
def container(tag: str) -> Iterator[str]:
    """A working container of the image (``buildah from``), removed afterwards."""
    name = buildah("from", "--pull=never", tag).stdout.strip().splitlines()[-1]
    try:
        yield name
    finally:
        buildah("rm", name, check=False)


# What buildah run itself writes into a container (name resolution), not the image's programs.
BUILDAH_OWN = {"etc/hosts", "etc/resolv.conf", "etc/hostname"}


def written_outside_tmp(name: str, *, mount_points: tuple[str, ...] = ()) -> list[str]:
    """Files the container's processes wrote (or deleted) outside /tmp: none may, as the pods run with
    a read-only root filesystem and /tmp an emptyDir. Read from the container's overlay upper layer,
    where buildah also leaves the empty files it bind-mounts volumes on (``mount_points``)."""
    upper = Path(buildah("mount", name).stdout.strip()).parent / "diff"
    try:
        assert upper.is_dir(), f"no overlay upper layer at {upper}: this check needs buildah's overlay driver"
        written = [path.relative_to(upper).as_posix() for path in upper.rglob("*") if not path.is_dir()]
    finally:
        buildah("umount", name, check=False)
    own = BUILDAH_OWN | {point.lstrip("/") for point in mount_points}
    return sorted(path for path in written if not path.startswith("tmp/") and path not in own)


def run_args(name: str, argv: list[str], *, env: dict[str, str], volumes: list[str]) -> list[str]:
    options = ["--network", "host"]
    for key, value in env.items():
        options += ["--env", f"{key}={value}"]
    for volume in volumes:
        options += ["--volume", volume]
    return ["buildah", "run", *options, name, "--", *argv]


def run_in(
    name: str, argv: list[str], *, env: dict[str, str] | None = None, timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run a command to its end in the container, as the image's user."""
    command = run_args(name, argv, env=env or {}, volumes=[])
    return subprocess.run(command, capture_output=True, text=True, env=BUILDAH_ENV, timeout=timeout_s)


@contextmanager
def serving_in(
    name: str, argv: list[str], *, log: Path, env: dict[str, str] | None = None, volumes: list[str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A long-running command in the container; its whole process group is ended afterwards."""
    command = run_args(name, argv, env=env or {}, volumes=volumes or [])
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, env=BUILDAH_ENV, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    try:
        yield process
    finally:
        end_group(process)


def end_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group (buildah ends the container's processes), SIGKILL after 20 s."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def http_status(url: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any] | None]:
    """Status and JSON body of a GET (or a POST of ``body``); ``(0, None)`` while nothing listens."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            text = response.read()
            return response.status, json.loads(text) if text.strip().startswith(b"{") else None
    except urllib.error.HTTPError as error:
        return error.code, None
    except OSError:
        return 0, None


@contextmanager
def emulated_api(tmp: Path) -> Iterator[Path]:
    """``thermostat apiserver`` from this tree on a loopback port; yields a kubeconfig anyone can read."""
    kubeconfig, log = tmp / "kubeconfig", tmp / "apiserver.log"
    tree = os.pathsep.join(str(REPO / d) for d in ("operator", "runtime", "tools"))
    env = {**os.environ, "PYTHONPATH": tree}
    command = [sys.executable, "-m", "thermostat", "apiserver", "--port", "0", "--kubeconfig", str(kubeconfig)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: served_kubeconfig(kubeconfig), timeout_s=60, what="the emulated API", process=process)
        kubeconfig.chmod(0o644)  # the container's user 10001 reads it through a bind mount
        yield kubeconfig
    finally:
        end_group(process)


def served_kubeconfig(path: Path) -> bool:
    if not path.exists():
        return False
    clusters = (yaml.safe_load(path.read_text()) or {}).get("clusters") or []
    return bool(clusters) and http_status(f"{clusters[0]['cluster']['server']}/version")[0] == 200
