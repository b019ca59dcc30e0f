"""A file that procedures in other processes append to, one line per run."""

from __future__ import annotations

import os
from pathlib import Path


def append(ledger: str, what: str) -> str:
    """Append ``<what> <pid>`` atomically (O_APPEND: concurrent writers never interleave); return it."""
    line = f"{what} {os.getpid()}"
    fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)
    return line


def lines(ledger: str | Path) -> list[str]:
    """The ledger's lines without their pids."""
    path = Path(ledger)
    if not path.exists():
        return []
    return [line.rsplit(" ", 1)[0] for line in path.read_text().splitlines()]
