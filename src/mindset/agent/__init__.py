"""An assistant that remembers: conversation memory in SQLite, recalled by relevance, recency and importance."""

from mindset.agent.agent import Agent
from mindset.agent.db import MemoryDB, NewMemory
from mindset.agent.recall import MemoryIndex, RecallWeights

__all__ = ["Agent", "MemoryDB", "MemoryIndex", "NewMemory", "RecallWeights"]
