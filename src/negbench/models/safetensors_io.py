"""safetensors files with identical bytes for identical tensors.

safetensors writes its `__metadata__` from a hash map, so the key order (and thus the file
bytes and any content hash of them) varies from run to run. The header is rewritten with
sorted keys in place; offsets are relative to the data block, so the data is untouched and
the header keeps its length (padding with spaces is allowed by the format).
"""
from __future__ import annotations

import json
import struct
from pathlib import Path


def canonicalise_header(path) -> None:
    path = Path(path)
    with open(path, "r+b") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
        text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
        if len(text) > size:  # cannot happen for a header safetensors wrote itself; leave it be
            return
        f.seek(8)
        f.write(text + b" " * (size - len(text)))


def save_safetensors(state: dict, path, metadata: dict | None = None) -> None:
    """safetensors.torch.save_file, then the header made deterministic."""
    from safetensors.torch import save_file

    save_file(state, str(path), metadata=metadata)
    canonicalise_header(path)
