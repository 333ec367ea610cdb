//! What the inbox shows: handoff lists, a conversation's messages, the customer panel, the team.

use baton_protocol::{Agent, Contact, Handoff, HandoffStatus, Message, TagList, Template};

use super::{
    json_row, json_rows, Cache, CacheError, CustomerView, HandoffCounts, HandoffSummary,
    HandoffView,
};

impl Cache {
    /// Does the cache know this conversation?
    pub fn has_conversation(&self, conversation_id: &str) -> Result<bool, CacheError> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM conversations WHERE id = ?1")?
            .exists([conversation_id])?)
    }

    pub fn handoff(&self, id: &str) -> Result<Option<Handoff>, CacheError> {
        json_row(&self.conn, "SELECT data FROM handoffs WHERE id = ?1", [id])
    }

    /// The newest handoff of a conversation (its title and status head `show` and exports).
    pub fn latest_handoff(&self, conversation_id: &str) -> Result<Option<Handoff>, CacheError> {
        json_row(
            &self.conn,
            "SELECT data FROM handoffs WHERE conversation_id = ?1
             ORDER BY created_at DESC, rowid DESC LIMIT 1",
            [conversation_id],
        )
    }

    /// How many handoffs each tab holds; `mine` counts those assigned to `me`.
    pub fn counts(&self, me: Option<&str>) -> Result<HandoffCounts, CacheError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT status, assignee, COUNT(*) FROM handoffs GROUP BY status, assignee",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, Option<String>>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, u32>(2)?,
            ))
        })?;
        let mut counts = HandoffCounts::default();
        for row in rows {
            let (status, assignee, n) = row?;
            match status.as_deref() {
                Some("pending") => counts.pending += n,
                Some("assigned") if me.is_some() && assignee.as_deref() == me => counts.mine += n,
                Some("resolved") => counts.resolved += n,
                Some("cancelled") => counts.cancelled += n,
                _ => {}
            }
        }
        Ok(counts)
    }

    /// Handoffs in `statuses` with their customer and last message: the waiting ones most urgent
    /// first, then whoever has waited longest; the others newest first.
    pub fn handoffs(&self, statuses: &[HandoffStatus]) -> Result<Vec<HandoffSummary>, CacheError> {
        let wanted: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
        // One JSON object per row, put together by SQLite: decoded like every other row.
        json_rows(
            &self.conn,
            "SELECT json_object(
                 'handoff', json(h.data),
                 'customer', json_extract(ct.data, '$.name'),
                 'channel_kind', json_extract(c.data, '$.channel_kind'),
                 'last_inbound_at', json_extract(c.data, '$.last_inbound_at'),
                 'last_message', json((SELECT m.data FROM messages m
                                       WHERE m.conversation_id = h.conversation_id
                                       ORDER BY m.created_at DESC, m.rowid DESC LIMIT 1)))
             FROM handoffs h
             LEFT JOIN conversations c ON c.id = h.conversation_id
             LEFT JOIN contacts ct ON ct.id = c.contact_id
             WHERE h.status IN (SELECT value FROM json_each(?1))
             ORDER BY
                 CASE WHEN h.status = 'pending' THEN
                     CASE json_extract(h.data, '$.priority')
                         WHEN 'urgent' THEN 3 WHEN 'high' THEN 2 WHEN 'low' THEN 0 ELSE 1 END
                 END DESC,
                 CASE WHEN h.status = 'pending' THEN h.created_at END ASC,
                 h.created_at DESC, h.rowid DESC",
            [serde_json::to_string(&wanted)?],
        )
    }

    /// Every message of a conversation, oldest first.
    pub fn messages(&self, conversation_id: &str) -> Result<Vec<Message>, CacheError> {
        json_rows(
            &self.conn,
            "SELECT data FROM messages WHERE conversation_id = ?1 ORDER BY created_at, rowid",
            [conversation_id],
        )
    }

    /// The handoffs `view` shows, newest first; `me` is the signed-in agent (for `mine`).
    pub fn view(
        &self,
        view: HandoffView,
        me: Option<&str>,
    ) -> Result<Vec<HandoffSummary>, CacheError> {
        match view {
            HandoffView::Mine => me.map_or(Ok(Vec::new()), |me| self.assigned_to(me)),
            HandoffView::Pending => self.handoffs(&[HandoffStatus::Pending]),
            HandoffView::Assigned => self.handoffs(&[HandoffStatus::Assigned]),
            HandoffView::Resolved => self.handoffs(&[HandoffStatus::Resolved]),
            HandoffView::Cancelled => self.handoffs(&[HandoffStatus::Cancelled]),
        }
    }

    /// Handoffs assigned to `agent_id` that are still open, newest first.
    pub fn assigned_to(&self, agent_id: &str) -> Result<Vec<HandoffSummary>, CacheError> {
        Ok(self
            .handoffs(&[HandoffStatus::Assigned])?
            .into_iter()
            .filter(|s| s.handoff.assignee.as_deref() == Some(agent_id))
            .collect())
    }

    /// The customer panel for a conversation.
    pub fn customer_view(&self, conversation_id: &str) -> Result<CustomerView, CacheError> {
        Ok(CustomerView {
            contact: self.customer(conversation_id)?,
            handoffs: json_rows(
                &self.conn,
                "SELECT h.data FROM handoffs h JOIN conversations c ON c.id = h.conversation_id
                 WHERE h.conversation_id = ?1
                    OR (c.contact_id IS NOT NULL
                        AND c.contact_id = (SELECT contact_id FROM conversations WHERE id = ?1))
                 ORDER BY h.created_at DESC, h.rowid DESC",
                [conversation_id],
            )?,
            // Notes follow the customer: Botpress opens a new conversation for every handoff, and
            // the next agent needs what the last one learnt.
            notes: json_rows(
                &self.conn,
                "SELECT n.data FROM notes n JOIN conversations c ON c.id = n.conversation_id
                 WHERE n.conversation_id = ?1
                    OR (c.contact_id IS NOT NULL
                        AND c.contact_id = (SELECT contact_id FROM conversations WHERE id = ?1))
                 ORDER BY n.created_at, n.rowid",
                [conversation_id],
            )?,
        })
    }

    /// The canned replies, by name.
    pub fn templates(&self) -> Result<Vec<Template>, CacheError> {
        json_rows(&self.conn, "SELECT data FROM templates ORDER BY name", [])
    }

    /// The team's tag list.
    pub fn tags(&self) -> Result<Vec<String>, CacheError> {
        let list: Option<TagList> = json_row(
            &self.conn,
            "SELECT value FROM settings WHERE key = 'tags'",
            [],
        )?;
        Ok(list.map(|l| l.tags).unwrap_or_default())
    }

    /// Everyone on the team, by name.
    pub fn agents(&self) -> Result<Vec<Agent>, CacheError> {
        json_rows(
            &self.conn,
            "SELECT data FROM agents ORDER BY json_extract(data, '$.name')",
            [],
        )
    }

    /// The customer of a conversation, if known.
    pub fn customer(&self, conversation_id: &str) -> Result<Option<Contact>, CacheError> {
        json_row(
            &self.conn,
            "SELECT ct.data FROM conversations c LEFT JOIN contacts ct ON ct.id = c.contact_id
             WHERE c.id = ?1",
            [conversation_id],
        )
    }
}
