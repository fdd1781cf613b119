"""Forward-only numbered ``.sql`` migrations, one schema per service, applied under an advisory lock.

Each service's schema gets the spine migrations (processed messages, outbox) from
``libs/runtime/sql/`` first, then its own from ``services/<name>/migrations/``. Every track is
recorded in ``<schema>.schema_migrations`` with a checksum; a database that is ahead of the
code, or whose applied file has changed, is refused.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from libs.runtime.logging import get_logger

SPINE = Path(__file__).with_name("sql")
_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
log = get_logger(__name__)


class MigrationError(RuntimeError):
    """The database and the code disagree about the schema; nothing was changed."""


@dataclass(frozen=True)
class Migration:
    track: str
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def read_track(track: str, folder: Path) -> list[Migration]:
    """The migrations in ``folder``, in order; names must be ``NNN_snake_name.sql`` without gaps."""
    migrations = []
    for path in sorted(folder.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path}: migration files are named NNN_snake_name.sql")
        migrations.append(Migration(track, int(match[1]), match[2], path.read_text()))
    for expected, migration in enumerate(migrations, start=1):
        if migration.version != expected:
            raise MigrationError(
                f"{folder}: expected version {expected:03d}, found {migration.version:03d}"
            )
    return migrations


def service_tracks(
    schema: str, service_folder: Path, shared: tuple[str, ...] = ()
) -> list[list[Migration]]:
    """The spine, the shared tracks a service asks for (``libs/runtime/sql/<name>/``), then its own."""
    return [
        read_track("spine", SPINE),
        *(read_track(name, SPINE / name) for name in shared),
        read_track(schema, service_folder / "migrations"),
    ]


async def migrate(database_url: str, schema: str, tracks: list[list[Migration]]) -> list[Migration]:
    """Bring ``schema`` up to date; returns the migrations applied now."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", schema):
        raise MigrationError(f"unsafe schema name {schema!r}")
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            "SELECT pg_advisory_lock(hashtext($1))", f"signgate.migrate.{schema}"
        )
        try:
            return await _apply(connection, schema, tracks)
        finally:
            await connection.execute(
                "SELECT pg_advisory_unlock(hashtext($1))", f"signgate.migrate.{schema}"
            )
    finally:
        await connection.close()


async def _apply(
    connection: asyncpg.Connection, schema: str, tracks: list[list[Migration]]
) -> list[Migration]:
    await connection.execute(
        f"""
        CREATE SCHEMA IF NOT EXISTS {schema};
        CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
            track      text        NOT NULL,
            version    integer     NOT NULL,
            name       text        NOT NULL,
            checksum   text        NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (track, version)
        )
        """
    )
    rows = await connection.fetch(
        f"SELECT track, version, checksum FROM {schema}.schema_migrations"
    )
    applied = {(row["track"], row["version"]): row["checksum"] for row in rows}
    known = {(m.track, m.version): m for track in tracks for m in track}
    ahead = sorted(key for key in applied if key not in known)
    if ahead:
        raise MigrationError(
            f"schema {schema} is ahead of this code: applied {ahead} are unknown here"
        )
    for key, checksum in applied.items():
        if known[key].checksum != checksum:
            raise MigrationError(f"schema {schema}: applied migration {key} was changed since")
    done = []
    for migration in (m for track in tracks for m in track):
        if (migration.track, migration.version) in applied:
            continue
        async with connection.transaction():
            await connection.execute(f"SET LOCAL search_path TO {schema}")
            await connection.execute(migration.sql)
            await connection.execute(
                f"INSERT INTO {schema}.schema_migrations (track, version, name, checksum)"
                " VALUES ($1, $2, $3, $4)",
                migration.track,
                migration.version,
                migration.name,
                migration.checksum,
            )
        log.info(
            "migration applied",
            schema=schema,
            track=migration.track,
            version=migration.version,
            name=migration.name,
        )
        done.append(migration)
    return done
