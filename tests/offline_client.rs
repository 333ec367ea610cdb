//! The offline client end to end: `baton-cli` processes over real `baton-hub` processes, with a fake
//! Botpress webhook counting what reaches the customer. The hub is killed and restarted, the
//! client is killed between send and acknowledgement, a device works offline then reconnects, two
//! devices share an agent, and a cursor falls out of the hub's log.

mod support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::fake_botpress::FakeBotpress;
use support::{Botpress, HubData, HubProcess, AGENT_EMAIL, AGENT_PASSWORD};

fn cli_binary() -> PathBuf {
    let bin = support::hub_binary().with_file_name("baton-cli");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (make test does)",
        bin.display()
    );
    bin
}

/// One device: a baton-cli data directory (the token kept in a 0600 file: CI has no keychain).
struct Device {
    data: tempfile::TempDir,
}

struct Output {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Device {
    fn new() -> Self {
        Self {
            data: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn command(&self, hub: Option<&str>, args: &[&str]) -> Command {
        let mut cmd = Command::new(cli_binary());
        cmd.arg("--data").arg(self.data.path());
        cmd.args(["--token-store", "file"]);
        if let Some(hub) = hub {
            cmd.args(["--hub", hub]);
        }
        cmd.args(args);
        cmd
    }

    fn run_with(&self, hub: Option<&str>, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .command(hub, args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn baton-cli");
        if let Some(mut input) = child.stdin.take() {
            input.write_all(stdin.as_bytes()).expect("stdin");
        }
        let out = child.wait_with_output().expect("baton-cli finished");
        Output {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with(None, args, "")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.ok,
            "baton-cli {args:?} failed: {}{}",
            out.stdout, out.stderr
        );
        out.stdout
    }

    fn login(&self, hub: &str, email: &str) {
        let out = self.run_with(Some(hub), &["login", "--email", email], AGENT_PASSWORD);
        assert!(out.ok, "login failed: {}", out.stderr);
        assert!(out.stdout.contains("signed in"), "{}", out.stdout);
    }

    fn path(&self) -> &Path {
        self.data.path()
    }
}

struct World {
    data: HubData,
    hub: HubProcess,
    botpress: Botpress,
    fake: FakeBotpress,
}

async fn world() -> World {
    let fake = FakeBotpress::start().await;
    let data = HubData::with_webhook(&fake.url());
    let hub = HubProcess::start(&data, support::free_port());
    let botpress = Botpress::new(&hub.url(), &data.endpoint_path);
    World {
        data,
        hub,
        botpress,
        fake,
    }
}

impl World {
    fn restart_hub(&mut self) {
        let port = self.hub.port;
        self.hub.kill();
        self.restart_hub_on(port);
    }

    /// Starts the hub again on `port`, with a fresh Botpress poster (the old one's pooled
    /// connections died with the old process).
    fn restart_hub_on(&mut self, port: u16) {
        self.hub = HubProcess::start(&self.data, port);
        self.botpress = Botpress::new(&self.hub.url(), &self.data.endpoint_path);
    }

    /// How many times `text` reached the customer through Botpress.
    fn deliveries_of(&self, text: &str) -> usize {
        self.fake
            .accepted()
            .iter()
            .filter(|c| c.route == "message-from-agent" && c.body["payload"]["text"] == text)
            .count()
    }

    /// Waits until Botpress has had a `route` call about `conversation`; then how many it had.
    async fn calls_to(&self, route: &str, conversation: &str) -> usize {
        let count = || {
            self.fake
                .accepted()
                .iter()
                .filter(|c| c.route == route && c.body["remoteConversationId"] == conversation)
                .count()
        };
        support::eventually(
            Duration::from_secs(20),
            || count() > 0,
            || format!("no {route} call for {conversation}"),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        count()
    }

    async fn wait_for_delivery(&self, text: &str) {
        support::eventually(
            Duration::from_secs(20),
            || self.deliveries_of(text) > 0,
            || format!("{text:?} never reached Botpress"),
        )
        .await;
        // Long enough for a duplicate to show up if one were coming.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn history_is_searchable_readable_and_exportable_with_the_hub_down() {
    let mut w = world().await;
    let ticket = w
        .botpress
        .hand_off("Crushed parcel", "Dana Reyes", "the parcel arrived crushed")
        .await;
    let device = Device::new();
    device.login(&w.hub.url(), AGENT_EMAIL);
    let synced = device.ok(&["sync"]);
    assert!(synced.contains("synced up to event"), "{synced}");
    assert!(synced.contains("history complete"), "{synced}");
    w.hub.kill();

    let found = device.ok(&["search", "crushed"]);
    let first = found.lines().next().expect("a hit");
    assert!(first.starts_with(&format!("{ticket}\t")), "{found}");
    assert!(found.contains("[crushed]"), "{found}");
    let by_name = device.ok(&["search", "dana", "--status", "pending"]);
    assert!(by_name.starts_with(&ticket), "{by_name}");
    assert!(device
        .ok(&["search", "crushed", "--status", "resolved"])
        .is_empty());

    let shown = device.ok(&["show", &ticket]);
    assert!(shown.contains("Crushed parcel"), "{shown}");
    assert!(
        shown.contains("Dana Reyes: the parcel arrived crushed"),
        "{shown}"
    );

    let json: serde_json::Value =
        serde_json::from_str(&device.ok(&["export", &ticket, "--format", "json"])).expect("json");
    assert_eq!(json["conversation_id"], ticket.as_str());
    assert_eq!(json["messages"][0]["text"], "the parcel arrived crushed");
    assert_eq!(json["customer"]["name"], "Dana Reyes");
    let md = device.ok(&["export", &ticket, "--format", "md"]);
    assert!(md.starts_with("# Crushed parcel"), "{md}");
    assert!(md.contains("> the parcel arrived crushed"), "{md}");

    // Offline, sync says why it cannot work; the token and cache are untouched.
    let offline = device.run(&["sync"]);
    assert!(!offline.ok);
    assert!(
        offline.stderr.contains("cannot reach the hub"),
        "{}",
        offline.stderr
    );
    let unknown = device.run(&["show", "t_nope"]);
    assert!(
        !unknown.ok && unknown.stderr.contains("no conversation"),
        "{}",
        unknown.stderr
    );
}

#[tokio::test]
async fn a_reply_sent_offline_arrives_exactly_once_after_reconnecting() {
    let mut w = world().await;
    let ticket = w
        .botpress
        .hand_off("Refund", "Dana", "where is my refund")
        .await;
    let device = Device::new();
    device.login(&w.hub.url(), AGENT_EMAIL);
    device.ok(&["sync"]);
    let port = w.hub.port;
    w.hub.kill();

    let sent = device.ok(&["send", &ticket, "Your refund left today"]);
    assert!(sent.contains("queued as outbox #"), "{sent}");
    assert!(sent.contains("not delivered yet"), "{sent}");
    let outbox = device.ok(&["outbox"]);
    assert!(outbox.contains("queued\tmessage"), "{outbox}");
    let shown = device.ok(&["show", &ticket]);
    assert!(
        shown.contains("Your refund left today  (pending"),
        "a local echo: {shown}"
    );

    w.restart_hub_on(port);
    let synced = device.ok(&["sync"]);
    assert!(synced.contains("0 queued, 0 failed"), "{synced}");
    w.wait_for_delivery("Your refund left today").await;
    assert_eq!(w.deliveries_of("Your refund left today"), 1);
    // A second sync has nothing left to send.
    device.ok(&["sync"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(w.deliveries_of("Your refund left today"), 1);
    let shown = device.ok(&["show", &ticket]);
    assert!(shown.contains("Alice: Your refund left today"), "{shown}");
    assert!(!shown.contains("pending"), "{shown}");
    assert!(w.fake.violations().is_empty(), "{:?}", w.fake.violations());
}

/// Forwards one connection to the hub but never passes the answer back: the hub applies the
/// command, the client never hears so.
fn swallowing_proxy(hub_port: u16) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("proxy");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let Ok(mut upstream) = std::net::TcpStream::connect(("127.0.0.1", hub_port)) else {
                    return;
                };
                let mut client = client;
                let mut buf = [0u8; 16 * 1024];
                let _ = client.set_read_timeout(Some(Duration::from_millis(500)));
                // Pass the request on; read (and drop) whatever the hub answers.
                loop {
                    match client.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            if upstream.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        Err(_) => break,
                    }
                }
                let mut sink = Vec::new();
                let _ = upstream.set_read_timeout(Some(Duration::from_secs(30)));
                let _ = upstream.read_to_end(&mut sink);
                // Hold the client's socket open until it gives up or is killed.
                std::thread::sleep(Duration::from_secs(60));
            });
        }
    });
    port
}

#[tokio::test]
async fn a_client_killed_between_send_and_ack_delivers_once_on_the_next_sync() {
    let w = world().await;
    let ticket = w.botpress.hand_off("Refund", "Dana", "hello?").await;
    let device = Device::new();
    device.login(&w.hub.url(), AGENT_EMAIL);
    device.ok(&["sync"]);

    let proxy = format!("http://127.0.0.1:{}", swallowing_proxy(w.hub.port));
    let mut sending: Child = device
        .command(Some(&proxy), &["send", &ticket, "Checking it now"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn send");
    // The hub applies it (Botpress gets the reply) while the client still waits for the answer.
    w.wait_for_delivery("Checking it now").await;
    assert!(
        sending.try_wait().expect("poll").is_none(),
        "the client is still waiting"
    );
    sending.kill().expect("kill the client");
    let _ = sending.wait();

    let outbox = device.ok(&["outbox"]);
    assert!(
        outbox.contains("Checking it now"),
        "still queued after the kill: {outbox}"
    );
    let synced = device.ok(&["sync"]);
    assert!(synced.contains("0 queued, 0 failed"), "{synced}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        w.deliveries_of("Checking it now"),
        1,
        "the hub answered the retry from its record"
    );
    let shown = device.ok(&["show", &ticket]);
    assert_eq!(shown.matches("Checking it now").count(), 1, "{shown}");
}

#[tokio::test]
async fn two_devices_of_one_agent_see_each_others_replies_and_conflicts_name_the_owner() {
    let w = world().await;
    w.data.add_agent("bob@example.com", "Bob", "agent");
    let ticket = w.botpress.hand_off("Refund", "Dana", "hi").await;
    let laptop = Device::new();
    let phone = Device::new();
    laptop.login(&w.hub.url(), AGENT_EMAIL);
    phone.login(&w.hub.url(), AGENT_EMAIL);
    laptop.ok(&["sync"]);
    phone.ok(&["sync"]);

    assert!(laptop
        .ok(&["send", &ticket, "from the laptop"])
        .contains("delivered"));
    phone.ok(&["sync"]);
    assert!(phone
        .ok(&["show", &ticket])
        .contains("Alice: from the laptop"));
    assert!(phone
        .ok(&["send", &ticket, "and from the phone"])
        .contains("delivered"));
    laptop.ok(&["sync"]);
    let shown = laptop.ok(&["show", &ticket]);
    assert!(
        shown.contains("from the laptop") && shown.contains("and from the phone"),
        "{shown}"
    );

    // Bob's device: the handoff is Alice's, and the refusal says so and stays for him to act on.
    let bobs = Device::new();
    let out = bobs.run_with(
        Some(&w.hub.url()),
        &["login", "--email", "bob@example.com"],
        AGENT_PASSWORD,
    );
    assert!(out.ok, "{}", out.stderr);
    bobs.ok(&["sync"]);
    let sent = bobs.ok(&["send", &ticket, "let me take this"]);
    assert!(sent.contains("Alice has this handoff"), "{sent}");
    let outbox = bobs.ok(&["outbox"]);
    assert!(
        outbox.contains("failed\tmessage") && outbox.contains("Alice has this handoff"),
        "{outbox}"
    );
    let id = outbox
        .split('\t')
        .next()
        .and_then(|s| s.strip_prefix('#'))
        .expect("item id")
        .to_string();
    bobs.ok(&["outbox", "discard", &id]);
    assert!(bobs.ok(&["outbox"]).contains("empty"));
    assert_eq!(w.deliveries_of("let me take this"), 0);
}

/// The `queue` line of the handoff in `conversation`: its fields, tab-separated.
fn queue_row(listing: &str, conversation: &str) -> Option<Vec<String>> {
    listing
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect::<Vec<_>>())
        .find(|f| f.get(1).map(String::as_str) == Some(conversation))
}

#[tokio::test]
async fn a_terminal_user_works_handoffs_end_to_end_from_the_queue_to_resolved() {
    let w = world().await;
    let (ok, _, err) = support::hub_cli(
        &["tags", "set", "--data", w.data.path(), "refund", "vip"],
        "",
    );
    assert!(ok, "{err}");
    w.data.add_agent("bob@example.com", "Bob", "agent");
    let lamp = w
        .botpress
        .hand_off("Broken lamp", "Dana", "the lamp is broken")
        .await;
    let spam = w.botpress.hand_off("Spam", "Eve", "buy now").await;
    let device = Device::new();
    device.login(&w.hub.url(), AGENT_EMAIL);
    device.ok(&["sync"]);

    let waiting = device.ok(&["queue"]);
    let row = queue_row(&waiting, &lamp).expect("the lamp handoff is in the queue");
    assert_eq!(row[2], "pending");
    assert_eq!(row[4], "Dana");
    assert_eq!(row[5], "Broken lamp");

    assert!(device.ok(&["assign", &lamp]).contains("delivered"));
    assert!(device
        .ok(&["note", &lamp, "second lamp this month"])
        .contains("delivered"));
    assert!(device.ok(&["tag", &lamp, "refund"]).contains("delivered"));
    let unknown_tag = device.run(&["tag", &lamp, "gold"]);
    assert!(!unknown_tag.ok, "an unknown tag is refused");
    assert!(
        unknown_tag.stderr.contains("not one of the team's tags"),
        "{}",
        unknown_tag.stderr
    );
    device.ok(&["sync"]);
    let mine = queue_row(&device.ok(&["queue", "mine"]), &lamp).expect("mine");
    assert_eq!(mine[2], "assigned");
    let alice_id = mine[3].clone();
    assert!(device
        .ok(&["show", &lamp])
        .contains("second lamp this month"));

    // Released, it is back in the queue; taken again and resolved, the bot has it back.
    device.ok(&["release", &lamp]);
    device.ok(&["sync"]);
    assert!(queue_row(&device.ok(&["queue"]), &lamp).is_some());
    device.ok(&["assign", &lamp]);
    device.ok(&["resolve", &lamp, "--label", "lamp replaced"]);
    device.ok(&["sync"]);
    assert!(queue_row(&device.ok(&["queue", "mine"]), &lamp).is_none());
    assert_eq!(
        queue_row(&device.ok(&["queue", "resolved"]), &lamp).expect("resolved")[2],
        "resolved"
    );
    assert_eq!(w.calls_to("stop-hitl", &lamp).await, 1);

    // Transfer goes to an online agent; only an admin may cancel.
    let bob = support::AgentSession::sign_in(&w.hub, "bob@example.com").await;
    let (status, _) = bob
        .post(
            "/presence",
            serde_json::json!({"txn_id": "bob-on", "status": "online"}),
        )
        .await;
    assert_eq!(status, 200);
    device.ok(&["assign", &spam]);
    assert!(device
        .ok(&["transfer", &spam, "bob@example.com"])
        .contains("delivered"));
    let cancel = device.run(&["cancel", &spam]);
    assert!(
        !cancel.ok && cancel.stderr.contains("only an admin"),
        "{}",
        cancel.stderr
    );
    assert!(
        device.ok(&["outbox"]).contains("empty"),
        "a refused command is not left queued"
    );
    device.ok(&["sync"]);
    let assigned = device.ok(&["queue", "assigned"]);
    let row = queue_row(&assigned, &spam).expect("spam is assigned");
    assert!(
        row[3] != "-" && row[3] != alice_id,
        "Bob holds it now: {assigned}"
    );
    assert!(w.fake.violations().is_empty(), "{:?}", w.fake.violations());
}

#[tokio::test]
async fn agent_commands_queue_offline_and_deliver_once_on_sync() {
    let mut w = world().await;
    let ticket = w.botpress.hand_off("Late", "Dana", "where is it").await;
    let device = Device::new();
    device.login(&w.hub.url(), AGENT_EMAIL);
    device.ok(&["sync"]);
    let port = w.hub.port;
    w.hub.kill();

    assert!(device
        .ok(&["assign", &ticket])
        .contains("not delivered yet"));
    device.ok(&["resolve", &ticket]);
    let outbox = device.ok(&["outbox"]);
    assert!(
        outbox.contains("queued\tassign") && outbox.contains("queued\tresolve"),
        "{outbox}"
    );

    w.restart_hub_on(port);
    assert!(device.ok(&["sync"]).contains("0 queued, 0 failed"));
    assert_eq!(
        queue_row(&device.ok(&["queue", "resolved"]), &ticket).expect("resolved")[2],
        "resolved"
    );
    assert_eq!(
        w.calls_to("agent-assigned", &ticket).await,
        1,
        "assigned once"
    );
    assert_eq!(w.calls_to("stop-hitl", &ticket).await, 1, "resolved once");
}

#[tokio::test]
async fn a_cursor_the_hub_no_longer_keeps_takes_a_snapshot_and_keeps_the_outbox() {
    let mut w = world().await;
    let first = w.botpress.hand_off("First", "Dana", "one").await;
    let device = Device::new();
    device.login(&w.hub.url(), AGENT_EMAIL);
    device.ok(&["sync"]);

    // Offline: a reply waits in the outbox while the hub moves on and trims its log.
    let port = w.hub.port;
    w.hub.kill();
    assert!(device
        .ok(&["send", &first, "still here"])
        .contains("queued"));
    w.restart_hub_on(port);
    let second = w.botpress.hand_off("Second", "Sam", "two").await;
    w.hub.kill();
    let (ok, out, err) =
        support::hub_cli(&["log", "trim", "--data", w.data.path(), "--keep", "0"], "");
    assert!(ok, "{out}{err}");
    w.restart_hub_on(port);

    let synced = device
        .command(None, &["sync"])
        .env("BATON_LOG", "baton_core=info")
        .output()
        .expect("sync");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&synced.stdout),
        String::from_utf8_lossy(&synced.stderr),
    );
    assert!(synced.status.success(), "{stdout}{stderr}");
    assert!(
        stderr.contains("taking a snapshot"),
        "took the 410 path: {stderr}"
    );
    assert!(stdout.contains("0 queued, 0 failed"), "{stdout}");
    w.wait_for_delivery("still here").await;
    assert_eq!(w.deliveries_of("still here"), 1);
    let found = device.ok(&["search", "Second"]);
    assert!(
        found.starts_with(&second),
        "the snapshot brought the new handoff: {found}"
    );
    let shown = device.ok(&["show", &second]);
    assert!(
        shown.contains("Sam: two"),
        "backfill brought its messages: {shown}"
    );
    assert!(device.ok(&["show", &first]).contains("Alice: still here"));
}

#[tokio::test]
async fn following_survives_the_hub_being_killed_and_announces_each_handoff_once() {
    let mut w = world().await;
    let device = Device::new();
    device.login(&w.hub.url(), AGENT_EMAIL);
    device.ok(&["sync"]);
    let mut follow = device
        .command(None, &["sync", "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("follow");
    let stdout = follow.stdout.take().expect("stdout");
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines_tx.send(line);
        }
    });
    let wait_for = |needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("follow never printed {needle:?}"),
            }
        }
    };
    wait_for("synced up to");
    let before = w.botpress.hand_off("Before the crash", "Dana", "a").await;
    assert!(wait_for("new handoff").contains(&before));
    w.restart_hub();
    let after = w.botpress.hand_off("After the crash", "Sam", "b").await;
    let line = wait_for("new handoff");
    assert!(line.contains(&after), "{line}");
    let _ = follow.kill();
    let _ = follow.wait();
    let extra: Vec<String> = lines
        .try_iter()
        .filter(|l| l.contains("new handoff"))
        .collect();
    assert!(extra.is_empty(), "announced twice: {extra:?}");
    let shown = device.ok(&["show", &after]);
    assert!(shown.contains("Sam: b"), "{shown}");
    let _ = device.path();
}

#[tokio::test]
async fn a_client_killed_mid_sync_resumes_to_a_complete_consistent_history() {
    let w = world().await;
    let ticket = w.botpress.hand_off("Long chat", "Dana", "message 0").await;
    for i in 1..1500 {
        let (status, _) = w
            .botpress
            .post(
                "botSendsMessage",
                serde_json::json!({"type": "botSendsMessage", "remoteConversationId": ticket,
                                   "remoteUserId": "BOT", "payload": {"text": format!("bot line {i}")}}),
            )
            .await;
        assert_eq!(status, 200);
    }
    let device = Device::new();
    device.login(&w.hub.url(), AGENT_EMAIL);
    // Kill the first sync part-way (each try a little later), then let one run to the end.
    for delay_ms in [20u64, 60, 120] {
        let mut sync = device
            .command(None, &["sync"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sync");
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = sync.kill();
        let _ = sync.wait();
    }
    let synced = device.ok(&["sync"]);
    assert!(synced.contains("history complete"), "{synced}");
    let json: serde_json::Value =
        serde_json::from_str(&device.ok(&["export", &ticket, "--format", "json"])).expect("json");
    let messages = json["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 1500, "every message once");
    let mut ids: Vec<&str> = messages.iter().filter_map(|m| m["id"].as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 1500, "no duplicates");
    let hits = device.ok(&["search", "line", "1499"]);
    assert!(hits.starts_with(&ticket), "{hits}");
}
