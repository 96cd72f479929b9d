"""The request inbox: feature requests, their suggestions, near-duplicate links and reviews.

SQLite by default (one file under the git-ignored ``var/``; WAL, ``synchronous=FULL`` so an
answered write survives a crash, ``BEGIN IMMEDIATE`` for writes so concurrent workers queue
instead of failing). ``TRIAGE_DATABASE_URL`` may point at PostgreSQL instead: the queries are
SQLAlchemy Core without dialect-specific SQL, JSON is stored as text, timestamps as ISO-8601
UTC strings (which sort like the times they name), and migrations take an advisory lock. The
service tests run the store on both (``tests/service/postgres_testing.py`` starts a throw-away
PostgreSQL cluster); a plain ``postgresql://`` URL uses psycopg 3, which the ``postgres`` extra
installs.

Schema migrations are numbered; ``schema_migrations`` records the ones applied. Add a new one
at the end of ``MIGRATIONS``; never edit one that has shipped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
import unicodedata
from collections.abc import Callable, Collection, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from model import reviewed_sample_id

logger = logging.getLogger(__name__)

metadata = sa.MetaData()

schema_migrations = sa.Table(
    "schema_migrations",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("applied_at", sa.String(40), nullable=False),
)

feature_requests = sa.Table(
    "feature_requests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("received_at", sa.String(40), nullable=False),
    sa.Column("stored_at", sa.String(40), nullable=False),
    sa.Column("title", sa.Text),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("partner", sa.String(200)),
    sa.Column("customer", sa.String(200)),
    sa.Column("source", sa.String(100)),
    sa.Column("lang", sa.String(16), nullable=False),
    sa.Column("model_version", sa.String(100), nullable=False),
    sa.Column("suggestion", sa.Text, nullable=False),  # JSON: the answer given at intake
    sa.Column("suggested_labels", sa.Text, nullable=False),  # JSON list
    sa.Column("suggested_outcome", sa.String(40), nullable=False),
    sa.Column("margin", sa.Float, nullable=False),  # min |score - threshold|: small = unsure
    sa.Column("labels", sa.Text, nullable=False),  # JSON list: reviewed labels, else suggested
    sa.Column("outcome", sa.String(40), nullable=False),  # reviewed outcome, else suggested
    sa.Column("status", sa.String(16), nullable=False),  # pending | reviewed
    sa.Column("current_review_id", sa.Integer),
    sa.Column("demand", sa.Text, nullable=False),  # JSON: counts at intake
    # Chosen at intake (migration 2; null only for older rows until the service backfills):
    # while pending, nothing derived from the suggestion may show (see ``hides_suggestion``).
    sa.Column("blind_review", sa.Boolean),
    # Set when the request was erased (migration 3): the row stays as a tombstone, so its id
    # is never given out again, but everything it said is gone (see ``Store.erase_request``).
    sa.Column("erased_at", sa.String(40)),
    # True on a tombstone whose erasure counted again the demand of the later requests that
    # counted it (migration 6); null on those of erasures before that, until the next start
    # has counted them again (``Store.recount_stale_demand``).
    sa.Column("demand_recounted", sa.Boolean),
    # Title, text, partner, customer and source, case-folded, for ``list_requests(q=...)``
    # (migration 4): SQLite's lower() folds ASCII only, so the folding is done here, alike
    # for both backends.
    sa.Column("search_text", sa.Text),
    sa.Index("ix_feature_requests_received_at", "received_at"),
    sa.Index("ix_feature_requests_status", "status"),
    sa.Index("ix_feature_requests_margin", "margin"),
)

request_links = sa.Table(
    "request_links",
    metadata,
    sa.Column("request_id", sa.Integer, sa.ForeignKey("feature_requests.id"), primary_key=True),
    sa.Column("similar_id", sa.Integer, sa.ForeignKey("feature_requests.id"), primary_key=True),
    sa.Column("similarity", sa.Float, nullable=False),
    sa.Column("model_version", sa.String(100), nullable=False),
    sa.Index("ix_request_links_similar_id", "similar_id"),
)

reviews = sa.Table(
    "reviews",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.Integer, sa.ForeignKey("feature_requests.id"), nullable=False),
    sa.Column("labels", sa.Text, nullable=False),  # JSON list
    sa.Column("outcome", sa.String(40)),
    sa.Column("comment", sa.Text),
    sa.Column("reviewer", sa.String(200), nullable=False),
    sa.Column("blind", sa.Boolean, nullable=False),
    sa.Column("labels_agreed", sa.Boolean, nullable=False),
    sa.Column("outcome_agreed", sa.Boolean),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("idempotency_key", sa.String(200), unique=True),
    sa.Index("ix_reviews_request_id", "request_id"),
)


ERASED = "erased"  # the status of a tombstone (``Store.erase_request``)
not_erased = feature_requests.c.status != ERASED


def _migration_1(conn: Connection) -> None:
    for table in (feature_requests, request_links, reviews):
        table.create(conn, checkfirst=True)


def _migration_2(conn: Connection) -> None:
    # Databases made by migration 1 from this metadata already have the column.
    columns = {c["name"] for c in sa.inspect(conn).get_columns("feature_requests")}
    if "blind_review" not in columns:
        conn.exec_driver_sql("ALTER TABLE feature_requests ADD COLUMN blind_review BOOLEAN")


def _migration_3(conn: Connection) -> None:
    columns = {c["name"] for c in sa.inspect(conn).get_columns("feature_requests")}
    if "erased_at" not in columns:
        conn.exec_driver_sql("ALTER TABLE feature_requests ADD COLUMN erased_at VARCHAR(40)")


def _migration_6(conn: Connection) -> None:
    columns = {c["name"] for c in sa.inspect(conn).get_columns("feature_requests")}
    if "demand_recounted" not in columns:
        conn.exec_driver_sql("ALTER TABLE feature_requests ADD COLUMN demand_recounted BOOLEAN")


_SEARCHED = ("title", "text", "partner", "customer", "source")


def fold(text: str) -> str:
    """Case-folded and composed: "Bäckerei" typed with a combining mark (as pasted from a
    Mac) finds and is found as the composed one, and "ß" as "ss"."""
    return unicodedata.normalize("NFC", text.casefold())


def search_text(record: dict[str, Any]) -> str:
    """What ``q`` is matched against: the request's own words, folded."""
    return fold("\n".join(p for p in (record.get(k) for k in _SEARCHED) if p))


def _migration_4(conn: Connection) -> None:
    columns = {c["name"] for c in sa.inspect(conn).get_columns("feature_requests")}
    if "search_text" not in columns:
        conn.exec_driver_sql("ALTER TABLE feature_requests ADD COLUMN search_text TEXT")
    _fill_search_text(conn, feature_requests.c.search_text.is_(None))


def _migration_5(conn: Connection) -> None:
    _fill_search_text(conn, sa.true())  # again, composed (``fold``)


def _fill_search_text(conn: Connection, which: sa.ColumnElement[bool]) -> None:
    fields = [feature_requests.c[k] for k in ("id", *_SEARCHED)]
    rows = conn.execute(sa.select(*fields).where(which, not_erased)).all()
    if rows:  # one statement for all rows, not a round trip each
        conn.execute(
            feature_requests.update()
            .where(feature_requests.c.id == sa.bindparam("row_id"))
            .values(search_text=sa.bindparam("folded")),
            [{"row_id": row.id, "folded": search_text(dict(row._mapping))} for row in rows],
        )


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[Connection], None]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "inbox: feature_requests, request_links, reviews", _migration_1),
    Migration(2, "feature_requests.blind_review: blind review chosen at intake", _migration_2),
    Migration(3, "feature_requests.erased_at: erasure leaves a tombstone", _migration_3),
    Migration(4, "feature_requests.search_text: searching the inbox", _migration_4),
    Migration(5, "feature_requests.search_text: composed characters", _migration_5),
    Migration(
        6, "feature_requests.demand_recounted: erasures that counted demand again", _migration_6
    ),
)

SCHEMA_VERSION = MIGRATIONS[-1].version
# Ids are ``Integer`` columns: 32-bit on PostgreSQL, which answers a larger bound parameter
# with an error rather than no row. A larger id cannot exist, so lookups treat it as missing.
MAX_ROW_ID = 2**31 - 1
# PostgreSQL: erasures hold this advisory lock alone, intakes share it (``add_request``).
_ERASURE_LOCK = 4711004


# ``service.demand.recount``: a request's decoded row and its links, to its new ``demand``
# and ``suggestion`` (None: nothing to count).
Recount = Callable[[dict[str, Any], list[dict[str, Any]]], dict[str, Any] | None]


class NotFound(LookupError):
    pass


class KeyReused(ValueError):
    """An ``Idempotency-Key`` already stored with a different review (or another request)."""

    def __init__(self, key: str, request_id: int) -> None:
        super().__init__(key)
        self.key = key
        self.request_id = request_id


class Erased(LookupError):
    """The request existed and was erased; only its id and the time of erasure are left."""

    def __init__(self, request_id: int, erased_at: str) -> None:
        super().__init__(request_id)
        self.request_id = request_id
        self.erased_at = erased_at


# What erasure writes over a request: nothing of what it said, who sent it or what the
# model made of it is left; id, times, language and model version stay for counting.
_ERASED_VALUES: dict[str, Any] = {
    "title": None,
    "text": "",
    "partner": None,
    "customer": None,
    "source": None,
    "suggestion": "{}",
    "suggested_labels": "[]",
    "suggested_outcome": "",
    "labels": "[]",
    "outcome": "",
    "margin": 0.0,
    "demand": "{}",
    "current_review_id": None,
    "status": ERASED,
    "search_text": None,
}


def blind_review_selected(request_id: int, share: float) -> bool:
    """A stable pseudo-random ``share`` of request ids is reviewed without the suggestion."""
    digest = hashlib.sha256(f"blind:{request_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < share


# Pending and blind: the suggestion, and all that is derived from it, stays hidden.
hides_suggestion = sa.and_(
    feature_requests.c.blind_review.is_(True), feature_requests.c.status == "pending"
)


def suggestion_hidden(row: dict[str, Any]) -> bool:
    """``hides_suggestion`` for a request already read."""
    return bool(row["blind_review"]) and row["status"] == "pending"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def to_iso(moment: datetime) -> str:
    """UTC, microseconds, ``+00:00``: one format so that strings sort like times."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


_WAL_ATTEMPTS = 300  # 10 ms apart: several seconds for the workers starting at once


def _switch_to_wal(cursor: sqlite3.Cursor) -> None:
    """Put the database in WAL mode, waiting out other connections switching at the same time.

    Switching needs the database file to itself, and SQLite answers "database is locked" at
    once instead of calling the busy handler when another connection is switching too (workers
    starting together on a new file), so try again, briefly.
    """
    for attempt in range(_WAL_ATTEMPTS):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == _WAL_ATTEMPTS - 1:
                raise
            time.sleep(0.01)


def missing_sqlite_file(url: str | sa.engine.URL) -> str | None:
    """The file a SQLite URL names, if it does not exist; None for an existing file, an
    in-memory database or another backend. Opening the store would create it, empty: readers
    of reviews refuse that instead (a mistyped URL would read as "nobody reviewed anything")."""
    parsed = sa.engine.make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or database in (None, "", ":memory:"):
        return None
    return None if Path(database).is_file() else database


def create_db_engine(url: str) -> Engine:
    """An engine with durable, concurrent-safe settings for SQLite, plain for others."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        if parsed.drivername == "postgresql":
            # The `postgres` extra installs psycopg 3; SQLAlchemy's default would be psycopg2.
            parsed = parsed.set(drivername="postgresql+psycopg")
        return sa.create_engine(
            parsed,
            pool_pre_ping=True,
            pool_size=10,
            max_overflow=20,
            hide_parameters=True,
            # Whatever the server's default: add_request's ordering with erasures relies on
            # each statement seeing what committed while the transaction waited for a lock.
            isolation_level="READ COMMITTED",
        )
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        url,
        hide_parameters=True,  # errors would log request texts otherwise
        connect_args={"check_same_thread": False, "timeout": 30},
        pool_size=8,
        max_overflow=16,
    )

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below emit BEGIN; pysqlite's own would be deferred.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA synchronous=FULL")  # a 2xx means the commit is on disk
        cursor.execute("PRAGMA foreign_keys=ON")
        # Erased text is overwritten, not only marked free (Debian builds SQLite with this on;
        # other builds may not).
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # A write transaction takes the write lock up front, so two workers never deadlock
        # upgrading read locks (SQLITE_BUSY without waiting).
        if conn.get_execution_options().get("triage_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    return engine


def _row(row: sa.Row[Any] | None) -> dict[str, Any] | None:
    return dict(row._mapping) if row is not None else None


def _decode_request(row: dict[str, Any]) -> dict[str, Any]:
    for key in ("suggestion", "suggested_labels", "labels", "demand"):
        row[key] = json.loads(row[key])
    return row


def _decode_review(row: dict[str, Any]) -> dict[str, Any]:
    row["labels"] = json.loads(row["labels"])
    return row


def _replayed(
    existing: dict[str, Any], request_id: int, review: dict[str, Any], key: str
) -> dict[str, Any]:
    """The review stored under ``key``, if this call repeats it; else ``KeyReused``."""
    fields = ("labels", "outcome", "comment", "reviewer")
    same = (
        existing["request_id"] == request_id
        and all(existing[field] == review.get(field) for field in fields)
        # Stored blind may be true though the client said false (a withheld suggestion makes
        # any review blind); a client saying blind of a review stored otherwise differs.
        and (bool(existing["blind"]) or not review.get("blind", False))
    )
    if not same:
        raise KeyReused(key, existing["request_id"])
    return existing


class Store:
    """All database access of the service."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_db_engine(url)
        self.dialect = self.engine.dialect.name
        # SQLite has one writer at a time. Threads of one process queue here (instant
        # hand-over) instead of in SQLite's busy handler, which sleeps in coarse steps; other
        # processes are still kept apart by BEGIN IMMEDIATE.
        self._write_lock: AbstractContextManager[object] = (
            threading.Lock() if self.dialect == "sqlite" else nullcontext()
        )
        # The SQLite file, and which file it was (device, inode) when first seen: deleted or
        # replaced while the service runs, the open connections would go on writing into the
        # deleted file, answering 2xx for writes a restart cannot find.
        database = self.engine.url.database if self.dialect == "sqlite" else None
        self._file = Path(database) if database and database != ":memory:" else None
        self._file_id: tuple[int, int] | None = None

    def _check_file(self) -> None:
        """Raise (as the database would: a 503 to the client) if the SQLite file this store
        opened is no longer the one at its path."""
        if self._file is None:
            return
        try:
            stat = os.stat(self._file)
            seen: tuple[int, int] | None = (stat.st_dev, stat.st_ino)
        except FileNotFoundError:
            seen = None
        if self._file_id is None:
            self._file_id = seen
        elif seen != self._file_id:
            raise OperationalError(
                "(the database file was checked)",
                None,
                RuntimeError(
                    f"{self._file} was deleted or replaced while the service ran; writes would "
                    "be lost, so none are taken: restore the file, or restart to use the one there"
                ),
            )

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction that holds the write lock (SQLite) and commits on exit."""
        with self._write_lock:
            self._check_file()
            with (
                self.engine.connect().execution_options(triage_write=True) as conn,
                conn.begin(),
            ):
                yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    # --- schema -----------------------------------------------------------------------------

    def migrate(self) -> int:
        """Apply the migrations not yet applied; safe when several workers start at once."""
        with self.write() as conn:
            if self.dialect == "postgresql":
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(4711003)")
            schema_migrations.create(conn, checkfirst=True)
            applied = set(conn.execute(sa.select(schema_migrations.c.version)).scalars())
            for migration in MIGRATIONS:
                if migration.version in applied:
                    continue
                migration.apply(conn)
                conn.execute(
                    schema_migrations.insert().values(
                        version=migration.version, name=migration.name, applied_at=now_iso()
                    )
                )
                logger.info(
                    "database migrated to schema %d (%s)", migration.version, migration.name
                )
            newest = max(applied | {m.version for m in MIGRATIONS})
        if newest > SCHEMA_VERSION:
            raise RuntimeError(
                f"database schema {newest} is newer than this code ({SCHEMA_VERSION}); "
                "update the service"
            )
        return SCHEMA_VERSION

    def schema_version(self) -> int:
        with self.read() as conn:
            return int(
                conn.execute(sa.select(sa.func.max(schema_migrations.c.version))).scalar() or 0
            )

    def ping(self) -> bool:
        try:
            self._check_file()
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            return True
        except Exception:
            logger.warning("database not reachable", exc_info=True)
            return False

    # --- feature requests ----------------------------------------------------------------

    def add_request(
        self,
        record: dict[str, Any],
        links: list[tuple[int, float]],
        model_version: str,
        blind_share: float = 0.0,
        *,
        mentions: Collection[int] = (),
        revise: Callable[[frozenset[int]], dict[str, Any]] | None = None,
    ) -> tuple[int, bool]:
        """Store one feature request with its suggestion and near-duplicate links.

        Returns its id and whether it was chosen for blind review (``blind_share`` of ids).

        The record was made from requests found before this transaction: its near-duplicates
        (``links``) and the ones its suggestion shows (``mentions``). Any of them erased since
        would outlive its erasure here (in the demand counts, a snippet of its text), so they
        are looked up in the transaction, with erasures kept out until it commits: links to
        erased ones are dropped, and ``revise(erased ids)`` makes the record stored instead.
        """
        with self.write() as conn:
            if self.dialect == "postgresql":
                # Erasures wait for intakes under way and intakes for an erasure under way
                # (SQLite's one writer at a time does the same): an erasure either committed
                # before the look-up below (which, READ COMMITTED, sees what committed while
                # this waited), or comes after this commit and finds what it made. Row locks
                # on the requests referred to could deadlock with an erasure's scrubbing.
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock_shared(_ERASURE_LOCK)))
            referred = {other for other, _ in links} | set(mentions)
            referred = {i for i in referred if 0 < i <= MAX_ROW_ID}
            found = (
                conn.execute(
                    sa.select(feature_requests.c.id, feature_requests.c.erased_at).where(
                        feature_requests.c.id.in_(sorted(referred))
                    )
                ).all()
                if referred
                else []
            )
            alive = {row.id for row in found if row.erased_at is None}
            erased = frozenset(row.id for row in found if row.erased_at is not None)
            links = [(other, sim) for other, sim in links if other in alive]
            if erased and revise is not None:
                record = revise(erased)
            values = dict(record)
            for key in ("suggestion", "suggested_labels", "labels", "demand"):
                values[key] = _json(values[key])
            values.setdefault("stored_at", now_iso())
            values["search_text"] = search_text(record)
            values.setdefault("status", "pending")
            values["blind_review"] = False
            request_id = int(
                conn.execute(
                    feature_requests.insert().values(**values).returning(feature_requests.c.id)
                ).scalar_one()
            )
            blind = blind_review_selected(request_id, blind_share)
            if blind:  # the choice depends on the id, known only now; same transaction
                conn.execute(
                    feature_requests.update()
                    .where(feature_requests.c.id == request_id)
                    .values(blind_review=True)
                )
            if links:
                conn.execute(
                    request_links.insert(),
                    [
                        {
                            "request_id": request_id,
                            "similar_id": other,
                            "similarity": sim,
                            "model_version": model_version,
                        }
                        for other, sim in links
                    ],
                )
        return request_id, blind

    def assign_blind_reviews(self, share: float) -> int:
        """Choose blind review for requests stored before it was chosen at intake; how many."""
        with self.read() as conn:
            ids = (
                conn.execute(
                    sa.select(feature_requests.c.id).where(
                        feature_requests.c.blind_review.is_(None)
                    )
                )
                .scalars()
                .all()
            )
        if not ids:
            return 0
        blind = [i for i in ids if blind_review_selected(int(i), share)]
        with self.write() as conn:
            for value, chosen in ((True, blind), (False, sorted(set(ids) - set(blind)))):
                for start in range(0, len(chosen), 500):
                    conn.execute(
                        feature_requests.update()
                        .where(
                            feature_requests.c.id.in_(chosen[start : start + 500]),
                            feature_requests.c.blind_review.is_(None),
                        )
                        .values(blind_review=value)
                    )
        return len(ids)

    def recount_stale_demand(self, recount: Recount) -> int:
        """Count again the demand of requests that still count erased ones; how many.

        Erasures before 04ff46f deleted the erased request's links but left the demand that
        later requests had stored counting it. Their tombstones are the ones without
        ``demand_recounted``; while one is left, a start reads every stored demand and finds
        the requests to count again exactly: their stored ``similar_requests`` (their links at
        intake, less any erased by then) is more than the links they have left. Then it marks
        those tombstones, so later starts read no demand (only the tombstones, by an index).
        """
        unsettled_erasure = sa.and_(
            feature_requests.c.status == ERASED, feature_requests.c.demand_recounted.is_(None)
        )
        with self.read() as conn:
            unsettled = (
                conn.execute(sa.select(feature_requests.c.id).where(unsettled_erasure))
                .scalars()
                .all()
            )
            if not unsettled:
                return 0
            stale = self._stale_demand(conn)
        with self.write() as conn:
            recounted = self._recount(conn, stale, recount)
            # Only the tombstones read above: one that an older version of the service erases
            # meanwhile stays unmarked, for the next start.
            for start in range(0, len(unsettled), 500):
                conn.execute(
                    feature_requests.update()
                    .where(feature_requests.c.id.in_(unsettled[start : start + 500]))
                    .values(demand_recounted=True)
                )
        return recounted

    def stale_demand(self) -> list[int]:
        """The requests whose stored demand counts more requests than they have links left."""
        with self.read() as conn:
            return self._stale_demand(conn)

    @staticmethod
    def _stale_demand(conn: Connection) -> list[int]:
        links = dict(
            conn.execute(
                sa.select(request_links.c.request_id, sa.func.count()).group_by(
                    request_links.c.request_id
                )
            ).all()
        )
        rows = conn.execute(
            sa.select(feature_requests.c.id, feature_requests.c.demand).where(
                not_erased, feature_requests.c.demand.is_not(None)
            )
        ).all()
        return [
            row.id
            for row in rows
            if (json.loads(row.demand) or {}).get("similar_requests", 0) > links.get(row.id, 0)
        ]

    def get_request(self, request_id: int) -> dict[str, Any]:
        if not 0 < request_id <= MAX_ROW_ID:
            raise NotFound(request_id)
        with self.read() as conn:
            row = _row(
                conn.execute(
                    sa.select(feature_requests).where(feature_requests.c.id == request_id)
                ).first()
            )
            if row is None:
                raise NotFound(request_id)
            if row["status"] == ERASED:
                raise Erased(request_id, row["erased_at"])
            request = _decode_request(row)
            history = [
                _decode_review(dict(r._mapping))
                for r in conn.execute(
                    sa.select(reviews)
                    .where(reviews.c.request_id == request_id)
                    .order_by(reviews.c.id)
                )
            ]
            other = feature_requests.alias("other")
            earlier = conn.execute(
                sa.select(request_links.c.similar_id, request_links.c.similarity, other.c.lang)
                .join(other, other.c.id == request_links.c.similar_id)
                .where(request_links.c.request_id == request_id)
                .order_by(request_links.c.similarity.desc())
            ).all()
            later = conn.execute(
                sa.select(request_links.c.request_id, request_links.c.similarity, other.c.lang)
                .join(other, other.c.id == request_links.c.request_id)
                .where(request_links.c.similar_id == request_id)
                .order_by(request_links.c.request_id)
            ).all()
        request["reviews"] = history
        request["earlier_similar"] = [(int(i), float(s), lang) for i, s, lang in earlier]
        request["later_similar"] = [(int(i), float(s), lang) for i, s, lang in later]
        return request

    def list_requests(
        self,
        status: str | None = None,
        label: str | None = None,
        outcome: str | None = None,
        lang: str | None = None,
        q: str | None = None,
        sort: str = "received_at",
        order: str = "desc",
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of requests matching all given filters, and how many match in all.

        A request that ``hides_suggestion`` has no labels or outcome anyone may see yet: it
        matches no ``label`` or ``outcome`` filter, and sorted by uncertainty it comes after
        every request with a visible margin, in id order. So its place in any list is the same
        whatever the model suggested.
        """
        conditions = [not_erased]
        if status:
            conditions.append(feature_requests.c.status == status)
        if label:
            conditions.append(feature_requests.c.labels.contains(f'"{label}"', autoescape=True))
        if outcome:
            conditions.append(feature_requests.c.outcome == outcome)
        if label or outcome:
            conditions.append(sa.not_(hides_suggestion))
        if lang:
            conditions.append(feature_requests.c.lang == lang)
        for word in fold(q or "").split():  # every word, anywhere, in any order
            conditions.append(feature_requests.c.search_text.contains(word, autoescape=True))
        ordering: list[Any] = []
        if sort == "uncertainty":
            # "uncertainty" sorts the most uncertain (smallest margin) first unless order=desc
            # was asked for explicitly; the route passes the order it means.
            hidden = sa.case((hides_suggestion, 1), else_=0)
            margin = sa.case((hides_suggestion, 0.0), else_=feature_requests.c.margin)
            ordering = [hidden.asc(), margin.asc() if order == "asc" else margin.desc()]
        else:
            column = feature_requests.c.received_at
            ordering = [column.asc() if order == "asc" else column.desc()]
        tiebreak = feature_requests.c.id.asc() if order == "asc" else feature_requests.c.id.desc()
        query = sa.select(feature_requests).where(*conditions)
        with self.read() as conn:
            total = int(
                conn.execute(
                    sa.select(sa.func.count()).select_from(feature_requests).where(*conditions)
                ).scalar_one()
            )
            rows = [
                _decode_request(dict(r._mapping))
                for r in conn.execute(
                    query.order_by(*ordering, tiebreak).limit(limit).offset(offset)
                )
            ]
        return rows, total

    def requests_after(self, last_id: int, limit: int = 5000) -> list[dict[str, Any]]:
        """Requests with ids above ``last_id``, oldest first: feeds the near-duplicate index."""
        return self._comparable_rows(feature_requests.c.id > last_id, limit)

    def requests_among(self, ids: list[int]) -> list[dict[str, Any]]:
        """Those of ``ids`` stored (and committed) by now, oldest first, as ``requests_after``."""
        return self._comparable_rows(feature_requests.c.id.in_(ids), len(ids)) if ids else []

    def _comparable_rows(self, where: Any, limit: int) -> list[dict[str, Any]]:
        with self.read() as conn:
            return [
                dict(r._mapping)
                for r in conn.execute(
                    sa.select(
                        feature_requests.c.id,
                        feature_requests.c.title,
                        feature_requests.c.text,
                        feature_requests.c.partner,
                        feature_requests.c.customer,
                    )
                    .where(where, not_erased)
                    .order_by(feature_requests.c.id)
                    .limit(limit)
                )
            ]

    # --- erasure -------------------------------------------------------------------------

    def erase_request(self, request_id: int, *, recount: Recount) -> dict[str, Any]:
        """Erase what a request said and everything made from it; keep a tombstone.

        In one transaction: its reviews (with their comments and reviewers) and its
        near-duplicate links, both ways, are deleted; the row keeps only its id, times,
        language and model version (``_ERASED_VALUES``), so the id is never reused and a
        later look-up can say it was erased rather than never there; the later requests that
        were linked to it, whose stored demand counted it (and its partner and customer),
        are counted again from the links left: ``recount`` (``service.demand.recount``) gets
        each one's row and those links and gives its new ``demand`` and ``suggestion``; and
        the copies of its text that other requests' stored suggestions hold (as a similar
        past request of a model trained on its review) are cut out of them. A reviewed
        request is no longer exported or collected for retraining from then on.
        """
        if not 0 < request_id <= MAX_ROW_ID:
            raise NotFound(request_id)
        ref = reviewed_sample_id(request_id)
        with self.write() as conn:
            if self.dialect == "postgresql":  # waits for intakes under way (``add_request``)
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_ERASURE_LOCK)))
            row = conn.execute(
                sa.select(feature_requests.c.status, feature_requests.c.erased_at)
                .where(feature_requests.c.id == request_id)
                .with_for_update()
            ).first()
            if row is None:
                raise NotFound(request_id)
            if row.status == ERASED:
                raise Erased(request_id, row.erased_at)
            erased_at = now_iso()
            conn.execute(
                feature_requests.update()
                .where(feature_requests.c.id == request_id)
                .values(**_ERASED_VALUES, erased_at=erased_at, demand_recounted=True)
            )
            removed_reviews = conn.execute(
                reviews.delete().where(reviews.c.request_id == request_id)
            ).rowcount
            counted_it = (
                conn.execute(
                    sa.select(request_links.c.request_id).where(
                        request_links.c.similar_id == request_id
                    )
                )
                .scalars()
                .all()
            )
            removed_links = conn.execute(
                request_links.delete().where(
                    sa.or_(
                        request_links.c.request_id == request_id,
                        request_links.c.similar_id == request_id,
                    )
                )
            ).rowcount
            recounted = self._recount(conn, sorted(set(counted_it)), recount)
            holders = conn.execute(
                sa.select(feature_requests.c.id, feature_requests.c.suggestion).where(
                    feature_requests.c.suggestion.contains(f'"{ref}"', autoescape=True)
                )
            ).all()
            for holder in holders:
                suggestion = json.loads(holder.suggestion)
                suggestion["similar"] = [
                    s for s in suggestion.get("similar") or [] if s.get("id") != ref
                ]
                conn.execute(
                    feature_requests.update()
                    .where(feature_requests.c.id == holder.id)
                    .values(suggestion=_json(suggestion))
                )
        self._truncate_wal()
        return {
            "id": request_id,
            "erased_at": erased_at,
            "reviews_removed": removed_reviews,
            "links_removed": removed_links,
            "demand_recounted": recounted,
            "suggestions_scrubbed": len(holders),
        }

    def _recount(self, conn: Connection, ids: list[int], recount: Recount) -> int:
        """Store the demand of the requests ``ids`` counted again from their links (see
        ``erase_request``); how many. Their rows are locked (PostgreSQL) so that a
        review under way cannot have its outcome overwritten by the suggested one."""
        if not ids:
            return 0
        rows = conn.execute(
            sa.select(
                feature_requests.c.id,
                feature_requests.c.partner,
                feature_requests.c.customer,
                feature_requests.c.lang,
                feature_requests.c.status,
                feature_requests.c.suggestion,
                feature_requests.c.demand,
            )
            .where(feature_requests.c.id.in_(ids), not_erased)
            .order_by(feature_requests.c.id)
            .with_for_update()
        ).all()
        other = feature_requests.alias("other")
        linked: dict[int, list[dict[str, Any]]] = {row.id: [] for row in rows}
        for link in conn.execute(
            sa.select(
                request_links.c.request_id,
                request_links.c.similar_id.label("id"),
                request_links.c.similarity,
                other.c.partner,
                other.c.customer,
                other.c.lang,
            )
            .join(other, other.c.id == request_links.c.similar_id)
            .where(request_links.c.request_id.in_(ids), other.c.status != ERASED)
        ):
            if link.request_id in linked:
                linked[link.request_id].append(dict(link._mapping))
        recounted = 0
        for row in rows:
            request = dict(row._mapping)
            request["suggestion"] = json.loads(row.suggestion)
            request["demand"] = json.loads(row.demand)
            counted = recount(request, linked[row.id])
            if counted is None:
                continue
            suggestion = counted["suggestion"]
            values = {
                "suggestion": _json(suggestion),
                "demand": _json(counted["demand"]),
                "suggested_outcome": suggestion["outcome"],
            }
            if row.status == "pending":  # a reviewed one's outcome is the reviewer's
                values["outcome"] = suggestion["outcome"]
            conn.execute(
                feature_requests.update().where(feature_requests.c.id == row.id).values(**values)
            )
            recounted += 1
        return recounted

    def _truncate_wal(self) -> None:
        """SQLite: copy the log into the database and empty it, so no old copy of an erased
        text stays in the log file (secure_delete has zeroed it in the database). Best
        effort: while another connection reads, the log is emptied at a later checkpoint."""
        if self.dialect != "sqlite":
            return
        raw = self.engine.raw_connection()
        try:
            busy, _, _ = raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if busy:
                logger.info("log not emptied after an erasure (readers); the next checkpoint will")
        finally:
            raw.close()

    def erased_count(self) -> int:
        """How many requests were ever erased: grows by one with each erasure, never shrinks."""
        with self.read() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count())
                    .select_from(feature_requests)
                    .where(feature_requests.c.status == ERASED)
                ).scalar_one()
            )

    def erased_ids(self) -> frozenset[int]:
        with self.read() as conn:
            return frozenset(
                int(i)
                for i in conn.execute(
                    sa.select(feature_requests.c.id).where(feature_requests.c.status == ERASED)
                ).scalars()
            )

    # --- reviews -------------------------------------------------------------------------

    def add_review(
        self, request_id: int, review: dict[str, Any], idempotency_key: str | None = None
    ) -> tuple[dict[str, Any], bool]:
        """Store a review and make it the request's current one; ``(review, created)``.

        A repeated ``idempotency_key`` returns the review stored the first time and stores
        nothing, so a client may retry a review whose answer it did not get. The retry must be
        the same review of the same request: a key stored with anything else raises
        ``KeyReused`` (a client that reuses keys would otherwise lose reviews silently).
        """
        if not 0 < request_id <= MAX_ROW_ID:
            raise NotFound(request_id)
        if idempotency_key:
            existing = self._review_by_key(idempotency_key)
            if existing is not None:
                return _replayed(existing, request_id, review, idempotency_key), False
        try:
            with self.write() as conn:
                # FOR UPDATE (PostgreSQL; SQLite's write lock already covers it): reviews of
                # one request queue, so the one committed last has the highest id and is the
                # request's current review.
                request = conn.execute(
                    sa.select(
                        feature_requests.c.suggested_labels,
                        feature_requests.c.suggested_outcome,
                        feature_requests.c.erased_at,
                        hides_suggestion.label("hidden"),
                    )
                    .where(feature_requests.c.id == request_id)
                    .with_for_update()
                ).first()
                if request is None:
                    raise NotFound(request_id)
                if request.erased_at is not None:
                    raise Erased(request_id, request.erased_at)
                suggested_labels = set(json.loads(request.suggested_labels))
                labels = list(review["labels"])
                outcome = review.get("outcome")
                values = {
                    "request_id": request_id,
                    "labels": _json(labels),
                    "outcome": outcome,
                    "comment": review.get("comment"),
                    "reviewer": review["reviewer"],
                    # The suggestion was withheld from every reviewer until now: blind, whatever
                    # the client says. A client may also report a review it chose to make blind.
                    "blind": bool(review.get("blind", False)) or bool(request.hidden),
                    "labels_agreed": set(labels) == suggested_labels,
                    "outcome_agreed": (
                        None if outcome is None else outcome == request.suggested_outcome
                    ),
                    "created_at": now_iso(),
                    "idempotency_key": idempotency_key,
                }
                review_id = int(
                    conn.execute(
                        reviews.insert().values(**values).returning(reviews.c.id)
                    ).scalar_one()
                )
                conn.execute(
                    feature_requests.update()
                    .where(feature_requests.c.id == request_id)
                    .values(
                        status="reviewed",
                        current_review_id=review_id,
                        labels=_json(labels),
                        outcome=outcome or request.suggested_outcome,
                    )
                )
        except IntegrityError:
            # Two retries with one key raced; the first one's review is the answer.
            if idempotency_key:
                existing = self._review_by_key(idempotency_key)
                if existing is not None:
                    return _replayed(existing, request_id, review, idempotency_key), False
            raise
        values["id"] = review_id
        values["labels"] = labels
        return values, True

    def _review_by_key(self, key: str) -> dict[str, Any] | None:
        with self.read() as conn:
            row = _row(
                conn.execute(sa.select(reviews).where(reviews.c.idempotency_key == key)).first()
            )
        return _decode_review(row) if row else None

    def count_reviews(self) -> int:
        with self.read() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(reviews)).scalar_one())

    def agreement(self) -> tuple[int, int]:
        """``(current reviews, of which agreed with the suggested labels)``."""
        with self.read() as conn:
            row = conn.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.sum(sa.case((reviews.c.labels_agreed, 1), else_=0)),
                ).select_from(
                    reviews.join(
                        feature_requests, feature_requests.c.current_review_id == reviews.c.id
                    )
                )
            ).one()
        return int(row[0] or 0), int(row[1] or 0)

    def reviewed_requests(self, batch: int = 500) -> Iterator[dict[str, Any]]:
        """Every reviewed request with its current review, oldest first, read in pages."""
        last = 0
        joined = feature_requests.join(
            reviews, reviews.c.id == feature_requests.c.current_review_id
        )
        while True:
            with self.read() as conn:
                rows = conn.execute(
                    sa.select(
                        feature_requests.c.id,
                        feature_requests.c.title,
                        feature_requests.c.text,
                        feature_requests.c.lang,
                        feature_requests.c.source,
                        feature_requests.c.partner,
                        feature_requests.c.customer,
                        feature_requests.c.received_at,
                        feature_requests.c.model_version,
                        feature_requests.c.suggested_labels,
                        feature_requests.c.suggested_outcome,
                        reviews.c.labels,
                        reviews.c.outcome,
                        reviews.c.reviewer,
                        reviews.c.blind,
                        reviews.c.created_at.label("reviewed_at"),
                    )
                    .select_from(joined)
                    .where(feature_requests.c.id > last)
                    .order_by(feature_requests.c.id)
                    .limit(batch)
                ).all()
            if not rows:
                return
            for r in rows:
                row = dict(r._mapping)
                row["labels"] = json.loads(row["labels"])
                row["suggested_labels"] = json.loads(row["suggested_labels"])
                yield row
            last = rows[-1].id
