//! The token store against the real OS keychain (Secret Service on Linux). `make test` runs this
//! inside a private D-Bus session with a freshly unlocked gnome-keyring (tests/e2e/session.sh).

use baton_core::TokenStore;

#[test]
#[ignore = "needs a Secret Service; make test runs it inside a D-Bus session with gnome-keyring"]
fn a_token_round_trips_through_the_os_keychain() {
    let hub = format!("http://127.0.0.1:1/keychain-test-{}", std::process::id());
    let store = TokenStore::keychain(&hub).expect("keychain entry");
    assert_eq!(store.load().expect("load"), None);
    store.save("tok-from-the-real-keychain").expect("save");
    let again = TokenStore::keychain(&hub).expect("keychain entry");
    assert_eq!(
        again.load().expect("load").as_deref(),
        Some("tok-from-the-real-keychain")
    );
    again.clear().expect("clear");
    assert_eq!(store.load().expect("load"), None);
}
