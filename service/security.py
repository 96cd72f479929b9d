"""API keys: where they come from, and a constant-time check.

Keys come from ``TRIAGE_API_KEYS`` (comma-separated). When that is unset the key file
(``TRIAGE_API_KEY_FILE``, default ``<repo>/var/api-key``) is used; the first start creates it
with a random key, mode 0600, and logs only its path. Keys are never logged.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import secrets
from pathlib import Path

from service.settings import Settings

logger = logging.getLogger(__name__)

API_KEY_HEADER = "X-API-Key"


def ensure_key_file(path: Path) -> tuple[str, ...]:
    """Read the key file; create it with one random key (mode 0600) if it does not exist.

    Several workers may start at once: the key is written to a private temp file and linked
    into place, so every worker reads the same complete key.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(secrets.token_urlsafe(32) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(tmp, path)
                logger.info("created an API key file at %s (mode 0600)", path)
            except FileExistsError:
                pass  # another worker won the race; use its key
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        logger.warning("API key file %s is readable by others (mode %o); chmod 600 it", path, mode)
    keys = tuple(
        line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    )
    if not keys:
        raise RuntimeError(f"API key file {path} is empty; delete it to get a new key")
    return keys


def resolve_api_keys(settings: Settings) -> tuple[str, ...]:
    """The keys in force: ``TRIAGE_API_KEYS``, else the key file (created on first start)."""
    if settings.api_keys:
        logger.info("API keys: %d from TRIAGE_API_KEYS", len(settings.api_keys))
        return settings.api_keys
    keys = ensure_key_file(settings.api_key_file)
    logger.info("API keys: read from %s", settings.api_key_file)
    return keys


def key_matches(candidate: str | None, keys: tuple[str, ...]) -> bool:
    """Constant-time comparison against every key (no early exit on the first match)."""
    if not candidate:
        return False
    given = candidate.encode("utf-8")
    found = False
    for key in keys:
        found |= hmac.compare_digest(given, key.encode("utf-8"))
    return found
