//! History and sync state: backfilling older messages (open conversations first), and when the
//! cache was last caught up.

use super::apply::insert_new_message;
use super::{read_state, write_state, Backfill, Cache, CacheError};

impl Cache {
    /// Stores one backfill page (older messages). A message the stream already brought is newer
    /// or the same, so it is left as it is. Returns the progress after this page.
    pub fn apply_backfill(
        &mut self,
        page: &baton_protocol::MessagePage,
        oldest_wanted: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Backfill, CacheError> {
        let tx = self.conn.transaction()?;
        let mut fetched: u64 = read_state(&tx, "backfill_fetched")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut too_old = false;
        for m in &page.messages {
            if oldest_wanted.is_some_and(|cutoff| m.created_at < cutoff) {
                too_old = true;
                continue;
            }
            insert_new_message(&tx, m, &serde_json::to_string(m)?)?;
            fetched += 1;
        }
        let done = too_old || page.next.is_none();
        write_state(&tx, "backfill_fetched", &fetched.to_string())?;
        write_state(&tx, "backfill_total", &page.total.to_string())?;
        match page.next {
            Some(next) if !done => write_state(&tx, "backfill_next", &next.to_string())?,
            _ => write_state(&tx, "backfill_done", "1")?,
        }
        tx.commit()?;
        self.backfill()
    }

    /// Conversations with an open handoff whose history has not been fetched in full yet, with
    /// where their next page starts: backfill does these first, so the work at hand is complete.
    pub fn conversations_to_backfill(&self) -> Result<Vec<(String, Option<i64>)>, CacheError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT DISTINCT h.conversation_id,
                    (SELECT value FROM sync_state WHERE key = 'backfill_conversation:' || h.conversation_id)
             FROM handoffs h WHERE h.status IN ('pending', 'assigned')",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (conversation, state) = row?;
            match state.as_deref() {
                Some("done") => {}
                Some(next) => out.push((conversation, next.parse().ok())),
                None => out.push((conversation, None)),
            }
        }
        Ok(out)
    }

    /// Stores one page of a conversation's history; returns whether that history is complete.
    pub fn apply_conversation_backfill(
        &mut self,
        conversation_id: &str,
        page: &baton_protocol::MessagePage,
    ) -> Result<bool, CacheError> {
        let tx = self.conn.transaction()?;
        for m in &page.messages {
            insert_new_message(&tx, m, &serde_json::to_string(m)?)?;
        }
        let key = format!("backfill_conversation:{conversation_id}");
        let state = page
            .next
            .map_or_else(|| "done".to_string(), |n| n.to_string());
        write_state(&tx, &key, &state)?;
        tx.commit()?;
        Ok(page.next.is_none())
    }

    /// How far the history backfill has got.
    pub fn backfill(&self) -> Result<Backfill, CacheError> {
        let get = |key: &str| -> Result<Option<String>, CacheError> { read_state(&self.conn, key) };
        Ok(Backfill {
            fetched: get("backfill_fetched")?
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            total: get("backfill_total")?.and_then(|v| v.parse().ok()),
            next: get("backfill_next")?.and_then(|v| v.parse().ok()),
            done: get("backfill_done")?.as_deref() == Some("1"),
        })
    }

    /// Records that the cache was caught up with the hub at `at` (shown as "synced up to …").
    pub fn mark_synced(&self, at: chrono::DateTime<chrono::Utc>) -> Result<(), CacheError> {
        write_state(&self.conn, "synced_at", &at.to_rfc3339())
    }

    /// When the cache was last caught up with the hub, if ever.
    pub fn synced_at(&self) -> Result<Option<chrono::DateTime<chrono::Utc>>, CacheError> {
        Ok(read_state(&self.conn, "synced_at")?
            .and_then(|v| chrono::DateTime::parse_from_rfc3339(&v).ok())
            .map(|t| t.with_timezone(&chrono::Utc)))
    }
}
