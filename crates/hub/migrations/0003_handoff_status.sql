-- Pending-timeout sweeps and queue views find waiting handoffs without scanning every handoff.
CREATE INDEX handoffs_by_status ON handoffs(status);
