"""Offline text for router training and calibration, with a fixed held-out split.

Sources that ship with the machine, nothing downloaded: CPython's ``pydoc_data/topics.py`` (one
document per topic), ``/usr/share/common-licenses`` and plain-text files under ``/usr/share/doc``
(duplicates by content removed). A document's split is a hash of its name, so the held-out split is
the same on every run. Three splits: ``train`` (thresholds are calibrated on it), ``validation`` (every
choice of schedule, allocation and gate kind) and ``test`` (scored once for the committed profile;
the old "held-out" split, unchanged).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HELD_OUT_PERCENT = 15  # test split
VALIDATION_PERCENT = 10
SPLITS = ("train", "validation", "test")
LICENSES_DIR = Path("/usr/share/common-licenses")
DOC_DIR = Path("/usr/share/doc")
MAX_DOC_BYTES = 200_000
MAX_DOC_DIR_BYTES = 4_000_000


@dataclass(frozen=True)
class Document:
    name: str
    text: str


def split_of(name: str) -> str:
    """The split a document belongs to, by a hash of its name."""
    bucket = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") % 100
    if bucket < HELD_OUT_PERCENT:
        return "test"
    return "validation" if bucket < HELD_OUT_PERCENT + VALIDATION_PERCENT else "train"


def is_held_out(name: str) -> bool:
    return split_of(name) == "test"


def _pydoc_topics() -> Iterator[Document]:
    from pydoc_data.topics import topics

    for key in sorted(topics):
        yield Document(f"pydoc:{key}", topics[key])


def _text_files(root: Path, prefix: str, budget: int) -> Iterator[Document]:
    seen: set[str] = set()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        if path.suffix in {".gz", ".xz", ".bz2", ".png", ".jpg", ".pdf", ".html", ".zst"}:
            continue
        raw = path.read_bytes()[:MAX_DOC_BYTES]
        if b"\0" in raw or len(raw) < 200:
            continue
        text = raw.decode("utf-8", errors="ignore")
        digest = hashlib.sha256(raw).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        budget -= len(raw)
        if budget < 0:
            return
        yield Document(f"{prefix}:{path.relative_to(root)}", text)


def documents() -> list[Document]:
    """Every offline document, in a fixed order."""
    docs = list(_pydoc_topics())
    if LICENSES_DIR.is_dir():
        docs += list(_text_files(LICENSES_DIR, "license", MAX_DOC_DIR_BYTES))
    if DOC_DIR.is_dir():
        docs += list(_text_files(DOC_DIR, "doc", MAX_DOC_DIR_BYTES))
    return docs


def token_chunks(
    encode: object, *, split: str, seq_len: int, separator: int, max_chunks: int | None = None
) -> np.ndarray:
    """Documents of one split, tokenized, joined by ``separator`` and cut into [n, seq_len] chunks."""
    assert callable(encode)
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not one of {SPLITS}")
    stream: list[int] = []
    limit = None if max_chunks is None else max_chunks * seq_len
    for doc in documents():
        if split_of(doc.name) != split:
            continue
        stream.extend(encode(doc.text))
        stream.append(separator)
        if limit is not None and len(stream) >= limit:
            break
    n = len(stream) // seq_len
    if max_chunks is not None:
        n = min(n, max_chunks)
    return np.asarray(stream[: n * seq_len], dtype=np.int64).reshape(n, seq_len)
