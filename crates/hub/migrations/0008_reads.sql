-- Where each agent has read each conversation up to (the `read` entity): unread markers that
-- follow the agent across devices.
CREATE TABLE reads (
    agent_id        TEXT NOT NULL REFERENCES agents(id),
    conversation_id TEXT NOT NULL REFERENCES conversations(id),
    data            TEXT NOT NULL,
    PRIMARY KEY (agent_id, conversation_id)
);
