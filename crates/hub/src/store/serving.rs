//! Whether a SQLite hub is serving from a data directory, so that what would lose its messages
//! (copying it elsewhere with `migrate`) can refuse.

use std::path::Path;

use super::StoreError;

/// A SQLite hub serving from a data directory: `baton-hub serve` holds it (a lock on a file in
/// the directory) while it runs, so that `migrate` refuses to copy a hub still taking messages,
/// which would be lost. The system lets go of it when the process ends, however it ends.
#[derive(Debug)]
pub struct Serving {
    _lock: std::fs::File,
}

impl Serving {
    /// Claims `data_dir` for a serving hub; fails with [`std::io::ErrorKind::WouldBlock`] inside
    /// [`StoreError::DataDir`] when a hub serves from it already.
    pub fn claim(data_dir: &Path) -> Result<Self, StoreError> {
        let failed = |source| StoreError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        };
        let mut options = std::fs::OpenOptions::new();
        options.create(true).truncate(false).write(true);
        #[cfg(unix)]
        {
            // As private as the rest of the directory.
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options
            .open(data_dir.join("serving.lock"))
            .map_err(failed)?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _lock: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(failed(std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                "a hub is serving from it",
            ))),
            Err(std::fs::TryLockError::Error(e)) => Err(failed(e)),
        }
    }
}
