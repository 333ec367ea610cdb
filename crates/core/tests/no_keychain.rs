//! With no keychain reachable the token store says so, instead of quietly keeping the token
//! somewhere weaker. (Its own test binary: it points this process's session bus at nothing.)

use baton_core::{TokenStore, TokenStoreError};

#[test]
fn without_a_keychain_saving_a_token_is_a_clear_error() {
    std::env::set_var(
        "DBUS_SESSION_BUS_ADDRESS",
        "unix:path=/nonexistent/baton-test-bus",
    );
    let result = TokenStore::keychain("http://127.0.0.1:1").and_then(|store| store.save("tok"));
    let err = result.expect_err("no keychain, no save");
    assert!(matches!(err, TokenStoreError::Unavailable(_)), "{err:?}");
    assert!(
        err.to_string().contains("no OS keychain is available"),
        "{err}"
    );
}
