"""One structured JSON log line per request, and ``replay``: re-running a logged request offline.

Every answered request (any status) writes one JSON object on one line to the logger
``thermostat_runtime.requests`` (stderr by default) and, with ``--request-log FILE``, appends it to
FILE. A served request's line holds what replay needs: the request body as received, the sampling
settings and seed, the routing temperature it started at and any mid-request change
(``routing_changes``: [token index, T]), and a sha256 of its generated token ids. Replay re-encodes the
prompt, runs the same routing and sampling at batch 1 (gates never depend on batch neighbours) and
reports whether the tokens match the logged hash. With ``explain`` it also recomputes every token's
gate mask and compares its hash with the logged one (``routing.gate_hashes``): the exact audit trail of
which channels ran. A hash logged as ``hash@rows`` was computed in a step whose kernel plan ran
masked-dense products for ``rows`` decode rows; replay plans that token's kernels the same way, so
per-token gates reproduce bit for bit from a batched request; a request served in
batch-shared mode cannot (its channel set depended on the batch), and the explanation says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from thermostat_runtime.engine import Engine

log = logging.getLogger("thermostat_runtime.requests")


def tokens_sha256(token_ids: list[int]) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(token_ids).encode()).hexdigest()


class RequestLog:
    """Writes request records as JSON lines (to the logger and, optionally, a file)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps({"ts": round(time.time(), 3), **record}, separators=(",", ":"), default=str)
        log.info(line)
        if self.path is not None:
            with self._lock, self.path.open("a") as out:
                out.write(line + "\n")


def read_record(path: Path, request_id: str | None) -> dict[str, Any]:
    """The logged record with this id (the last served one when None)."""
    chosen: dict[str, Any] | None = None
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        if record.get("code") != 200:
            continue
        if request_id is None or record.get("request_id") == request_id:
            chosen = record
    if chosen is None:
        raise LookupError(f"no served request {request_id or ''} in {path}".replace("  ", " "))
    return chosen


@dataclass
class ReplayResult:
    token_ids: list[int]
    text: str
    executed_fraction: float
    matches: bool
    explanation: dict[str, Any] | None = None


def replay(engine: Engine, record: dict[str, Any]) -> ReplayResult:
    """Generate again what ``record`` logged, with its routing temperature schedule and seed."""
    import torch

    from thermostat_runtime.sampling import new_generator, sample_token

    prompt_ids = list(record["prompt_ids"]) if "prompt_ids" in record else _encode(engine, record["body"])
    changes = {int(i): float(t) for i, t in record.get("routing_changes", [])}
    state = engine.new_sequence(routing_temperature=float(record["routing_temperature"]), seed=record["routing_seed"])
    state.trace = True
    generator = new_generator(int(record["routing_seed"]))
    tokens: list[int] = []
    row = prompt_ids
    logged = list((record.get("routing") or {}).get("gate_hashes", []))
    with torch.inference_mode():
        while len(tokens) < int(record["max_tokens"]):
            if len(tokens) in changes and tokens:
                state.routing_temperature = changes[len(tokens)]
            state.kernel_rows = _kernel_rows(logged, state.length)
            logits = engine.forward([state], [row]).logits[0]
            token = sample_token(logits, temperature=record["temperature"], top_p=record["top_p"], generator=generator)
            stop = token in engine.stop_ids and not record["body"].get("ignore_eos", False)
            if stop or len(tokens) >= int(record["completion_tokens"]):
                break
            tokens.append(token)
            row = [token]
    matches = tokens_sha256(tokens) == record.get("completion_sha256")
    explanation = explain(engine, record, state.gate_hashes, state.gate_channels)
    return ReplayResult(tokens, engine.decode(tokens), state.executed_fraction, matches, explanation)


def _kernel_rows(logged: list[str], index: int) -> int:
    """The kernel plan's row count logged with token ``index``'s gate hash (``hash@rows``; 0: none)."""
    if index >= len(logged) or "@" not in logged[index]:
        return 0
    return int(logged[index].rsplit("@", 1)[1])


def explain(engine: Engine, record: dict[str, Any], hashes: list[str], channels: list[int]) -> dict[str, Any]:
    """Recomputed gates against the logged ones: which tokens differ, and the channels each token ran."""
    routing = record.get("routing") or {}
    logged = list(routing.get("gate_hashes", []))
    mismatched = [i for i, (a, b) in enumerate(zip(hashes, logged, strict=False)) if a != b]
    mismatched += list(range(min(len(hashes), len(logged)), max(len(hashes), len(logged))))
    notes = []
    if routing.get("router_hash") != engine.router_hash:
        notes.append(f"logged router {routing.get('router_hash')} is not the loaded {engine.router_hash}")
    if routing.get("mode") == "shared":
        notes.append("served in batch-shared mode: its channel sets depended on the batch, replay cannot match")
    if not logged and float(record["routing_temperature"]) < 1.0:
        notes.append("the record holds no gate hashes (logged before routing records, or T = 1)")
    return {
        "gates_match": not mismatched and bool(logged) == bool(hashes),
        "tokens_checked": len(logged),
        "mismatched_tokens": mismatched[:50],
        "router_hash": engine.router_hash,
        "channels_per_token": channels,
        "notes": notes,
    }


def _encode(engine: Engine, body: dict[str, Any]) -> list[int]:
    if "messages" in body:
        from thermostat_runtime.openai_api import parse_chat

        return engine.encode_chat(parse_chat(body).messages or [])
    prompt = body["prompt"]
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], int):
        return [int(i) for i in prompt]
    return engine.encode_text(prompt[0] if isinstance(prompt, list) else prompt)
