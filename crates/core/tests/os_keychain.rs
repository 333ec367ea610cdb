//! The token store against the real OS keychain (Secret Service on Linux). `make test` runs this
//! inside a private D-Bus session with a freshly unlocked gnome-keyring (tests/e2e/session.sh).

use baton_core::token::token_following;
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

#[test]
#[ignore = "needs a Secret Service; make test runs it inside a D-Bus session with gnome-keyring"]
fn adding_an_address_to_a_teams_hub_keeps_the_sign_in_and_another_hub_never_gets_it() {
    let n = std::process::id();
    let first = format!("http://127.0.0.1:1/team-{n}");
    let both = format!("{first},http://127.0.0.1:2/team-{n}");
    let other = format!("http://127.0.0.1:3/team-{n}");
    TokenStore::keychain(&first)
        .expect("keychain entry")
        .save("tok-of-the-team")
        .expect("save");

    assert_eq!(
        token_following(&other, Some(&first)).expect("another hub"),
        None,
        "a hub with no address in common is not given the team's token"
    );
    assert_eq!(
        token_following(&both, Some(&first))
            .expect("the team with a second address")
            .as_deref(),
        Some("tok-of-the-team")
    );
    // Moved, not copied: it is under the new setting, and no longer under the old one.
    let moved = TokenStore::keychain(&both).expect("keychain entry");
    assert_eq!(
        moved.load().expect("load").as_deref(),
        Some("tok-of-the-team")
    );
    let old = TokenStore::keychain(&first).expect("keychain entry");
    assert_eq!(old.load().expect("load"), None);
    moved.clear().expect("clear");
}
