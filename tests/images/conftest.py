"""The container images, built once per session by ``images/build.sh`` on a Debian bookworm base
made by mmdebstrap (``THERMOSTAT_IMAGE_REUSE=1`` uses the images already in buildah's store instead).
Only collected with ``--run-image`` (see tests/conftest.py): building takes minutes and needs root.
"""

from __future__ import annotations

import os
import shutil

import pytest
from image_support import BuildReport, build_images, image_size, image_tags

# The session's build, for the closing summary (build times and sizes are what docs/BENCHMARKS.md records).
BUILT: list[BuildReport] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for report in BUILT:
        terminalreporter.write_line(f"container images: {report.summary()}")


@pytest.fixture(scope="session")
def built_images(tmp_path_factory: pytest.TempPathFactory) -> BuildReport:
    if os.environ.get("THERMOSTAT_IMAGE_REUSE") == "1":
        return BuildReport(sizes={tag: image_size(tag) for tag in image_tags()})
    work = tmp_path_factory.mktemp("images")
    try:
        report = build_images(work / "build", work / "build.log")
    finally:
        # The wheelhouses (torch alone is 190 MB) are in the images now.
        shutil.rmtree(work / "build", ignore_errors=True)
    BUILT.append(report)
    return report
