//! Where Baton keeps data on disk — the hub's database, the app's cache, tokens, logs — only the
//! user who runs it may read it: directories 0700, files 0600 (on Unix; elsewhere the OS's
//! per-user profile folders already are private). Both sides use this, so it lives here beside the
//! types they share.

use std::path::Path;

/// Creates `dir` (and its parents) if needed and makes it private to the current user. A directory
/// that already existed is changed only when it is empty or already holds `marker` (Baton's own
/// file there): pointing Baton at a folder of the user's own (`--data .`) never changes who may
/// read that folder; Baton's files in it are private either way.
pub fn private_dir(dir: &Path, marker: &str) -> std::io::Result<()> {
    let ours = match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none() || dir.join(marker).exists(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir)?;
            true
        }
        Err(e) => return Err(e),
    };
    if ours {
        restrict(dir, 0o700)?;
    }
    Ok(())
}

/// Makes an existing file private to the current user; a missing file is fine.
pub fn private_file(path: &Path) -> std::io::Result<()> {
    match std::fs::metadata(path) {
        Ok(_) => restrict(path, 0o600),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates `path` empty with mode 0600 if it does not exist, so whatever opens it next (SQLite,
/// a log writer) starts from a private file; an existing one is made private.
pub fn private_touch(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?;
    private_file(path)
}

#[cfg(unix)]
fn restrict(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn restrict(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_private_directory_and_file_are_readable_by_their_owner_only() {
        let root = std::env::temp_dir().join(format!("baton-private-{}", std::process::id()));
        let dir = root.join("data");
        private_dir(&dir, "hub.sqlite").expect("dir");
        let file = dir.join("hub.sqlite");
        private_touch(&file).expect("file");
        let mode = |p: &Path| {
            std::fs::metadata(p)
                .map(|m| m.permissions().mode() & 0o777)
                .ok()
        };
        assert_eq!(mode(&dir), Some(0o700));
        assert_eq!(mode(&file), Some(0o600));
        // Someone's own folder, holding other things, keeps its permissions.
        let theirs = root.join("theirs");
        std::fs::create_dir_all(&theirs).expect("theirs");
        restrict(&theirs, 0o755).expect("755");
        std::fs::write(theirs.join("notes.txt"), "x").expect("file");
        private_dir(&theirs, "hub.sqlite").expect("dir");
        assert_eq!(mode(&theirs), Some(0o755));
        let _ = std::fs::remove_dir_all(root);
    }
}
