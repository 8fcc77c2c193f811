"""/api/agent: the chat agent's database in the workbench (mindset ui --agent-memory DIR): memories paged and
sorted, recall scores, edit and delete written through mindset.agent (seen by a second Agent on the folder),
and the error paths (no database, a foreign or missing file, a bad sort, an unknown id)."""

import sqlite3

import pytest
from agent_helpers import FACTS, write_agent_folder
from ui_helpers import TOKEN, client_for

from mindset.errors import MindsetError


@pytest.fixture
def folder(tiny_llama, tmp_path):
    return write_agent_folder(tiny_llama, tmp_path / "chat")


@pytest.fixture
def agent_api(bench, folder):
    from mindset.ui.agentdb import AgentMemoryView

    bench.agent_memory = AgentMemoryView(folder, bench.original)
    yield client_for(bench, TOKEN)
    bench.agent_memory.close()


def texts(page) -> list[str]:
    return [m["text"] for m in page["memories"]]


def test_memories_are_paged_and_sorted_by_importance_recency_and_creation(agent_api):
    summary = agent_api.get("/api/agent").json()
    assert summary["enabled"] and summary["memories"] == 5 and summary["path"].endswith("memory.sqlite") and "tiny-llama" in summary["embedder"]
    by_importance = agent_api.get("/api/agent/memories", params={"sort": "importance"}).json()
    assert [m["importance"] for m in by_importance["memories"]] == [10, 8, 6, 4, 2] and by_importance["total"] == 5
    assert texts(agent_api.get("/api/agent/memories", params={"sort": "recency"}).json())[0] == FACTS[0]
    assert texts(agent_api.get("/api/agent/memories", params={"sort": "created", "descending": False}).json()) == FACTS
    second = agent_api.get("/api/agent/memories", params={"sort": "created", "descending": False, "offset": 2, "limit": 2}).json()
    assert texts(second) == FACTS[2:4] and second["total"] == 5
    recency = [m["recency"] for m in by_importance["memories"]]
    assert all(0 < r <= 1.0 for r in recency)


def test_recall_scores_do_not_refresh_recency(agent_api, folder):
    from mindset.agent.db import MemoryDB

    before = {m.id: m.last_accessed for m in MemoryDB(folder).memories()}
    found = agent_api.get("/api/agent/recall", params={"query": "My cat is a grey tabby named Tom.", "k": 3}).json()["memories"]
    assert found[0]["text"] == FACTS[2] and len(found) == 3
    assert [m["score"] for m in found] == sorted((m["score"] for m in found), reverse=True)
    assert {"relevance", "recency_score", "importance_score", "lexical", "cosine"} <= set(found[0])
    assert {m.id: m.last_accessed for m in MemoryDB(folder).memories()} == before


def test_an_edit_is_re_embedded_and_seen_by_another_agent_on_the_folder(agent_api, folder, tiny_llama):
    from mindset.agent import Agent

    memory_id = agent_api.get("/api/agent/memories", params={"sort": "created", "descending": False}).json()["memories"][1]["id"]
    edited = agent_api.post(f"/api/agent/memories/{memory_id}", json={"text": "I moved to Porto by the sea.", "importance": 9}).json()
    assert edited["text"] == "I moved to Porto by the sea." and edited["importance"] == 9
    top = agent_api.get("/api/agent/recall", params={"query": "I moved to Porto by the sea.", "k": 1}).json()["memories"][0]
    assert top["id"] == memory_id and top["cosine"] == pytest.approx(1.0, abs=1e-4)
    other = Agent(tiny_llama, folder, reload=0)  # a chat process on the same folder
    try:
        (recalled, memory), = other.recall("Porto", 1)
        assert memory.id == memory_id and memory.importance == 9
        assert other.db.lexical("Lisbon")[0].tolist() == []  # the full-text index followed the new text
    finally:
        other.close()
    with sqlite3.connect(folder / "memory.sqlite") as conn:  # the file itself, as any SQLite tool reads it
        assert conn.execute("SELECT text FROM memories WHERE id = ?", (memory_id,)).fetchone() == ("I moved to Porto by the sea.",)


def test_delete_removes_the_memory_from_the_file_and_from_recall(agent_api, folder):
    first = agent_api.get("/api/agent/memories", params={"sort": "importance"}).json()["memories"][0]
    assert agent_api.post(f"/api/agent/memories/{first['id']}/delete", json={}).json() == {"deleted": first["id"], "memories": 4}
    with sqlite3.connect(folder / "memory.sqlite") as conn:
        assert conn.execute("SELECT count(*) FROM memories WHERE id = ?", (first["id"],)).fetchone() == (0,)
    found = agent_api.get("/api/agent/recall", params={"query": first["text"], "k": 5}).json()["memories"]
    assert first["id"] not in [m["id"] for m in found] and len(found) == 4
    again = agent_api.post(f"/api/agent/memories/{first['id']}/delete", json={})
    assert again.status_code == 404 and f"no memory {first['id']}" in again.json()["detail"]


def test_bad_requests_are_400_404_or_422(agent_api):
    assert agent_api.get("/api/agent/memories", params={"sort": "hits"}).status_code == 400
    assert "importance, recency, created" in agent_api.get("/api/agent/memories", params={"sort": "hits"}).json()["error"]
    assert agent_api.get("/api/agent/memories", params={"limit": 0}).status_code == 400
    assert agent_api.get("/api/agent/recall", params={"query": "  "}).status_code == 400
    assert agent_api.get("/api/agent/recall", params={"query": "cat", "k": 0}).status_code == 400
    assert agent_api.post("/api/agent/memories/9999", json={"importance": 3}).status_code == 404
    assert agent_api.post("/api/agent/memories/1", json={}).status_code == 400  # changes nothing
    assert agent_api.post("/api/agent/memories/1", json={"importance": 11}).status_code == 422
    assert agent_api.post("/api/agent/memories/1", json={"text": ""}).status_code == 422
    assert agent_api.post("/api/agent/memories/1/delete").status_code == 415  # changes are POST with JSON


def test_without_agent_memory_the_routes_are_404(api):
    assert api.get("/api/agent").json()["enabled"] is False
    answer = api.get("/api/agent/memories")
    assert answer.status_code == 404 and "--agent-memory" in answer.json()["detail"]
    assert client_for(api.app.state.workbench, TOKEN, auth=False).get("/api/agent").status_code == 403


def test_a_foreign_a_corrupt_or_a_missing_database_is_one_line(tmp_path, tiny_llama):
    from mindset.ui.agentdb import AgentMemoryView

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    with sqlite3.connect(foreign / "memory.sqlite") as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "memory.sqlite").write_bytes(b"not a database at all" * 100)
    for folder, words in ((foreign, "something else"), (corrupt, "not a readable SQLite"), (tmp_path / "missing", "holds no memory.sqlite")):
        with pytest.raises(MindsetError) as err:
            AgentMemoryView(folder, tiny_llama)
        assert words in str(err.value) and str(folder) in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "missing").exists()  # nothing was created


def test_a_database_embedded_by_another_model_is_one_line(folder, tiny_gpt2):
    from mindset.ui.agentdb import AgentMemoryView

    with pytest.raises(MindsetError, match="was embedded by 'tiny-llama"):
        AgentMemoryView(folder, tiny_gpt2)


def test_the_cli_option_opens_the_database_and_refuses_a_foreign_one(cli, tmp_path, folder, monkeypatch):
    import mindset.serve.net

    served = []
    monkeypatch.setattr(mindset.serve.net, "run", lambda app, sock: served.append(app))
    code, out, err = cli("ui", "tiny-llama", "--port", "0", "--root", str(tmp_path / "root"), "--agent-memory", str(folder))
    assert code == 0, err
    assert "5 memories" in err and served[0].state.workbench.agent_memory.summary()["memories"] == 5
    served[0].state.workbench.agent_memory.close()
    code, out, err = cli("ui", "tiny-llama", "--port", "0", "--root", str(tmp_path / "root"), "--agent-memory", str(tmp_path / "nowhere"))
    assert code == 2 and "holds no memory.sqlite" in err and len(err.strip().splitlines()) == 1
