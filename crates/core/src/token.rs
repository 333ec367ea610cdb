//! Where the agent's hub token lives on the device: the OS keychain (Secret Service on Linux,
//! Keychain on Apple platforms, Credential Manager on Windows), one entry per hub URL. When no
//! keychain is reachable this says so; it never falls back to a plain file on its own.

#[derive(Debug, thiserror::Error)]
pub enum TokenStoreError {
    #[error("no OS keychain is available ({0}); on Linux, start a Secret Service such as gnome-keyring and unlock it")]
    Unavailable(String),
    #[error("the keychain refused the operation: {0}")]
    Keychain(String),
}

/// The keychain entry for one hub.
pub struct TokenStore {
    #[cfg(not(target_os = "android"))]
    entry: keyring::Entry,
}

impl std::fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenStore").finish_non_exhaustive()
    }
}

#[cfg(not(target_os = "android"))]
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

// Android has no keychain backend in `keyring` yet; say so rather than keep tokens in memory or a file.
#[cfg(target_os = "android")]
impl TokenStore {
    pub fn keychain(_hub_url: &str) -> Result<Self, TokenStoreError> {
        Err(TokenStoreError::Unavailable(
            "no keystore backend on Android yet".into(),
        ))
    }
    pub fn save(&self, _token: &str) -> Result<(), TokenStoreError> {
        Err(TokenStoreError::Unavailable(
            "no keystore backend on Android yet".into(),
        ))
    }
    pub fn load(&self) -> Result<Option<String>, TokenStoreError> {
        Err(TokenStoreError::Unavailable(
            "no keystore backend on Android yet".into(),
        ))
    }
    pub fn clear(&self) -> Result<(), TokenStoreError> {
        Ok(())
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
}
