"""Files written whole: readers (outbox watchers, the avatar worker) never see half of one."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomically(target: Path, data: bytes) -> None:
    """Write a file under a temporary `.part` name, then rename it into place."""
    partial = target.with_name(target.name + ".part")
    partial.write_bytes(data)
    os.replace(partial, target)
