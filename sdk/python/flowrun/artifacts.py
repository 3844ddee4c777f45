"""``flowrun.save_artifact``: versioned blobs of a run (SHA-256, size-capped, in PostgreSQL)."""

from __future__ import annotations

import json
from typing import Any, Optional

from . import _context, _json


def save_artifact(name: str, value: Any, content_type: Optional[str] = None) -> int:
    """Saves a new version of artifact `name`; returns its version (1, 2, ...).

    ``bytes`` are stored as is (``content_type`` default application/octet-stream),
    ``str`` as text/plain, anything else as its JSON (pydantic) with
    application/json. Inside a checkpoint the artifact names it.
    """
    rt = _context.runtime(f"save_artifact('{name}')")
    if isinstance(value, (bytes, bytearray, memoryview)):
        data, ctype = bytes(value), content_type or "application/octet-stream"
    elif isinstance(value, str) and content_type is not None:
        data, ctype = value.encode(), content_type
    elif isinstance(value, str):
        data, ctype = value.encode(), "text/plain; charset=utf-8"
    else:
        # Canonical JSON (sorted keys, compact), as a C++ agent's save_artifact(json) stores it.
        text = _json.dumps(value, _json._ANY, f"artifact '{name}'")
        data = json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        ctype = content_type or "application/json"
    return rt.ex.save_artifact(name, ctype, data, _context.current_checkpoint())
