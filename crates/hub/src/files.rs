//! Files the hub keeps: agents' uploads (named by their sha256) and customers' media fetched from
//! WhatsApp (named by their message). A hub on SQLite keeps them in its data directory. Hubs on
//! PostgreSQL keep them in the database, so that a file uploaded through one instance is there for
//! whichever instance sends it or an agent asks it from; an instance's `--data`, when given, holds
//! a copy of what it has read, which spares the database a second read.

use std::path::{Path, PathBuf};

use sha2::Digest;

use crate::error::ApiError;
use crate::store::Read;
use crate::Hub;

/// What a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// An agent's upload, by its sha256 in hex.
    Upload,
    /// A customer's media file, by the id of the message it came with.
    Media,
}

impl FileKind {
    /// Its name in a database that keeps files ([`crate::store::Store::put_file`]).
    pub(crate) fn name(self, id: &str) -> String {
        match self {
            FileKind::Upload => format!("uploads/{id}"),
            FileKind::Media => format!("media/{id}"),
        }
    }

    /// Where the data directory keeps it (`DATA/media/uploads/<sha256>`, `DATA/media/<id>`).
    fn path(self, hub: &Hub, id: &str) -> Option<PathBuf> {
        let dir = hub.media_dir()?;
        Some(match self {
            FileKind::Upload => dir.join("uploads").join(id),
            FileKind::Media => dir.join(id),
        })
    }
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "files: cannot {what}");
    ApiError::Unavailable(format!("the hub cannot {what} right now"))
}

/// Keeps `bytes` as `id` (blocking: the database, the disk). Kept already: nothing is written.
pub fn keep_blocking(hub: &Hub, kind: FileKind, id: &str, bytes: &[u8]) -> Result<(), ApiError> {
    let store = hub.store();
    let path = kind.path(hub, id);
    if store.keeps_files() {
        let name = kind.name(id);
        let kept = store
            .reader()
            .and_then(|read| read.file_size(&name))
            .map_err(|e| unavailable("store the file", e))?;
        if kept.is_none() {
            store
                .put_file(&name, bytes)
                .map_err(|e| unavailable("store the file", e))?;
        }
        // This instance's copy: a convenience, never needed.
        if let Some(path) = path.filter(|p| !p.exists()) {
            let _ = write_aside(hub, &path, bytes);
        }
        return Ok(());
    }
    let path = path.ok_or_else(|| ApiError::Unavailable("this hub keeps no files".into()))?;
    if path.exists() {
        return Ok(());
    }
    write_aside(hub, &path, bytes).map_err(|e| unavailable("store the file", e))
}

/// A kept file's bytes (blocking).
pub fn read_blocking(hub: &Hub, kind: FileKind, id: &str) -> Result<Option<Vec<u8>>, ApiError> {
    let path = kind.path(hub, id);
    let store = hub.store();
    let local = path.as_ref().and_then(|p| std::fs::read(p).ok());
    if let Some(bytes) = local {
        // Where the database has it too, a local copy that is not what it should be (cut short
        // by a crash) is read from the database again.
        if !store.keeps_files() || intact(kind, id, &bytes) {
            return Ok(Some(bytes));
        }
        tracing::warn!(upload = %id, "files: this instance's copy of an upload is damaged; reading the database's");
    }
    if !store.keeps_files() {
        return Ok(None);
    }
    let bytes = store
        .file(&kind.name(id))
        .map_err(|e| unavailable("read the file", e))?;
    if let (Some(bytes), Some(path)) = (&bytes, path) {
        // (Over a damaged copy: the rename replaces it.)
        let _ = write_aside(hub, &path, bytes);
    }
    Ok(bytes)
}

/// A kept file's size (blocking), without reading it, through `read`: a transaction asks its own
/// connection, never waiting on another while it holds the log.
pub fn size_blocking(
    hub: &Hub,
    read: &dyn Read,
    kind: FileKind,
    id: &str,
) -> Result<Option<u64>, ApiError> {
    if hub.store().keeps_files() {
        return read
            .file_size(&kind.name(id))
            .map_err(|e| unavailable("read the file", e));
    }
    Ok(kind
        .path(hub, id)
        .and_then(|p| std::fs::metadata(p).ok())
        .map(|meta| meta.len()))
}

/// The files a data directory's `media` holds: agents' uploads in `uploads/` (named by their
/// sha256), customers' media beside it (by message id). A file still being written when a hub
/// stopped (`.partial`) was never used, and is left out.
pub(crate) fn in_media_dir(media: &Path) -> std::io::Result<Vec<(FileKind, String, PathBuf)>> {
    let mut found = Vec::new();
    for (dir, kind) in [
        (media.join("uploads"), FileKind::Upload),
        (media.to_path_buf(), FileKind::Media),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let Some(id) = name.to_str().filter(|n| !n.ends_with(".partial")) else {
                continue;
            };
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                found.push((kind, id.to_string(), entry.path()));
            }
        }
    }
    Ok(found)
}

/// On a hub that keeps files in its database: copies into it what this instance's data directory
/// holds and the database lacks. A version before files were kept in the database kept an
/// instance's uploads and customers' media in its `--data` only, where the other instances could
/// neither send nor serve them. An upload that no longer matches its sha256 is left out. Answers
/// how many files were copied.
pub fn share_local_files(hub: &Hub) -> Result<usize, ApiError> {
    let store = hub.store();
    let Some(media) = hub.media_dir().filter(|_| store.keeps_files()) else {
        return Ok(0);
    };
    let local = in_media_dir(&media).map_err(|e| unavailable("read the data directory", e))?;
    let mut copied = 0;
    for (kind, id, path) in local {
        let name = kind.name(&id);
        let kept = store
            .reader()
            .and_then(|read| read.file_size(&name))
            .map_err(|e| unavailable("read the file", e))?;
        if kept.is_some() {
            continue;
        }
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        if !intact(kind, id.as_str(), &bytes) {
            tracing::warn!(upload = %id, "files: this instance's copy of an upload is damaged; not shared");
            continue;
        }
        store
            .put_file(&name, &bytes)
            .map_err(|e| unavailable("store the file", e))?;
        copied += 1;
    }
    Ok(copied)
}

/// Whether a copy can be trusted to be the file: an upload is named by its sha256 (media cannot
/// be checked, and are taken as they are).
fn intact(kind: FileKind, id: &str, bytes: &[u8]) -> bool {
    kind != FileKind::Upload || hex::encode(sha2::Sha256::digest(bytes)) == id
}

/// [`keep_blocking`], off the async threads.
pub async fn keep(
    hub: &Hub,
    kind: FileKind,
    id: &str,
    bytes: bytes::Bytes,
) -> Result<(), ApiError> {
    let (hub, id) = (hub.clone(), id.to_string());
    tokio::task::spawn_blocking(move || keep_blocking(&hub, kind, &id, &bytes))
        .await
        .map_err(|e| unavailable("store the file", e))?
}

/// [`read_blocking`], off the async threads.
pub async fn read(hub: &Hub, kind: FileKind, id: &str) -> Result<Option<Vec<u8>>, ApiError> {
    let (hub, id) = (hub.clone(), id.to_string());
    tokio::task::spawn_blocking(move || read_blocking(&hub, kind, &id))
        .await
        .map_err(|e| unavailable("read the file", e))?
}

/// Writes a file aside and renames it into place: a half-written file is never served or sent.
fn write_aside(hub: &Hub, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("a file path without a directory"))?;
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let partial = dir.join(format!("{name}.{}.partial", hub.new_id("p")));
    let written = (|| {
        let mut file = std::fs::File::create(&partial)?;
        std::io::Write::write_all(&mut file, bytes)?;
        // On disk before it takes the name: a crash leaves the old state, not a short file.
        file.sync_all()?;
        // As private as the rest of the directory where the file system allows it.
        let _ = baton_protocol::private_fs::private_file(&partial);
        std::fs::rename(&partial, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written
}

#[cfg(all(test, feature = "test-postgres"))]
mod tests {
    use super::*;

    #[test]
    fn files_an_earlier_version_kept_only_in_one_instances_data_reach_the_other_instances() {
        let url = crate::store::postgres::testing::fresh_database();
        let data = tempfile::tempdir().expect("dir");
        // As an earlier version left them: an agent's upload and a customer's photo in this
        // instance's DATA/media, an upload whose copy was cut short, a file never finished.
        let media = data.path().join("media");
        std::fs::create_dir_all(media.join("uploads")).expect("dirs");
        let upload = b"the agent's invoice".to_vec();
        let sha = hex::encode(sha2::Sha256::digest(&upload));
        std::fs::write(media.join("uploads").join(&sha), &upload).expect("upload");
        let damaged = hex::encode(sha2::Sha256::digest(b"the whole file"));
        std::fs::write(media.join("uploads").join(&damaged), b"the wh").expect("damaged");
        std::fs::write(media.join("wamid.photo"), b"the customer's photo").expect("photo");
        std::fs::write(media.join("wamid.other.p1.partial"), b"half").expect("partial");
        let config = || crate::HubConfig::default();

        let this = Hub::open_postgres(&url, Some(data.path()), crate::SystemClock, config())
            .expect("this instance");
        assert_eq!(share_local_files(&this).expect("share"), 2);
        assert_eq!(
            share_local_files(&this).expect("share again"),
            0,
            "the next start copies nothing twice"
        );

        let other =
            Hub::open_postgres(&url, None, crate::SystemClock, config()).expect("another instance");
        assert_eq!(
            read_blocking(&other, FileKind::Upload, &sha).expect("read"),
            Some(upload)
        );
        assert_eq!(
            read_blocking(&other, FileKind::Media, "wamid.photo").expect("read"),
            Some(b"the customer's photo".to_vec())
        );
        assert_eq!(
            read_blocking(&other, FileKind::Upload, &damaged).expect("read"),
            None,
            "a damaged copy is not shared"
        );
        assert_eq!(
            read_blocking(&other, FileKind::Media, "wamid.other").expect("read"),
            None
        );
    }
}
