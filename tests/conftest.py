"""Options of the whole suite: ``--run-image`` turns on the container image tests (marker ``image``).

They build both images with buildah on a Debian bookworm base made by mmdebstrap, then run them (a few
minutes, as root): plain ``pytest`` skips them, ``.ci/run`` runs them after the main suite.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-image",
        action="store_true",
        help="also run the tests marked 'image': build the container images with buildah and run them",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-image"):
        return
    skip = pytest.mark.skip(reason="container image test: pass --run-image to build and run the images")
    for item in items:
        if "image" in item.keywords:
            item.add_marker(skip)
