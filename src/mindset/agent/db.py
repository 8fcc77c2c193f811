"""The memory database: one SQLite file (standard-library sqlite3, WAL mode) a user can open with any SQLite tool.

Schema (version 2; `schema_version` holds the version, MIGRATIONS[i] takes version i to i+1):

    messages(id INTEGER PRIMARY KEY, conversation TEXT, role TEXT  -- 'user' | 'assistant' | 'system',
             text TEXT, created REAL)                              -- unix seconds, UTC
    memories(id INTEGER PRIMARY KEY, text TEXT, kind TEXT          -- 'observation' | 'summary' | 'reflection',
             created REAL, last_accessed REAL,                     -- unix seconds: datetime(created, 'unixepoch')
             importance INTEGER                                    -- 1 (mundane) .. 10 (poignant)
             embedding BLOB,                                       -- float32, little-endian, the embedder's width
             sources TEXT,                                         -- JSON list of the message ids it came from
             cites TEXT)                                           -- JSON list of the memory ids it came from (v2;
                                                                   --   a reflection's evidence)
    memories_fts(text)                                             -- v2: FTS5 full-text index of memories.text
                                                                   --   (porter stemmer), kept by triggers; BM25
    settings(key TEXT PRIMARY KEY, value TEXT)                     -- 'embedder': who wrote the embeddings

Concurrency: WAL lets readers run beside one writer; every write takes the write lock up front
(BEGIN IMMEDIATE) and a busy_timeout makes a second process wait for it instead of failing, so two chats
on one folder interleave their turns. A turn (its messages and memories) is one transaction: a crash loses
the turn in flight and never leaves half of one. synchronous=NORMAL (SQLite's advice for WAL) skips the
fsync per commit: a killed process loses no committed turn; a power cut may lose the last few, never the
file's consistency.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mindset.errors import MindsetError

FILENAME = "memory.sqlite"
BUSY_TIMEOUT_MS = 30_000  # a writer waits this long for another process's turn before giving up
MAX_SQL_ROWS = 200
KINDS = ("observation", "summary", "reflection")
ROLES = ("user", "assistant", "system")
PAGE_ORDERS = ("id", "created", "last_accessed", "importance")  # columns MemoryDB.page sorts by
LEXICAL_LIMIT = 200  # BM25 scores read per recall: the best matches; the others count as no match
# English function words: they match nearly every memory and would drown BM25's signal at scale
STOP_WORDS = frozenset("""a an and are as at be been but by can could did do does for from had has have how i i'm if in into is it its
me my mine myself no not of on or our she he her him his so than that the their them then there these they this to us was we were
what when where which who whom why will with would you your yours s t m d ll re ve don""".split())

MIGRATIONS: list[str] = [
    # 0 -> 1: messages, memories, settings
    f"""
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        conversation TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN {ROLES}),
        text TEXT NOT NULL,
        created REAL NOT NULL
    );
    CREATE INDEX messages_by_conversation ON messages (conversation, id);
    CREATE TABLE memories (
        id INTEGER PRIMARY KEY,
        text TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN {KINDS}),
        created REAL NOT NULL,
        last_accessed REAL NOT NULL,
        importance INTEGER NOT NULL CHECK (importance BETWEEN 1 AND 10),
        embedding BLOB NOT NULL,
        sources TEXT NOT NULL DEFAULT '[]'
    );
    CREATE INDEX memories_by_created ON memories (created);
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # 1 -> 2: reflections cite the memories they came from; a full-text index for lexical recall (BM25)
    """
    ALTER TABLE memories ADD COLUMN cites TEXT NOT NULL DEFAULT '[]';
    CREATE VIRTUAL TABLE memories_fts USING fts5(text, content='memories', content_rowid='id', tokenize='porter unicode61');
    CREATE TRIGGER memories_fts_insert AFTER INSERT ON memories BEGIN
        INSERT INTO memories_fts (rowid, text) VALUES (new.id, new.text);
    END;
    CREATE TRIGGER memories_fts_delete AFTER DELETE ON memories BEGIN
        INSERT INTO memories_fts (memories_fts, rowid, text) VALUES ('delete', old.id, old.text);
    END;
    CREATE TRIGGER memories_fts_update AFTER UPDATE OF text ON memories BEGIN
        INSERT INTO memories_fts (memories_fts, rowid, text) VALUES ('delete', old.id, old.text);
        INSERT INTO memories_fts (rowid, text) VALUES (new.id, new.text);
    END;
    INSERT INTO memories_fts (memories_fts) VALUES ('rebuild');
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


@dataclass
class Memory:
    id: int
    text: str
    kind: str
    created: float
    last_accessed: float
    importance: int
    sources: list[int]
    cites: list[int] = field(default_factory=list)


@dataclass
class NewMemory:
    """A memory about to be written: its embedding is a float32 vector of the embedder's width."""

    text: str
    importance: int
    embedding: np.ndarray
    kind: str = "observation"
    sources: Sequence[int] = ()
    cites: Sequence[int] = ()  # memory ids (a reflection's evidence)


@dataclass
class Snapshot:
    """Every memory's recall inputs, as arrays (row i of each is memory ids[i])."""

    ids: np.ndarray  # int64 (N,)
    embeddings: np.ndarray  # float32 (N, D)
    last_accessed: np.ndarray  # float64 (N,)
    importance: np.ndarray  # float64 (N,)


def _connect(target: str, *, uri: bool = False) -> sqlite3.Connection:
    conn = sqlite3.connect(target, uri=uri, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn


class MemoryDB:
    """The agent's SQLite file: opened (and migrated) on construction; a bad file is a one-line error naming it."""

    def __init__(self, folder: str | Path):
        folder = Path(folder)
        if folder.exists() and not folder.is_dir():
            raise MindsetError(f"--memory {folder} is a file; give a folder (the database is {FILENAME} inside it)")
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / FILENAME
        self.conn = _connect(str(self.path))
        try:
            try:  # a file that is not SQLite fails here; a failing migration later is a bug and keeps its traceback
                self.conn.execute("PRAGMA journal_mode = WAL")
                self.conn.execute("PRAGMA synchronous = NORMAL")  # WAL's advice: a crashed process loses no commit
                self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlite3.DatabaseError as err:
                raise MindsetError(f"{self.path} is not a readable SQLite database ({err}); move it away or choose another --memory folder") from None
            self._migrate()
        except BaseException:
            self.conn.close()
            raise

    def close(self) -> None:
        self.conn.close()

    # -- schema ---------------------------------------------------------------------------------------
    def _migrate(self) -> None:
        """Bring the file to SCHEMA_VERSION, applying the missing migrations in one transaction."""
        with self.transaction():
            tables = {row[0] for row in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "schema_version" not in tables:
                if tables:
                    raise MindsetError(f"{self.path} is a SQLite database of something else (tables: {', '.join(sorted(tables))}); "
                                       "move it away or choose another --memory folder")
                self.conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
                self.conn.execute("INSERT INTO schema_version VALUES (0)")
            version = self.version()
            if version > SCHEMA_VERSION:
                raise MindsetError(f"{self.path} has schema version {version}; this mindset reads versions up to {SCHEMA_VERSION}: upgrade mindset")
            for script in MIGRATIONS[version:]:
                for statement in _statements(script):
                    self.conn.execute(statement)
            self.conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))

    def version(self) -> int:
        row = self.conn.execute("SELECT version FROM schema_version").fetchone()
        if row is None:
            raise MindsetError(f"{self.path} has an empty schema_version table; move it away or choose another --memory folder")
        return int(row[0])

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: the write lock is taken first (waiting out other writers), all or nothing."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def changed_elsewhere(self) -> bool:
        """Whether another connection committed since the last call (PRAGMA data_version)."""
        version = self.conn.execute("PRAGMA data_version").fetchone()[0]
        changed = version != getattr(self, "_data_version", None)
        self._data_version = version
        return changed

    # -- settings -------------------------------------------------------------------------------------
    def setting(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_setting(self, key: str, value: str) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT INTO settings VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))

    # -- writes ---------------------------------------------------------------------------------------
    def write_turn(self, conversation: str, messages: Sequence[tuple[str, str]], memories: Sequence[NewMemory] = (),
                   *, sources_from: int | None = None) -> tuple[list[int], list[int]]:
        """(message ids, memory ids) of one turn written in one transaction.

        messages: (role, text) pairs; a memory whose sources are empty cites message `sources_from`
        (an index into `messages`), so an observation can name the message it records.
        """
        now = time.time()
        with self.transaction() as conn:
            message_ids = [conn.execute("INSERT INTO messages (conversation, role, text, created) VALUES (?, ?, ?, ?)",
                                        (conversation, role, text, now)).lastrowid for role, text in messages]
            memory_ids = []
            for memory in memories:
                sources = list(memory.sources) or ([message_ids[sources_from]] if sources_from is not None else [])
                memory_ids.append(self._insert_memory(conn, memory, sources, now))
        return message_ids, memory_ids

    def add_memory(self, memory: NewMemory) -> int:
        return self.write_turn("", [], [memory])[1][0]

    @staticmethod
    def _insert_memory(conn: sqlite3.Connection, memory: NewMemory, sources: list[int], now: float) -> int:
        if memory.kind not in KINDS:
            raise MindsetError(f"memory kind {memory.kind!r} is not one of {', '.join(KINDS)}")
        importance = int(min(10, max(1, round(memory.importance))))
        blob = np.asarray(memory.embedding, dtype="<f4").reshape(-1).tobytes()
        return conn.execute(
            "INSERT INTO memories (text, kind, created, last_accessed, importance, embedding, sources, cites) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (memory.text, memory.kind, now, now, importance, blob, json.dumps([int(s) for s in sources]), json.dumps([int(c) for c in memory.cites])),
        ).lastrowid

    def forget(self, memory_id: int) -> bool:
        """Delete one memory; False when there was none with that id."""
        with self.transaction() as conn:
            return conn.execute("DELETE FROM memories WHERE id = ?", (memory_id,)).rowcount > 0

    def update_memory(self, memory_id: int, *, text: str | None = None, importance: int | None = None,
                      embedding: np.ndarray | None = None) -> bool:
        """Change a memory's text (with its new embedding) and/or importance in one transaction; False when
        there is no such memory. The FTS index follows through its triggers."""
        sets, args = [], []
        if text is not None:
            sets.append("text = ?, embedding = ?")
            args += [text, np.asarray(embedding, dtype="<f4").reshape(-1).tobytes()]
        if importance is not None:
            sets.append("importance = ?")
            args.append(int(min(10, max(1, round(importance)))))
        with self.transaction() as conn:
            found = conn.execute(f"UPDATE memories SET {', '.join(sets) or 'id = id'} WHERE id = ?", [*args, int(memory_id)]).rowcount
        return found > 0

    def touch(self, memory_ids: Sequence[int], when: float | None = None) -> float:
        """Mark memories as accessed now (recalling one refreshes its recency); returns the time written."""
        when = time.time() if when is None else when
        if memory_ids:
            with self.transaction() as conn:
                conn.executemany("UPDATE memories SET last_accessed = ? WHERE id = ?", [(when, int(i)) for i in memory_ids])
        return when

    # -- reads ----------------------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        rows = self.conn.execute("SELECT id, last_accessed, importance, embedding FROM memories ORDER BY id").fetchall()
        if not rows:
            return Snapshot(np.zeros(0, np.int64), np.zeros((0, 0), np.float32), np.zeros(0), np.zeros(0))
        widths = {len(row[3]) for row in rows}
        if len(widths) > 1:
            raise MindsetError(f"{self.path} holds embeddings of different widths ({sorted(w // 4 for w in widths)}); "
                               "they come from different embedders: forget the odd ones or use another --memory folder")
        embeddings = np.frombuffer(b"".join(row[3] for row in rows), dtype="<f4").reshape(len(rows), -1).astype(np.float32)
        return Snapshot(np.array([r[0] for r in rows], np.int64), embeddings,
                        np.array([r[1] for r in rows], np.float64), np.array([r[2] for r in rows], np.float64))

    def memories(self, ids: Sequence[int] | None = None, *, latest: int | None = None) -> list[Memory]:
        """Memories by id (in the order given), or the `latest` ones (newest first)."""
        columns = "id, text, kind, created, last_accessed, importance, sources, cites"
        if ids is not None:
            found = {row[0]: row for row in self.conn.execute(
                f"SELECT {columns} FROM memories WHERE id IN ({','.join('?' * len(ids))})", [int(i) for i in ids])}
            rows = [found[int(i)] for i in ids if int(i) in found]
        else:
            rows = self.conn.execute(f"SELECT {columns} FROM memories ORDER BY created DESC, id DESC LIMIT ?", (latest or -1,)).fetchall()
        return [Memory(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), json.loads(r[7])) for r in rows]

    def page(self, offset: int = 0, limit: int = 20, order: str = "created", descending: bool = True) -> list[Memory]:
        """One page of memories ordered by a column (PAGE_ORDERS), ties by id."""
        if order not in PAGE_ORDERS:
            raise MindsetError(f"order {order!r}: sort memories by one of {', '.join(PAGE_ORDERS)}")
        way = "DESC" if descending else "ASC"
        rows = self.conn.execute(f"SELECT id FROM memories ORDER BY {order} {way}, id {way} LIMIT ? OFFSET ?", (limit, offset)).fetchall()
        return self.memories([r[0] for r in rows])

    def embedding(self, memory_id: int) -> np.ndarray:
        row = self.conn.execute("SELECT embedding FROM memories WHERE id = ?", (int(memory_id),)).fetchone()
        if row is None:
            raise MindsetError(f"there is no memory {memory_id}; /memories lists them with their ids")
        return np.frombuffer(row[0], dtype="<f4").astype(np.float32)

    def lexical(self, text: str, limit: int = LEXICAL_LIMIT) -> tuple[np.ndarray, np.ndarray]:
        """(memory ids, BM25 scores, higher is better) of the `limit` memories sharing the most telling words
        with `text` (FTS5, porter-stemmed, any of the words; stop words left out); the rest score 0."""
        terms = query_terms(text)
        if not terms:
            return np.zeros(0, np.int64), np.zeros(0)
        rows = self.conn.execute("SELECT rowid, -bm25(memories_fts) FROM memories_fts WHERE memories_fts MATCH ? "
                                 "ORDER BY bm25(memories_fts) LIMIT ?", (" OR ".join(f'"{t}"' for t in terms), limit)).fetchall()
        return np.array([r[0] for r in rows], np.int64), np.array([r[1] for r in rows], np.float64)

    def messages(self, conversation: str | None = None, *, latest: int | None = None) -> list[tuple[int, str, str, str, float]]:
        """(id, conversation, role, text, created), oldest first: one conversation's, or the `latest` of all."""
        where, args = ("WHERE conversation = ?", [conversation]) if conversation is not None else ("", [])
        rows = self.conn.execute(f"SELECT id, conversation, role, text, created FROM messages {where} ORDER BY id DESC LIMIT ?",
                                 [*args, latest or -1]).fetchall()
        return rows[::-1]

    def count(self, table: str) -> int:
        if table not in ("messages", "memories"):
            raise ValueError(table)
        return self.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]

    def read_only_query(self, sql: str, max_rows: int = MAX_SQL_ROWS) -> tuple[list[str], list[tuple], bool]:
        """(columns, rows, truncated) of one SELECT run on a separate read-only connection.

        Two locks: a statement that does not start with SELECT or WITH is refused before it runs, and the
        connection is opened with mode=ro (plus query_only), so whatever slips past the first (a
        `WITH ... DELETE`, a second statement) still cannot change the file.
        """
        first = _first_keyword(sql)
        if first not in ("SELECT", "WITH"):
            raise MindsetError(f"/sql runs read-only queries: {first or 'an empty statement'!s} is refused; start with SELECT or WITH")
        conn = _connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            conn.execute("PRAGMA query_only = ON")
            cursor = conn.execute(sql)
            rows = cursor.fetchmany(max_rows + 1)
            columns = [d[0] for d in cursor.description or ()]
        except (sqlite3.Error, sqlite3.Warning) as err:
            raise MindsetError(f"/sql failed: {_one_line(err)}") from None
        finally:
            conn.close()
        return columns, rows[:max_rows], len(rows) > max_rows


def query_terms(text: str) -> list[str]:
    """The words of a recall query worth matching: lower-cased, stop words dropped, each once."""
    words = re.findall(r"[^\W_]+", text.lower())
    return list(dict.fromkeys(w for w in words if w not in STOP_WORDS))


def _first_keyword(sql: str) -> str:
    """The statement's first word, upper-cased, after leading comments and whitespace."""
    text = re.sub(r"^(\s|--[^\n]*(\n|$)|/\*.*?\*/)*", "", sql, flags=re.S)
    match = re.match(r"[A-Za-z]+", text)
    return match.group(0).upper() if match else ""


def _statements(script: str) -> list[str]:
    """A migration split into statements: pieces between semicolons joined until SQLite calls them complete
    (a trigger's BEGIN ... END holds semicolons of its own)."""
    out, buffer = [], ""
    for piece in script.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if buffer.strip(" \n;"):
                out.append(buffer.strip())
            buffer = ""
    return out


def _one_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
