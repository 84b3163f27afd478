#!/usr/bin/env bash
# The test command: install what the tests need, then run every test (unit, integration, e2e) and the
# static checks (ruff, mypy, import contracts run as tests). Extra arguments go to pytest, e.g.
# `scripts/test.sh -m fast` for the edit-loop subset.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
exec "${PYTHON:-python3}" -m pytest "$@"
