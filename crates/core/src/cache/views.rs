//! What the inbox shows: handoff lists, a conversation's messages, the customer panel, the team.

use baton_protocol::{Agent, Contact, Handoff, HandoffStatus, Message, TagList, Template};

use super::{
    json_row, json_rows, Cache, CacheError, CustomerView, HandoffCounts, HandoffFilter,
    HandoffPage, HandoffSort, HandoffSummary, HandoffView,
};
use rusqlite::{params, OptionalExtension};

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

    /// How many handoffs each list holds; `mine` and `unread` are for `me`.
    pub fn counts(&self, me: Option<&str>) -> Result<HandoffCounts, CacheError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT h.status, h.assignee, COUNT(*),
                 SUM(CASE WHEN h.status IN ('pending', 'assigned') AND (r.unread = 1
                     OR c.last_customer_at > COALESCE(r.read_at, '')) THEN 1 ELSE 0 END)
             FROM handoffs h
             LEFT JOIN conversations c ON c.id = h.conversation_id
             LEFT JOIN reads r ON r.conversation_id = h.conversation_id AND r.agent_id = ?1
             GROUP BY h.status, h.assignee",
        )?;
        let rows = stmt.query_map([me.unwrap_or("")], |r| {
            Ok((
                r.get::<_, Option<String>>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, u32>(2)?,
                r.get::<_, Option<u32>>(3)?.unwrap_or(0),
            ))
        })?;
        let mut counts = HandoffCounts::default();
        for row in rows {
            let (status, assignee, n, unread) = row?;
            let mine = me.is_some() && assignee.as_deref() == me;
            match status.as_deref() {
                Some("pending") => {
                    counts.pending += n;
                    counts.open += n;
                    counts.unread += unread;
                }
                Some("assigned") => {
                    counts.open += n;
                    if mine {
                        counts.mine += n;
                        counts.unread += unread;
                    }
                }
                Some("resolved") => counts.resolved += n,
                Some("cancelled") => counts.cancelled += n,
                _ => {}
            }
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT t.value, COUNT(*) FROM handoffs h, json_each(h.tags) t
             WHERE h.status IN ('pending', 'assigned') GROUP BY t.value",
        )?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?)))? {
            let (tag, n) = row?;
            counts.tags.insert(tag, n);
        }
        Ok(counts)
    }

    /// Handoffs in `statuses` with their customer and last message: the waiting ones most urgent
    /// first, then whoever has waited longest; the others newest first.
    pub fn handoffs(&self, statuses: &[HandoffStatus]) -> Result<Vec<HandoffSummary>, CacheError> {
        let wanted: Vec<HandoffStatus> = statuses.to_vec();
        Ok(self
            .page(&wanted, None, &HandoffFilter::default(), 0, u32::MAX)?
            .rows)
    }

    /// One window of a list: handoffs in `statuses` that pass `filter`, in its order, `limit`
    /// rows from `offset` on, with the total that match. `me` is the signed-in agent (whose
    /// read marks say what is unread).
    pub fn page(
        &self,
        statuses: &[HandoffStatus],
        me: Option<&str>,
        filter: &HandoffFilter,
        offset: u32,
        limit: u32,
    ) -> Result<HandoffPage, CacheError> {
        use rusqlite::types::ToSql;
        let wanted: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
        // Only the joins and conditions a filter needs: the common list reads `handoffs` alone.
        // ?1 is the signed-in agent (whose read marks say what is unread; a query that does not
        // ask may leave it unused, as the statuses, ?2, always follow it); ?2 the statuses.
        let mut args: Vec<Box<dyn ToSql>> = vec![
            Box::new(me.unwrap_or("").to_string()),
            Box::new(serde_json::to_string(&wanted)?),
        ];
        let mut conds = vec!["h.status IN (SELECT value FROM json_each(?2))".to_string()];
        let arg = |value: Box<dyn ToSql>, args: &mut Vec<Box<dyn ToSql>>| {
            args.push(value);
            format!("?{}", args.len())
        };
        let (mut with_conversation, mut with_reads) = (false, false);
        if let Some(tag) = &filter.tag {
            let p = arg(Box::new(tag.clone()), &mut args);
            conds.push(format!(
                "EXISTS (SELECT 1 FROM json_each(h.tags) t WHERE t.value = {p})"
            ));
        }
        if let Some(kind) = filter.channel_kind.as_deref() {
            // Botpress conversations carry no channel kind.
            let kind = if kind == "botpress" { "" } else { kind };
            let p = arg(Box::new(kind.to_string()), &mut args);
            conds.push(format!(
                "COALESCE(json_extract(c.data, '$.channel_kind'), '') = {p}"
            ));
            with_conversation = true;
        }
        if let Some(agent) = &filter.agent {
            let p = arg(Box::new(agent.clone()), &mut args);
            conds.push(format!("h.assignee = {p}"));
        }
        if let Some(priority) = filter.priority {
            let rank = match priority {
                baton_protocol::Priority::Urgent => 3,
                baton_protocol::Priority::High => 2,
                baton_protocol::Priority::Normal => 1,
                baton_protocol::Priority::Low => 0,
            };
            let p = arg(Box::new(rank), &mut args);
            conds.push(format!("h.priority_rank = {p}"));
        }
        if filter.unread {
            conds.push(
                "(r.unread = 1 OR (h.status IN ('pending', 'assigned')
                    AND c.last_customer_at > COALESCE(r.read_at, '')))"
                    .to_string(),
            );
            with_conversation = true;
            with_reads = true;
        }
        let mut from = String::from("FROM handoffs h");
        if with_conversation {
            from.push_str(" LEFT JOIN conversations c ON c.id = h.conversation_id");
        }
        if with_reads {
            from.push_str(
                " LEFT JOIN reads r ON r.conversation_id = h.conversation_id AND r.agent_id = ?1",
            );
        }
        let matching = format!("{from} WHERE {}", conds.join(" AND "));
        let params = || rusqlite::params_from_iter(args.iter().map(|a| a.as_ref()));
        let count_sql = format!("SELECT COUNT(*) {matching}");
        let total: u32 = self
            .conn
            .prepare_cached(&count_sql)?
            .query_row(params(), |r| r.get(0))?;
        let order = match filter.sort {
            HandoffSort::Waiting => {
                "CASE WHEN h.status = 'pending' THEN h.priority_rank END DESC,
                 CASE WHEN h.status = 'pending' THEN h.created_at END ASC,
                 h.created_at DESC, h.rowid DESC"
            }
            HandoffSort::Newest => "h.created_at DESC, h.rowid DESC",
            HandoffSort::Oldest => "h.created_at ASC, h.rowid ASC",
        };
        // The window's rows are picked from cheap columns first; only they are then put together
        // as JSON (with their last message), by SQLite, and decoded like every other row. ORDER BY
        // with LIMIT keeps only the window's rows while sorting; numbering every row with
        // row_number() first sorted all of them, twice (50 ms instead of 4 for 40 of 10,000).
        let (limit_arg, offset_arg) = (args.len() + 1, args.len() + 2);
        let sql = format!(
            "WITH win AS (
                 SELECT h.rowid AS rid
                 {matching}
                 ORDER BY {order} LIMIT ?{limit_arg} OFFSET ?{offset_arg})
             SELECT json_object(
                 'handoff', json(h.data),
                 'customer', json_extract(ct.data, '$.name'),
                 'channel_kind', json_extract(c.data, '$.channel_kind'),
                 'last_inbound_at', json_extract(c.data, '$.last_inbound_at'),
                 'unread', json(CASE WHEN r.unread = 1 OR (h.status IN ('pending', 'assigned')
                     AND c.last_customer_at > COALESCE(r.read_at, '')) THEN 'true' ELSE 'false' END),
                 'last_message', json((SELECT m.data FROM messages m
                                       WHERE m.conversation_id = h.conversation_id
                                       ORDER BY m.created_at DESC, m.rowid DESC LIMIT 1)))
             FROM win
             JOIN handoffs h ON h.rowid = win.rid
             LEFT JOIN conversations c ON c.id = h.conversation_id
             LEFT JOIN contacts ct ON ct.id = c.contact_id
             LEFT JOIN reads r ON r.conversation_id = h.conversation_id AND r.agent_id = ?1
             ORDER BY {order}",
        );
        let (limit, offset_value) = (i64::from(limit), i64::from(offset));
        let window = args
            .iter()
            .map(|a| a.as_ref())
            .chain([&limit as &dyn ToSql, &offset_value as &dyn ToSql]);
        Ok(HandoffPage {
            total,
            offset,
            rows: json_rows(&self.conn, &sql, rusqlite::params_from_iter(window))?,
        })
    }

    /// Every message of a conversation, oldest first.
    pub fn messages(&self, conversation_id: &str) -> Result<Vec<Message>, CacheError> {
        json_rows(
            &self.conn,
            "SELECT data FROM messages WHERE conversation_id = ?1 ORDER BY created_at, rowid",
            [conversation_id],
        )
    }

    /// The handoffs `view` shows, in the list's order; `me` is the signed-in agent (for `mine`).
    pub fn view(
        &self,
        view: HandoffView,
        me: Option<&str>,
    ) -> Result<Vec<HandoffSummary>, CacheError> {
        Ok(self
            .view_page(view, me, &HandoffFilter::default(), 0, u32::MAX)?
            .rows)
    }

    /// One window of what `view` shows, narrowed by `filter`.
    pub fn view_page(
        &self,
        view: HandoffView,
        me: Option<&str>,
        filter: &HandoffFilter,
        offset: u32,
        limit: u32,
    ) -> Result<HandoffPage, CacheError> {
        use HandoffStatus::*;
        let (statuses, filter): (&[HandoffStatus], HandoffFilter) = match view {
            HandoffView::Mine => {
                let Some(me) = me else {
                    return Ok(HandoffPage {
                        total: 0,
                        offset,
                        rows: Vec::new(),
                    });
                };
                let mut mine = filter.clone();
                mine.agent = Some(me.to_string());
                (&[Assigned], mine)
            }
            HandoffView::Pending => (&[Pending], filter.clone()),
            HandoffView::Open => (&[Pending, Assigned], filter.clone()),
            HandoffView::Assigned => (&[Assigned], filter.clone()),
            HandoffView::Resolved => (&[Resolved], filter.clone()),
            HandoffView::Cancelled => (&[Cancelled], filter.clone()),
        };
        self.page(statuses, me, &filter, offset, limit)
    }

    /// Handoffs assigned to `agent_id` that are still open, newest first.
    pub fn assigned_to(&self, agent_id: &str) -> Result<Vec<HandoffSummary>, CacheError> {
        self.view(HandoffView::Mine, Some(agent_id))
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

impl Cache {
    /// Shows the conversation read by `me` on this device before the hub confirms it; `true` if
    /// it was unread (the customer wrote since, or it was marked unread).
    pub fn mark_read_here(
        &mut self,
        me: &str,
        conversation_id: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, CacheError> {
        let tx = self.conn.transaction()?;
        let found: Option<(bool, Option<String>)> = tx
            .prepare_cached(
                "SELECT r.unread = 1 OR c.last_customer_at > COALESCE(r.read_at, ''),
                        c.last_customer_at
                 FROM conversations c
                 LEFT JOIN reads r ON r.conversation_id = c.id AND r.agent_id = ?1
                 WHERE c.id = ?2",
            )?
            .query_row(params![me, conversation_id], |r| {
                Ok((r.get::<_, Option<bool>>(0)?.unwrap_or(false), r.get(1)?))
            })
            .optional()?;
        let (unread, last_customer_at) = found.unwrap_or((false, None));
        if unread {
            // Read up to the customer's last message, by the hub's clock that stamped it (this
            // device's clock may run ahead, which would hide the next message).
            let read_at = last_customer_at
                .and_then(|at| chrono::DateTime::parse_from_rfc3339(&at).ok())
                .map_or(now, |at| at.with_timezone(&chrono::Utc));
            super::apply::put_read_mark(
                &tx,
                &baton_protocol::ReadMark {
                    agent_id: me.to_string(),
                    conversation_id: conversation_id.to_string(),
                    read_at,
                    unread: false,
                },
            )?;
        }
        tx.commit()?;
        Ok(unread)
    }
}

impl Cache {
    /// This device's notification settings (the defaults until the agent changes them).
    pub fn notification_settings(&self) -> Result<crate::prefs::NotificationSettings, CacheError> {
        let saved: Option<crate::prefs::NotificationSettings> = json_row(
            &self.conn,
            "SELECT value FROM settings WHERE key = 'notifications'",
            [],
        )?;
        Ok(saved.unwrap_or_default())
    }

    pub fn set_notification_settings(
        &self,
        settings: &crate::prefs::NotificationSettings,
    ) -> Result<(), CacheError> {
        self.conn
            .prepare_cached(
                "INSERT INTO settings (key, value) VALUES ('notifications', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            )?
            .execute([serde_json::to_string(settings)?])?;
        Ok(())
    }
}

/// Who this device's copy belongs to, kept in `sync_state`: the hub it came from and the agent
/// signed in.
impl Cache {
    /// The hub this copy came from (`solo` for the desk's own), if it was recorded.
    pub fn hub_of_copy(&self) -> Result<Option<String>, CacheError> {
        Ok(self
            .conn
            .prepare_cached("SELECT value FROM sync_state WHERE key = 'hub'")?
            .query_row([], |r| r.get(0))
            .optional()?)
    }

    /// Makes this copy `hub`'s: a copy recorded as another hub's starts afresh first (none of it
    /// belongs to this one); answers whether it did. The same team's addresses, added to or
    /// reordered, are the same hub: its copy and its queued work stay.
    pub fn adopt_hub(&mut self, hub: &str) -> Result<bool, CacheError> {
        let known = self.hub_of_copy()?;
        let afresh = known
            .as_deref()
            .is_some_and(|k| !crate::client::shares_an_address(k, hub));
        if afresh {
            self.start_afresh()?;
        }
        self.conn
            .prepare_cached(
                "INSERT INTO sync_state (key, value) VALUES ('hub', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            )?
            .execute([hub])?;
        Ok(afresh)
    }

    /// The signed-in agent, so other agents' read marks change nothing this device shows.
    pub fn set_me(&self, agent_id: &str) -> Result<(), CacheError> {
        self.conn
            .prepare_cached(
                "INSERT INTO sync_state (key, value) VALUES ('me', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            )?
            .execute([agent_id])?;
        Ok(())
    }
}

impl Cache {
    /// The team's figures for handoffs that came in from `since` until `until`, counted as the
    /// hub counts them, from this device's copy (offline too). Channels are named by their kind
    /// (`Botpress`, `WhatsApp`, `Bot`; the hub alone knows their names), with a short id when a
    /// kind has several.
    pub fn report(
        &self,
        since: chrono::DateTime<chrono::Utc>,
        until: chrono::DateTime<chrono::Utc>,
        by: baton_protocol::report::ReportGroup,
    ) -> Result<Vec<baton_protocol::report::ReportRow>, CacheError> {
        let handoffs: Vec<(Handoff, Option<String>)> = {
            let mut stmt = self.conn.prepare_cached(
                "SELECT h.data, json_extract(c.data, '$.channel_kind') FROM handoffs h
                 LEFT JOIN conversations c ON c.id = h.conversation_id
                 WHERE h.created_at >= ?1 AND h.created_at < ?2",
            )?;
            let rows = stmt.query_map(params![since.to_rfc3339(), until.to_rfc3339()], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (data, kind) = row?;
                let h: Handoff = serde_json::from_str(&data)?;
                // The stored text compares as times only roughly (fractions vary): check exactly.
                if h.created_at >= since && h.created_at < until && !h.for_draft {
                    out.push((h, kind));
                }
            }
            out
        };
        let agents: std::collections::BTreeMap<String, String> =
            self.agents()?.into_iter().map(|a| (a.id, a.name)).collect();
        let kind_name = |kind: Option<&str>| match kind {
            Some("whatsapp") => "WhatsApp",
            Some("bot") => "Bot",
            _ => "Botpress",
        };
        let mut channels: std::collections::BTreeMap<String, &str> = Default::default();
        for (h, kind) in &handoffs {
            channels.insert(h.channel_id.clone(), kind_name(kind.as_deref()));
        }
        let channel_name = |id: &str| {
            let kind = channels.get(id).copied().unwrap_or("Botpress");
            if channels.values().filter(|k| **k == kind).count() > 1 {
                let short: String = id
                    .chars()
                    .rev()
                    .take(6)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                format!("{kind} …{short}")
            } else {
                kind.to_string()
            }
        };
        let mut replies = self.conn.prepare_cached(
            "SELECT created_at FROM messages
             WHERE conversation_id = ?1 AND json_extract(data, '$.author') = 'agent'",
        )?;
        let mut tally = baton_protocol::report::Tally::default();
        for (h, _) in &handoffs {
            let times: Vec<chrono::DateTime<chrono::Utc>> = replies
                .query_map([&h.conversation_id], |r| r.get::<_, String>(0))?
                .filter_map(|t| t.ok())
                .filter_map(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| t.with_timezone(&chrono::Utc))
                .collect();
            let key = by.key(h, channel_name, |id| {
                agents.get(id).cloned().unwrap_or_else(|| id.to_string())
            });
            tally.add(key, h, &times);
        }
        Ok(tally.rows())
    }
}
