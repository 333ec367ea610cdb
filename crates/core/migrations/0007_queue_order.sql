-- The queue's order without reading each handoff's JSON: its priority as a number (urgent 3,
-- high 2, normal 1, low 0), and an index that walks a status in queue order.
ALTER TABLE handoffs ADD COLUMN priority_rank INTEGER NOT NULL DEFAULT 1;
UPDATE handoffs SET priority_rank = CASE json_extract(data, '$.priority')
    WHEN 'urgent' THEN 3 WHEN 'high' THEN 2 WHEN 'low' THEN 0 ELSE 1 END;
CREATE INDEX handoffs_queue ON handoffs(status, priority_rank DESC, created_at);
