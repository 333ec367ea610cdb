//! The admin CLI on a hub's data directory, as an admin would run it.

mod support;

use support::{hub_cli, HubData};

#[test]
fn botpress_add_prints_the_endpoint_path_last_and_never_again() {
    let data = HubData::new();
    assert_eq!(data.endpoint_path.len(), "/botpress/".len() + 64);
    let hub_db = std::fs::read(data.dir.path().join("hub.sqlite")).expect("database");
    let secret = data.endpoint_path.trim_start_matches("/botpress/");
    let leaked = hub_db.windows(secret.len()).any(|w| w == secret.as_bytes());
    assert!(!leaked, "the secret is stored only as a hash");
}

#[test]
fn agent_add_refuses_an_empty_password_and_a_duplicate_email() {
    let data = HubData::new();
    let (ok, _, err) = hub_cli(
        &[
            "agent",
            "add",
            "--data",
            data.path(),
            "--email",
            "bob@example.com",
            "--name",
            "Bob",
        ],
        "",
    );
    assert!(!ok);
    assert!(err.contains("no password on standard input"), "{err}");
    let (ok, _, err) = hub_cli(
        &[
            "agent",
            "add",
            "--data",
            data.path(),
            "--email",
            support::AGENT_EMAIL,
            "--name",
            "Alice 2",
        ],
        "another password",
    );
    assert!(!ok);
    assert!(err.contains("already exists"), "{err}");
}

#[test]
fn agent_add_takes_an_admin_role() {
    let data = HubData::new();
    let (ok, out, err) = hub_cli(
        &[
            "agent",
            "add",
            "--data",
            data.path(),
            "--email",
            "root@example.com",
            "--name",
            "Ro",
            "--role",
            "admin",
        ],
        "long enough password\n",
    );
    assert!(ok, "{err}");
    assert!(out.contains("as admin"), "{out}");
}
