"""Where a secret may be sent: an API key goes only to https URLs or to this machine (loopback),
never over plain http to another host (the LLM paraphrase client and the VLM endpoint client)."""
from __future__ import annotations

import ipaddress
import urllib.parse


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def key_allowed(url: str) -> bool:
    """A secret may go to https URLs and to this machine, never over plain http elsewhere."""
    parts = urllib.parse.urlsplit(url)
    return parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname))
