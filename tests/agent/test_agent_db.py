"""The memory database: schema and migrations, atomic turns, bad files, the read-only /sql, concurrent writers."""

import sqlite3

import numpy as np
import pytest

from mindset.agent import db as dbmod
from mindset.agent.db import FILENAME, MemoryDB, NewMemory
from mindset.errors import MindsetError


def vec(*values):
    return np.array(values, np.float32)


def test_a_new_folder_gets_the_documented_schema(tmp_path):
    db = MemoryDB(tmp_path / "m")
    assert db.version() == dbmod.SCHEMA_VERSION == 2
    assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    columns = {t: [r[1] for r in db.conn.execute(f"PRAGMA table_info({t})")] for t in ("messages", "memories")}
    assert columns["messages"] == ["id", "conversation", "role", "text", "created"]
    assert columns["memories"] == ["id", "text", "kind", "created", "last_accessed", "importance", "embedding", "sources", "cites"]
    db.close()
    again = MemoryDB(tmp_path / "m")  # reopening applies nothing twice
    assert again.version() == 2 and again.count("memories") == 0


def test_a_version_1_file_is_upgraded_keeping_its_memories_and_indexing_their_words(tmp_path, monkeypatch):
    with monkeypatch.context() as patch:
        patch.setattr(dbmod, "MIGRATIONS", dbmod.MIGRATIONS[:1])
        patch.setattr(dbmod, "SCHEMA_VERSION", 1)
        old = MemoryDB(tmp_path)
        old.conn.execute("INSERT INTO memories (text, kind, created, last_accessed, importance, embedding) "
                         "VALUES ('I play the cello', 'observation', 0, 0, 5, x'0000803f')")
        old.close()
    db = MemoryDB(tmp_path)
    assert db.version() == 2
    (memory,) = db.memories(latest=1)
    assert memory.text == "I play the cello" and memory.cites == []
    assert db.lexical("which instrument do I play?")[0].tolist() == [memory.id]  # "play" found through the rebuilt index


def test_the_word_index_follows_inserts_edits_and_deletes(tmp_path):
    db = MemoryDB(tmp_path)
    first = db.add_memory(NewMemory("my cat is called Tom", 5, vec(1, 0)))
    second = db.add_memory(NewMemory("cats and dogs playing", 5, vec(0, 1)))
    ids, scores = db.lexical("what is my cat called?")  # "cat" stems to match "cats"; "called" only in the first
    assert ids.tolist() == [first, second] and scores[0] > scores[1] > 0
    assert db.lexical("what is my")[0].tolist() == []  # stop words alone match nothing
    with db.transaction() as conn:
        conn.execute("UPDATE memories SET text = 'my bird is called Kiwi' WHERE id = ?", (first,))
    assert db.lexical("cat")[0].tolist() == [second] and db.lexical("kiwi")[0].tolist() == [first]
    db.forget(second)
    assert db.lexical("cat")[0].tolist() == []


def test_a_turn_is_stored_whole_with_its_sources(tmp_path):
    db = MemoryDB(tmp_path)
    message_ids, (memory_id,) = db.write_turn("c1", [("user", "I live in Lisbon"), ("assistant", "Nice")],
                                              [NewMemory("I live in Lisbon", 7, vec(1, 2, 3))], sources_from=0)
    (memory,) = db.memories([memory_id])
    assert memory.sources == [message_ids[0]] and memory.importance == 7 and memory.kind == "observation"
    snap = db.snapshot()
    assert snap.ids.tolist() == [memory_id] and np.array_equal(snap.embeddings[0], vec(1, 2, 3))
    blob = db.conn.execute("SELECT embedding FROM memories").fetchone()[0]
    assert np.array_equal(np.frombuffer(blob, "<f4"), vec(1, 2, 3))  # readable from any SQLite tool
    assert [m[2:4] for m in db.messages("c1")] == [("user", "I live in Lisbon"), ("assistant", "Nice")]


def test_a_failing_turn_leaves_nothing_behind(tmp_path):
    db = MemoryDB(tmp_path)
    with pytest.raises(MindsetError, match="kind 'dream'"):
        db.write_turn("c1", [("user", "hi"), ("assistant", "hello")], [NewMemory("hi", 1, vec(1), kind="dream")])
    assert db.count("messages") == 0 and db.count("memories") == 0


def test_migrations_run_in_order_in_one_transaction(tmp_path, monkeypatch):
    MemoryDB(tmp_path).close()
    current = dbmod.SCHEMA_VERSION
    broken = [*dbmod.MIGRATIONS, "CREATE TABLE extra (x INTEGER); CREATE TABLE memories (y INTEGER)"]  # the 2nd fails
    monkeypatch.setattr(dbmod, "MIGRATIONS", broken)
    monkeypatch.setattr(dbmod, "SCHEMA_VERSION", current + 1)
    with pytest.raises(sqlite3.OperationalError, match="already exists"):
        MemoryDB(tmp_path)
    conn = sqlite3.connect(tmp_path / FILENAME)
    assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == current
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'extra'").fetchone()[0] == 0  # rolled back
    fixed = [*dbmod.MIGRATIONS[:current], "CREATE TABLE extra (x INTEGER)"]
    monkeypatch.setattr(dbmod, "MIGRATIONS", fixed)
    assert MemoryDB(tmp_path).version() == current + 1


def test_a_corrupt_file_is_a_one_line_error_naming_it(tmp_path):
    (tmp_path / FILENAME).write_bytes(b"this is not a database" * 100)
    with pytest.raises(MindsetError) as err:
        MemoryDB(tmp_path)
    assert str(tmp_path / FILENAME) in str(err.value) and "not a readable SQLite database" in str(err.value)
    assert "\n" not in str(err.value)


def test_a_foreign_sqlite_file_is_refused_untouched(tmp_path):
    conn = sqlite3.connect(tmp_path / FILENAME)
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(MindsetError, match=r"memory.sqlite is a SQLite database of something else \(tables: users\)"):
        MemoryDB(tmp_path)
    tables = sqlite3.connect(tmp_path / FILENAME).execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    assert tables == [("users",)]


def test_a_newer_schema_and_a_file_in_place_of_the_folder_are_refused(tmp_path, monkeypatch):
    MemoryDB(tmp_path / "m").close()
    monkeypatch.setattr(dbmod, "SCHEMA_VERSION", 0)
    monkeypatch.setattr(dbmod, "MIGRATIONS", [])
    with pytest.raises(MindsetError, match="schema version 2; this mindset reads versions up to 0"):
        MemoryDB(tmp_path / "m")
    (tmp_path / "f").write_text("x")
    with pytest.raises(MindsetError, match="is a file; give a folder"):
        MemoryDB(tmp_path / "f")


@pytest.mark.parametrize("sql", ["INSERT INTO memories (text) VALUES ('x')", "DELETE FROM memories", "UPDATE memories SET text = 'x'",
                                 "DROP TABLE memories", "  -- a comment\n delete from messages", "PRAGMA journal_mode = DELETE", ""])
def test_sql_refuses_write_statements_up_front(tmp_path, sql):
    db = MemoryDB(tmp_path)
    db.add_memory(NewMemory("keep me", 5, vec(1, 0)))
    with pytest.raises(MindsetError, match="read-only queries: .* is refused; start with SELECT or WITH"):
        db.read_only_query(sql)
    assert db.count("memories") == 1


@pytest.mark.parametrize("sql", ["SELECT 1; DELETE FROM memories", "WITH x AS (SELECT 1) DELETE FROM memories",
                                 "WITH x AS (SELECT 1) INSERT INTO memories (text) SELECT 'x' FROM x"])
def test_sql_that_sneaks_a_write_past_the_first_word_is_stopped_by_the_read_only_connection(tmp_path, sql):
    db = MemoryDB(tmp_path)
    db.add_memory(NewMemory("keep me", 5, vec(1, 0)))
    with pytest.raises(MindsetError, match="/sql failed: .*(one statement|readonly|read-only)"):
        db.read_only_query(sql)
    assert db.count("memories") == 1
    assert db.memories(latest=1)[0].text == "keep me"


def test_sql_answers_selects_with_columns_and_a_row_cap(tmp_path):
    db = MemoryDB(tmp_path)
    db.write_turn("c", [("user", f"m{i}") for i in range(5)])
    columns, rows, truncated = db.read_only_query("SELECT id, text FROM messages ORDER BY id", max_rows=3)
    assert columns == ["id", "text"] and rows == [(1, "m0"), (2, "m1"), (3, "m2")] and truncated
    assert db.read_only_query("with t as (select count(*) n from messages) select n from t")[1] == [(5,)]
    with pytest.raises(MindsetError, match="/sql failed: no such table: missing_table"):
        db.read_only_query("SELECT * FROM missing_table")


WRITER = """
import pathlib, sys, time, numpy as np
from mindset.agent.db import MemoryDB, NewMemory
db = MemoryDB(sys.argv[1])
name = sys.argv[2]
folder = pathlib.Path(sys.argv[1])
(folder / f"ready-{name}").touch()
for _ in range(3000):  # start together: wait (at most 30 s) until the other writer is up too
    if name == "child" or len(list(folder.glob("ready-*"))) == 2:
        break
    time.sleep(0.01)
for i in range(int(sys.argv[3])):
    db.write_turn(name, [("user", f"{name} says {i}"), ("assistant", f"ok {i}")],
                  [NewMemory(f"{name} says {i}", 3, np.full(8, i, np.float32))], sources_from=0)
    time.sleep(0.002)  # a chat thinks between turns; without a pause one writer can starve the other
print("done")
"""


def test_two_processes_writing_at_once_lose_nothing(tmp_path, src_path):
    import subprocess
    import sys

    MemoryDB(tmp_path).close()
    env = {"PYTHONPATH": src_path, "PATH": "/usr/bin:/bin"}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), name, "200"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for name in ("a", "b")]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    db = MemoryDB(tmp_path)
    assert db.count("messages") == 800 and db.count("memories") == 400
    assert db.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    for name in ("a", "b"):
        users = [m[3] for m in db.messages(name) if m[2] == "user"]
        assert users == [f"{name} says {i}" for i in range(200)]  # each process's turns whole and in order
    order = [m[1] for m in db.messages()]
    switches = sum(a != b for a, b in zip(order, order[1:]))
    assert all(order[i] == order[i + 1] for i in range(0, 800, 2)) and switches > 1  # turns interleaved, never split
    sources = db.conn.execute("SELECT count(*) FROM memories m JOIN messages u ON u.id = json_extract(m.sources, '$[0]') "
                              "WHERE u.text = m.text AND u.role = 'user'").fetchone()[0]
    assert sources == 400  # every memory cites its own turn's message


def test_a_second_process_reads_what_the_first_wrote(tmp_path, run_python):
    proc = run_python(WRITER, str(tmp_path), "child", "3")
    assert proc.returncode == 0, proc.stderr
    db = MemoryDB(tmp_path)
    assert [m.text for m in db.memories(latest=10)] == ["child says 2", "child says 1", "child says 0"]
