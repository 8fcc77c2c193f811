"""The agent folder the /api/agent tests (API and browser) read: a chat's database on tiny-llama."""

import time

FACTS = ["My sister is called Ana.", "I live in Lisbon near the river.", "My cat is a grey tabby named Tom.",
         "I play the cello in an orchestra.", "I am allergic to peanuts."]


def write_agent_folder(loaded, folder):
    """Five memories written by an Agent on `loaded`, importance 2, 4, 6, 8, 10 in FACTS' order, the first
    accessed most recently, the last created last; returns the folder."""
    from mindset.agent import Agent

    agent = Agent(loaded, folder, reload=0)
    ids = [agent.remember(text) for text in FACTS]
    for i, memory_id in enumerate(ids):
        agent.edit(memory_id, importance=2 * (i + 1))
    agent.db.touch([ids[0]], time.time() + 60)
    agent.close()
    return folder
