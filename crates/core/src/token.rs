//! Where the agent's hub token lives on the device: the OS keychain (Secret Service on Linux,
//! Keychain on Apple platforms, Credential Manager on Windows), one entry per hub URL. When no
//! keychain is reachable this says so; it never falls back to a plain file on its own. Where the
//! person asks for one (a server, CI), [`TokenFile`] keeps the token in a file only they can read.

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenStoreError {
    #[error("no OS keychain is available ({0}); on Linux, start a Secret Service such as gnome-keyring and unlock it")]
    Unavailable(String),
    #[error("the keychain refused the operation: {0}")]
    Keychain(String),
    #[error("cannot use the token file {path}: {source}")]
    File {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// A token kept in a file readable by its owner only (mode 0600), for machines with no keychain.
#[derive(Debug, Clone)]
pub struct TokenFile {
    path: std::path::PathBuf,
}

impl TokenFile {
    pub fn new(path: impl Into<std::path::PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    pub fn save(&self, token: &str) -> Result<(), TokenStoreError> {
        use std::io::Write;
        let fail = |source| TokenStoreError::File {
            path: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        // Written beside and renamed into place, created 0600 so the token is never readable by
        // others, not even for a moment.
        let tmp = self.path.with_extension("tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp).map_err(fail)?;
        file.write_all(token.as_bytes()).map_err(fail)?;
        file.sync_all().map_err(fail)?;
        std::fs::rename(&tmp, &self.path).map_err(fail)
    }

    pub fn load(&self) -> Result<Option<String>, TokenStoreError> {
        match std::fs::read_to_string(&self.path) {
            Ok(token) if !token.trim().is_empty() => Ok(Some(token.trim().to_string())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(TokenStoreError::File {
                path: self.path.clone(),
                source,
            }),
        }
    }

    pub fn clear(&self) -> Result<(), TokenStoreError> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(TokenStoreError::File {
                path: self.path.clone(),
                source,
            }),
        }
    }
}

/// The token for `hub_url`; when there is none, the one kept under `previous` (the setting
/// this device used before) if that names the same team ([`crate::client::shares_an_address`]):
/// it is moved under `hub_url`, so adding a second address does not sign the agent out.
pub fn token_following(
    hub_url: &str,
    previous: Option<&str>,
) -> Result<Option<String>, TokenStoreError> {
    let store = TokenStore::keychain(hub_url)?;
    if let Some(token) = store.load()? {
        return Ok(Some(token));
    }
    let Some(previous) = previous.filter(|p| {
        p.trim_end_matches('/') != hub_url.trim_end_matches('/')
            && crate::client::shares_an_address(p, hub_url)
    }) else {
        return Ok(None);
    };
    let before = TokenStore::keychain(previous)?;
    let Some(token) = before.load()? else {
        return Ok(None);
    };
    store.save(&token)?;
    // Moved already: an entry left behind under the old setting signs nobody out.
    if let Err(e) = before.clear() {
        tracing::warn!(error = %e, "cannot remove the sign-in kept under the previous hub setting");
    }
    Ok(Some(token))
}

/// The keychain entry for one hub.
pub struct TokenStore {
    #[cfg(not(target_os = "android"))]
    entry: keyring::Entry,
    #[cfg(target_os = "android")]
    entry: keyring_core::Entry,
}

impl std::fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenStore").finish_non_exhaustive()
    }
}

const SERVICE: &str = "baton";

#[cfg(not(target_os = "android"))]
impl TokenStore {
    /// The entry for `hub_url` in the OS keychain.
    pub fn keychain(hub_url: &str) -> Result<Self, TokenStoreError> {
        let entry =
            keyring::Entry::new(SERVICE, hub_url.trim_end_matches('/')).map_err(classify)?;
        Ok(Self { entry })
    }

    pub fn save(&self, token: &str) -> Result<(), TokenStoreError> {
        self.entry.set_password(token).map_err(classify)
    }

    /// The stored token, or `None` when this device never signed in to that hub.
    pub fn load(&self) -> Result<Option<String>, TokenStoreError> {
        match self.entry.get_password() {
            Ok(token) => Ok(Some(token)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(classify(e)),
        }
    }

    pub fn clear(&self) -> Result<(), TokenStoreError> {
        match self.entry.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(classify(e)),
        }
    }
}

#[cfg(not(target_os = "android"))]
fn classify(e: keyring::Error) -> TokenStoreError {
    match e {
        keyring::Error::NoStorageAccess(inner) => TokenStoreError::Unavailable(inner.to_string()),
        keyring::Error::PlatformFailure(inner) => TokenStoreError::Unavailable(inner.to_string()),
        other => TokenStoreError::Keychain(other.to_string()),
    }
}

/// Android: the Android Keystore (through `keyring-core` and `android-native-keyring-store`),
/// set up once per process.
#[cfg(target_os = "android")]
impl TokenStore {
    pub fn keychain(hub_url: &str) -> Result<Self, TokenStoreError> {
        static STORE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
        STORE
            .get_or_init(|| {
                android_native_keyring_store::Store::new()
                    .map(|store| keyring_core::set_default_store(store))
                    .map_err(|e| e.to_string())
            })
            .clone()
            .map_err(TokenStoreError::Unavailable)?;
        let entry =
            keyring_core::Entry::new(SERVICE, hub_url.trim_end_matches('/')).map_err(classify)?;
        Ok(Self { entry })
    }

    pub fn save(&self, token: &str) -> Result<(), TokenStoreError> {
        self.entry.set_password(token).map_err(classify)
    }

    pub fn load(&self) -> Result<Option<String>, TokenStoreError> {
        match self.entry.get_password() {
            Ok(token) => Ok(Some(token)),
            Err(keyring_core::Error::NoEntry) => Ok(None),
            Err(e) => Err(classify(e)),
        }
    }

    pub fn clear(&self) -> Result<(), TokenStoreError> {
        match self.entry.delete_credential() {
            Ok(()) | Err(keyring_core::Error::NoEntry) => Ok(()),
            Err(e) => Err(classify(e)),
        }
    }
}

#[cfg(target_os = "android")]
fn classify(e: keyring_core::Error) -> TokenStoreError {
    match e {
        keyring_core::Error::NoStorageAccess(inner) => {
            TokenStoreError::Unavailable(inner.to_string())
        }
        keyring_core::Error::PlatformFailure(inner) => {
            TokenStoreError::Unavailable(inner.to_string())
        }
        other => TokenStoreError::Keychain(other.to_string()),
    }
}

#[cfg(all(test, not(target_os = "android")))]
mod tests {
    use super::*;

    #[test]
    fn a_saved_token_loads_back_and_clearing_forgets_it() {
        keyring::set_default_credential_builder(keyring::mock::default_credential_builder());
        let store = TokenStore::keychain("http://127.0.0.1:8717/").expect("entry");
        assert_eq!(store.load().expect("load"), None);
        store.save("tok-123").expect("save");
        assert_eq!(store.load().expect("load").as_deref(), Some("tok-123"));
        store.clear().expect("clear");
        assert_eq!(store.load().expect("load"), None);
    }

    #[test]
    fn a_token_file_is_readable_by_its_owner_only() {
        let dir = tempfile::tempdir().expect("dir");
        let file = TokenFile::new(dir.path().join("token"));
        assert_eq!(file.load().expect("load"), None);
        file.save("tok-456").expect("save");
        assert_eq!(file.load().expect("load").as_deref(), Some("tok-456"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(file.path())
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        file.clear().expect("clear");
        assert_eq!(file.load().expect("load"), None);
    }
}
