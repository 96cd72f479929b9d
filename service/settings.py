"""The service's configuration: ``TRIAGE_*`` environment variables read into a frozen dataclass.

Variables (default in brackets):

- ``TRIAGE_MODEL_DIR`` [``<repo>/var/models``]:
  model registry (its ``CURRENT`` is served)
- ``TRIAGE_DATABASE_URL`` [``sqlite:///<repo>/var/triage.sqlite3``]:
  SQLAlchemy URL; PostgreSQL e.g. ``postgresql+psycopg://user:pw@host/db``
- ``TRIAGE_API_KEYS`` [unset]:
  comma-separated keys for writes and admin calls
- ``TRIAGE_API_KEY_FILE`` [``<repo>/var/api-key``]:
  used only when ``TRIAGE_API_KEYS`` is unset (see below)
- ``TRIAGE_SUGGEST_OPEN`` [``true``]:
  ``false``: the suggest calls need a key too
- ``TRIAGE_CORS_ORIGINS`` [empty (CORS off)]:
  comma-separated origins, ``*`` for any
- ``TRIAGE_MAX_TEXT_CHARS`` [``20000``]:
  longest accepted text, in characters (a title has its own limit, 300); at least 1
- ``TRIAGE_BATCH_LIMIT`` [``1000``]:
  most items in one ``/v1/suggest/batch``; at least 1
- ``TRIAGE_MAX_BODY_BYTES`` [``50000000``]:
  larger bodies get 413 before they are read; at least ``TRIAGE_MAX_TEXT_CHARS`` + 11
  (see below)
- ``TRIAGE_RELOAD_INTERVAL`` [``5``]:
  seconds between polls of ``CURRENT`` and of erasures made by other workers (at most a
  day); ``0`` turns polling off
- ``TRIAGE_UNCERTAINTY_BAND`` [``0.1``]:
  a score this close to its threshold is "uncertain" (0 to 0.5)
- ``TRIAGE_SIMILAR_ACROSS_LANGUAGES`` [``2``]:
  most past requests in the other language shown among the similar ones (found in the
  model's German–English concept space); ``0`` leaves them out, which saves about a sixth of
  the service's CPU per suggestion
- ``TRIAGE_DEMAND_SIMILARITY`` [``0.5``]:
  cosine similarity from which two stored requests are near-duplicates
- ``TRIAGE_DEMAND_MIN_PARTNERS`` [``3``]:
  distinct partners from which demand counts as broad; at least 1
- ``TRIAGE_BLIND_REVIEW_SHARE`` [``0.1``]:
  share of inbox requests the review page shows without the suggestion
- ``TRIAGE_LOG_LEVEL`` [``INFO``]:
  ``DEBUG`` also logs request texts

A variable that is unset or empty takes its default; any other value is used as given or
refused. A value that cannot be used (not a number, not finite, out of its range) stops the
service at start with a ``SettingsError`` that names the variable and what it expects; it is
never replaced by the default or by a nearer value. In particular ``0`` is refused (like a
negative value) where it would make the service refuse every request, or flag every one:
``TRIAGE_MAX_TEXT_CHARS``, ``TRIAGE_BATCH_LIMIT`` and ``TRIAGE_MAX_BODY_BYTES`` (every text,
batch or body would be too large; ``0`` does not mean "no limit") and
``TRIAGE_DEMAND_MIN_PARTNERS`` (every request would be broad demand). ``0`` is meaningful
where the list says so (``TRIAGE_RELOAD_INTERVAL``, ``TRIAGE_SIMILAR_ACROSS_LANGUAGES``) and
for ``TRIAGE_UNCERTAINTY_BAND`` and ``TRIAGE_BLIND_REVIEW_SHARE`` (no label uncertain, no
blind reviews).

``TRIAGE_MAX_BODY_BYTES`` must leave room for a text of ``TRIAGE_MAX_TEXT_CHARS`` characters,
else no text could reach the text limit: every long one would be refused for the body's size
instead. The smallest body that carries such a text is ``{"text":"…"}`` with one byte a
character (ASCII), 11 bytes more than the text (``BODY_OVERHEAD``), so a smaller limit is
refused at start. It is not asked to fit every text of that length: a character takes up to 4
bytes in UTF-8 (12 as a JSON escape), and asking for that much would refuse sensible limits.

API key when none is configured: if ``TRIAGE_API_KEYS`` is unset or empty, the service reads
the key file (``TRIAGE_API_KEY_FILE``, default ``<repo>/var/api-key``). If that file does not
exist, the first start creates it with a random key (``secrets.token_urlsafe(32)``), mode 0600,
and logs only its path. Send the key as the ``X-API-Key`` header. To rotate, delete the file
and restart, or set ``TRIAGE_API_KEYS``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from model.predictor import DEFAULT_ACROSS_LANGUAGES
from model.registry import default_model_dir

REPO_ROOT = Path(__file__).resolve().parents[1]
VAR_DIR = REPO_ROOT / "var"  # git-ignored
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class SettingsError(ValueError):
    """A ``TRIAGE_*`` variable that cannot be used; the message names it and the fix."""


def _split(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    if raw.strip().lower() in _TRUE:
        return True
    if raw.strip().lower() in _FALSE:
        return False
    raise SettingsError(f"{name}={raw!r}: use true or false")


def _number(
    env: Mapping[str, str],
    name: str,
    default: float,
    kind: type = float,
    most: float = 1e9,
    least: float = 0,
    why: str = "",
) -> float:
    """``name`` as a ``kind`` from ``least`` to ``most``; ``default`` if unset or empty.

    ``why`` follows the message of a value below ``least``: what it would have done.
    """
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = kind(raw.strip())
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise SettingsError(f"{name}={raw!r}: not {what}") from None
    if not math.isfinite(value):  # nan compares false with everything: it would switch off
        raise SettingsError(f"{name}={raw!r}: must be a finite number")
    if value < least:
        expected = "must not be negative" if least == 0 else f"must be at least {least:g}"
        raise SettingsError(f"{name}={raw!r}: {expected}{why}")
    if value > most:
        raise SettingsError(f"{name}={raw!r}: at most {most:g}")
    return value


def _limit(env: Mapping[str, str], name: str, default: int, refused: str) -> int:
    """A size limit: a whole number of at least 1. ``0`` would refuse ``refused``, so it is
    an error, not "no limit" nor the default."""
    why = f" (0 would refuse {refused}; unset, it is {default})"
    return int(_number(env, name, default, int, least=1, why=why))


# Bytes of the smallest JSON body around a text: ``{"text":""}``.
BODY_OVERHEAD = len(b'{"text":""}')


def _room_for_text(max_text_chars: int, max_body_bytes: int) -> None:
    """Refuse a body limit that no text of ``max_text_chars`` characters fits in."""
    least = max_text_chars + BODY_OVERHEAD
    if max_body_bytes < least:
        raise SettingsError(
            f"TRIAGE_MAX_BODY_BYTES={max_body_bytes} leaves no room for a text of "
            f"TRIAGE_MAX_TEXT_CHARS={max_text_chars} characters (the smallest body with one, "
            f'{{"text":"…"}}, has {least} bytes): set TRIAGE_MAX_BODY_BYTES to at least {least} '
            f"or TRIAGE_MAX_TEXT_CHARS to at most {max_body_bytes - BODY_OVERHEAD}"
        )


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level(raw: str | None) -> str:
    level = (raw or "INFO").strip().upper()
    if level not in _LOG_LEVELS:
        raise SettingsError(f"TRIAGE_LOG_LEVEL={raw!r}: one of {', '.join(_LOG_LEVELS)}")
    return level


def default_database_url() -> str:
    return f"sqlite:///{VAR_DIR / 'triage.sqlite3'}"


def _database_url(raw: str | None) -> str:
    """``TRIAGE_DATABASE_URL``, checked before any worker starts: the store runs on SQLite
    and PostgreSQL only. The message never repeats a password the URL may hold."""
    if raw is None or not raw.strip():
        return default_database_url()
    expected = "expected sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST/DB"
    try:
        url = make_url(raw.strip())
    except ArgumentError:
        raise SettingsError(f"TRIAGE_DATABASE_URL: not a database URL; {expected}") from None
    backend = url.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        shown = url.render_as_string(hide_password=True)
        raise SettingsError(
            f"TRIAGE_DATABASE_URL={shown!r}: {backend!r} is not supported; {expected}"
        )
    return raw.strip()


@dataclass(frozen=True)
class Settings:
    model_dir: Path
    database_url: str
    api_keys: tuple[str, ...] = ()
    api_key_file: Path = VAR_DIR / "api-key"
    suggest_open: bool = True
    cors_origins: tuple[str, ...] = ()
    max_text_chars: int = 20_000
    batch_limit: int = 1_000
    max_body_bytes: int = 50_000_000
    reload_interval: float = 5.0
    uncertainty_band: float = 0.1
    similar_across_languages: int = DEFAULT_ACROSS_LANGUAGES
    demand_similarity: float = 0.5
    demand_min_partners: int = 3
    blind_review_share: float = 0.1
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read ``TRIAGE_*`` variables (default: ``os.environ``); unset ones take the defaults."""
        env = os.environ if env is None else env
        model_dir = env.get("TRIAGE_MODEL_DIR")
        share = _number(env, "TRIAGE_BLIND_REVIEW_SHARE", 0.1)
        if share > 1:
            raise SettingsError(f"TRIAGE_BLIND_REVIEW_SHARE={share}: a share between 0 and 1")
        similarity = _number(env, "TRIAGE_DEMAND_SIMILARITY", 0.5)
        if not 0 < similarity <= 1:
            raise SettingsError(f"TRIAGE_DEMAND_SIMILARITY={similarity}: between 0 and 1")
        max_text_chars = _limit(env, "TRIAGE_MAX_TEXT_CHARS", 20_000, "every text")
        max_body_bytes = _limit(env, "TRIAGE_MAX_BODY_BYTES", 50_000_000, "every body")
        _room_for_text(max_text_chars, max_body_bytes)
        return cls(
            model_dir=Path(model_dir) if model_dir else default_model_dir(),
            database_url=_database_url(env.get("TRIAGE_DATABASE_URL")),
            api_keys=_split(env.get("TRIAGE_API_KEYS")),
            api_key_file=Path(env.get("TRIAGE_API_KEY_FILE") or VAR_DIR / "api-key"),
            suggest_open=_bool(env, "TRIAGE_SUGGEST_OPEN", True),
            cors_origins=_split(env.get("TRIAGE_CORS_ORIGINS")),
            max_text_chars=max_text_chars,
            batch_limit=_limit(env, "TRIAGE_BATCH_LIMIT", 1_000, "every non-empty batch"),
            max_body_bytes=max_body_bytes,
            # A day at most: a longer pause overflows the watcher's timer and stops it.
            reload_interval=_number(env, "TRIAGE_RELOAD_INTERVAL", 5.0, most=86_400),
            uncertainty_band=_number(env, "TRIAGE_UNCERTAINTY_BAND", 0.1, most=0.5),
            similar_across_languages=int(
                _number(env, "TRIAGE_SIMILAR_ACROSS_LANGUAGES", DEFAULT_ACROSS_LANGUAGES, int)
            ),
            demand_similarity=similarity,
            demand_min_partners=int(
                _number(
                    env,
                    "TRIAGE_DEMAND_MIN_PARTNERS",
                    3,
                    int,
                    least=1,
                    why=" (0 would make every request broad demand)",
                )
            ),
            blind_review_share=share,
            log_level=_log_level(env.get("TRIAGE_LOG_LEVEL")),
        )
