//! Customers' media files as the device keeps them: fetched once from the hub, shown offline.

use rusqlite::{params, OptionalExtension};

use super::{Cache, CacheError};

impl Cache {
    /// A message's media file (its type and bytes), if this device has it.
    pub fn media(&self, message_id: &str) -> Result<Option<(String, Vec<u8>)>, CacheError> {
        Ok(self
            .conn
            .prepare_cached("SELECT mime_type, bytes FROM media WHERE message_id = ?1")?
            .query_row([message_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    pub fn save_media(
        &self,
        message_id: &str,
        mime_type: &str,
        bytes: &[u8],
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), CacheError> {
        self.conn.execute(
            "INSERT INTO media (message_id, mime_type, bytes, fetched_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(message_id) DO NOTHING",
            params![message_id, mime_type, bytes, at.to_rfc3339()],
        )?;
        Ok(())
    }
}
