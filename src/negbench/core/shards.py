"""`i/n` shards: which contiguous block of a job one process does (build, negdata)."""
from __future__ import annotations

import os
import re

from negbench.core.errors import ConfigError


def parse_shard(text: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """'i/n' (or an (i, n) tuple) -> (i, n) with 0 <= i < n; None stays None."""
    if text is None or text == "":
        return None
    if isinstance(text, tuple):
        i, n = text
        if not (n >= 1 and 0 <= i < n):
            raise ConfigError(f"shard {i}/{n}: need 0 <= i < n")
        return int(i), int(n)
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not m or not int(m.group(2)) >= 1 or not int(m.group(1)) < int(m.group(2)):
        raise ConfigError(f"--shard {text!r}: expected i/n with 0 <= i < n, e.g. 0/4")
    return int(m.group(1)), int(m.group(2))


def shard_slice(n_items: int, shard: tuple[int, int] | None) -> slice:
    """Contiguous block i of n: concatenating blocks 0..n-1 restores the original order."""
    if shard is None:
        return slice(0, n_items)
    i, n = shard
    return slice(i * n_items // n, (i + 1) * n_items // n)


def shard_file_name(fname: str, shard: tuple[int, int] | None) -> str:
    """'x.csv' -> 'x.shard-i-of-n.csv' (unchanged without a shard)."""
    if shard is None:
        return fname
    stem, ext = os.path.splitext(fname)
    return f"{stem}.shard-{shard[0]}-of-{shard[1]}{ext}"
