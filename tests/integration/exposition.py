"""Exporters that replay committed exposition fixtures (tests/integration/fixtures/*.prom).

A fixture is a real scrape of another project's exporter (stock vLLM, dcgm-exporter), with comments
citing the version and source file its names and labels come from. ``ReplayExporter`` serves it on
a loopback port keeping every family's HELP/TYPE lines, names and labels, and asks a callback for
each fixture sample what to emit in its place: the values of the test's load model, and, for
per-GPU series, one copy per GPU with that GPU's labels. Imported as ``exposition`` (this folder is
on ``sys.path``, as for ``integration_support``).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from thermostat_stack.promserver import free_port

FIXTURES = Path(__file__).resolve().parent / "fixtures"
_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Sample:
    """One fixture sample line."""

    name: str
    labels: dict[str, str]
    value: float


@dataclass
class Family:
    """A metric family: its HELP/TYPE lines and its samples."""

    header: list[str] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)


def load_fixture(name: str) -> list[Family]:
    """The families of ``fixtures/<name>``; source comments are dropped, HELP/TYPE kept."""
    families: list[Family] = []
    for line in (FIXTURES / name).read_text(encoding="utf-8").splitlines():
        if line.startswith("# HELP"):
            families.append(Family(header=[line]))
        elif line.startswith("# TYPE"):
            families[-1].header.append(line)
        elif line and not line.startswith("#"):
            match = _SAMPLE.match(line)
            assert match, f"fixture {name}: not a sample line: {line}"
            labels = dict(_LABEL.findall(match["labels"] or ""))
            families[-1].samples.append(Sample(match["name"], labels, float(match["value"])))
    return families


def render_line(name: str, labels: dict[str, str], value: float) -> str:
    """One sample in the text format (empty labels left out, as exporters do)."""
    body = ",".join(f'{k}="{v}"' for k, v in labels.items() if v != "")
    return f"{name}{{{body}}} {value!r}" if body else f"{name} {value!r}"


# What to emit for one fixture sample: (labels, value) pairs; none drops it.
Replay = Callable[[Sample], Iterable[tuple[dict[str, str], float]]]


class ReplayExporter:
    """Serves a fixture's families with the values ``replay`` gives, at ``http://<address>/metrics``."""

    def __init__(self, fixture: str, replay: Replay, *, port: int | None = None) -> None:
        self.families = load_fixture(fixture)
        self.replay = replay
        self.port = free_port() if port is None else port  # a given port: the same pod, restarted
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = exporter.text().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def text(self) -> str:
        lines: list[str] = []
        for family in self.families:
            lines += family.header
            for sample in family.samples:
                lines += [render_line(sample.name, labels, value) for labels, value in self.replay(sample)]
        return "\n".join(lines) + "\n"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
