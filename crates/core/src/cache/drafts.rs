//! What the agent was typing, per conversation: kept on the device only.

use rusqlite::{params, OptionalExtension};

use super::{Cache, CacheError};

impl Cache {
    /// Saves what the agent is typing in a conversation (an empty text removes the draft).
    pub fn save_draft(
        &self,
        conversation_id: &str,
        text: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), CacheError> {
        if text.trim().is_empty() {
            self.conn.execute(
                "DELETE FROM drafts WHERE conversation_id = ?1",
                [conversation_id],
            )?;
        } else {
            self.conn.execute(
                "INSERT INTO drafts (conversation_id, text, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(conversation_id) DO UPDATE SET text = excluded.text, updated_at = excluded.updated_at",
                params![conversation_id, text, at.to_rfc3339()],
            )?;
        }
        Ok(())
    }

    pub fn draft(&self, conversation_id: &str) -> Result<Option<String>, CacheError> {
        Ok(self
            .conn
            .query_row(
                "SELECT text FROM drafts WHERE conversation_id = ?1",
                [conversation_id],
                |r| r.get(0),
            )
            .optional()?)
    }
}
