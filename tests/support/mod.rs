//! Shared pieces of the whole-system tests: a real `baton-hub` process on a loopback port, set up
//! through its own CLI, and a Botpress stand-in that posts to it the way the integration does.

#![allow(dead_code)]

pub mod balancer;
pub mod fake_bot;
pub mod fake_botpress;
pub mod fake_graph;
pub mod fake_push;

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const AGENT_EMAIL: &str = "alice@example.com";

/// Tests talk to fakes on loopback: the hub must be allowed to call private, plain-http URLs.
pub const ALLOW_PRIVATE_URLS: &str = "BATON_ALLOW_PRIVATE_URLS";
pub const AGENT_PASSWORD: &str = "correct horse battery";

/// The workspace's `baton-hub` binary, built by the test command before the tests run.
pub fn hub_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("baton-hub");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p baton-hub` first (make test does)",
        bin.display()
    );
    bin
}

/// Runs `baton-hub ARGS` to completion, feeding `stdin`; returns (success, stdout, stderr).
pub fn hub_cli(args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(hub_binary())
        .args(args)
        .env(ALLOW_PRIVATE_URLS, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn baton-hub");
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.as_bytes()).expect("write stdin");
    }
    let out = child.wait_with_output().expect("baton-hub finished");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `baton-hub ARGS` expecting a refusal whose message contains `says`.
pub fn hub_cli_refuses(args: &[&str], says: &str) {
    let (ok, _, err) = hub_cli(args, "");
    assert!(!ok, "baton-hub {args:?} was taken");
    assert!(err.contains(says), "baton-hub {args:?} said: {err}");
}

/// Polls `done` every 50 ms until it holds; fails the test with `what()` once `within` has passed.
pub async fn eventually(
    within: Duration,
    mut done: impl FnMut() -> bool,
    what: impl Fn() -> String,
) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{}", what());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A free loopback port (bound and released; the hub binds it right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A hub data directory with one agent and one Botpress channel, made with the CLI.
pub struct HubData {
    pub dir: tempfile::TempDir,
    /// `/botpress/<secret>`
    pub endpoint_path: String,
    /// The PostgreSQL database the team's data is in (`--database`); `None`: SQLite in `dir`.
    pub database: Option<String>,
}

impl HubData {
    pub fn new() -> Self {
        Self::with_webhook("http://127.0.0.1:9/hook")
    }

    /// A hub whose Botpress channel posts to `webhook_url`.
    pub fn with_webhook(webhook_url: &str) -> Self {
        Self::set_up(None, webhook_url)
    }

    /// A team whose data is in the PostgreSQL database at `url`: every hub started on it serves
    /// the same inbox (`dir` holds only the instances' files).
    pub fn on_postgres(url: &str, webhook_url: &str) -> Self {
        Self::set_up(Some(url.to_string()), webhook_url)
    }

    fn set_up(database: Option<String>, webhook_url: &str) -> Self {
        let mut data = Self {
            dir: tempfile::tempdir().expect("tempdir"),
            endpoint_path: String::new(),
            database,
        };
        data.add_agent(AGENT_EMAIL, "Alice", "agent");
        let mut args = vec!["botpress", "add"];
        let place = data.place();
        args.extend(place.iter().map(String::as_str));
        args.extend(["--name", "Support bot", "--webhook-url", webhook_url]);
        let (ok, out, err) = hub_cli(&args, "");
        assert!(ok, "botpress add failed: {err}");
        data.endpoint_path = out.lines().last().expect("a last line").trim().to_string();
        assert!(
            data.endpoint_path.starts_with("/botpress/"),
            "last line was {:?}",
            data.endpoint_path
        );
        data
    }

    /// Where the CLI and `serve` find this team's data: `--data DIR`, and `--database URL`.
    pub fn place(&self) -> Vec<String> {
        let mut args = vec!["--data".to_string(), self.path().to_string()];
        if let Some(url) = &self.database {
            args.extend(["--database".to_string(), url.clone()]);
        }
        args
    }

    pub fn path(&self) -> &str {
        self.dir.path().to_str().expect("utf-8 path")
    }

    /// Where `baton-hub serve` writes its log (standard error) in tests: beside, not inside, the
    /// hub's data directory.
    pub fn log_path(&self) -> PathBuf {
        let mut name = self.dir.path().as_os_str().to_owned();
        name.push(".serve.log");
        PathBuf::from(name)
    }

    /// Everything the hub processes of this data directory have logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Moves the time of the hubs serving this directory `secs` seconds past the real time (see
    /// `BATON_TEST_CLOCK_OFFSET_FILE`): a test skips minutes instead of sleeping through them.
    pub fn move_clock(&self, secs: u64) {
        std::fs::write(self.dir.path().join("clock-offset"), secs.to_string()).expect("clock");
    }

    /// Adds another agent with `AGENT_PASSWORD`.
    pub fn add_agent(&self, email: &str, name: &str, role: &str) {
        let place = self.place();
        let mut args = vec!["agent", "add"];
        args.extend(place.iter().map(String::as_str));
        args.extend(["--email", email, "--name", name, "--role", role]);
        let (ok, _, err) = hub_cli(&args, AGENT_PASSWORD);
        assert!(ok, "agent add failed: {err}");
    }
}

impl Drop for HubData {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.log_path());
    }
}

/// A running `baton-hub serve`; killed (not shut down) on drop, like a crash.
pub struct HubProcess {
    child: Child,
    pub port: u16,
}

impl HubProcess {
    pub fn start(data: &HubData, port: u16) -> Self {
        Self::start_with(data, port, &[])
    }

    /// Starts `baton-hub serve` with extra flags (`--delivery-timeout 1`, …).
    pub fn start_with(data: &HubData, port: u16, flags: &[&str]) -> Self {
        Self::spawn(data, data.place(), port, flags)
    }

    /// Starts another instance of a team on PostgreSQL, with a directory of its own for its
    /// files (`files`), as on another machine.
    pub fn start_elsewhere(data: &HubData, files: &std::path::Path, port: u16) -> Self {
        let database = data.database.clone().expect("a team on PostgreSQL");
        let place = vec![
            "--database".to_string(),
            database,
            "--data".to_string(),
            files.display().to_string(),
        ];
        Self::spawn(data, place, port, &[])
    }

    fn spawn(data: &HubData, place: Vec<String>, port: u16, flags: &[&str]) -> Self {
        let child = Command::new(hub_binary())
            .env(ALLOW_PRIVATE_URLS, "1")
            .env(
                "BATON_TEST_CLOCK_OFFSET_FILE",
                data.dir.path().join("clock-offset"),
            )
            .arg("serve")
            .args(place)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(flags)
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(data.log_path())
                    .expect("hub log file"),
            ))
            .spawn()
            .expect("spawn baton-hub serve");
        let hub = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "baton-hub did not start listening on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        hub
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The CPU time the process has used so far (user and system, from `/proc`).
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .expect("the hub's /proc stat");
        // The fields after the command's name, which is in parentheses and may hold spaces.
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks: u64 = [11, 12]
            .iter()
            .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
            .sum();
        // Linux reports these in USER_HZ, 100 per second.
        Duration::from_millis(ticks * 10)
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Posts to the hub's Botpress routes the way the HITL API integration does.
pub struct Botpress {
    http: reqwest::Client,
    base: String,
}

impl Botpress {
    pub fn new(hub_url: &str, endpoint_path: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: format!("{hub_url}{endpoint_path}"),
        }
    }

    pub async fn post(&self, route: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/{route}", self.base))
            .json(&body)
            .send()
            .await
            .expect("post");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Creates a user and a ticket with `title`, then relays the user's first message; returns the ticket id.
    pub async fn hand_off(&self, title: &str, customer: &str, text: &str) -> String {
        let (status, user) =
            self.post("createRemoteUser", json!({"type": "createRemoteUser", "payload": {"role": "end-user", "name": customer}})).await;
        assert_eq!(status, 200, "{user}");
        let (status, ticket) = self
            .post(
                "createRemoteConversation",
                json!({"type": "createRemoteConversation", "payload": {"title": title}}),
            )
            .await;
        assert_eq!(status, 200, "{ticket}");
        let ticket = ticket["id"].as_str().expect("ticket id").to_string();
        let (status, body) = self
            .post(
                "botSendsMessage",
                json!({"type": "botSendsMessage", "remoteConversationId": ticket,
                       "remoteUserId": user["id"], "payload": {"text": text}}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        ticket
    }
}

/// One signed-in agent.
pub struct AgentSession {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
}

impl AgentSession {
    pub async fn sign_in(hub: &HubProcess, email: &str) -> Self {
        let http = reqwest::Client::new();
        let base = hub.url();
        let login: Value = http
            .post(format!("{base}/api/v1/login"))
            .json(&json!({"email": email, "password": AGENT_PASSWORD}))
            .send()
            .await
            .expect("login")
            .json()
            .await
            .expect("login body");
        let token = login["token"].as_str().expect("token").to_string();
        Self { http, base, token }
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Runs a command (`/handoffs/{id}/assign`, …) with a fresh `txn_id`; the hub must take it.
    pub async fn act(&self, path: &str, mut body: Value) {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        body["txn_id"] = json!(format!("act-{}-{n}", std::process::id()));
        let (status, answer) = self.post(path, body).await;
        assert_eq!(status, 200, "{path}: {answer}");
    }

    /// Replies `text` in the conversation.
    pub async fn reply(&self, conversation: &str, text: &str) {
        self.act(
            &format!("/conversations/{conversation}/messages"),
            json!({ "text": text }),
        )
        .await;
    }

    /// `GET /api/v1{path}` as this agent: the status and the JSON answer (null if none).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.without_body(reqwest::Method::GET, path).await
    }

    /// `DELETE /api/v1{path}` as this agent.
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.without_body(reqwest::Method::DELETE, path).await
    }

    async fn without_body(&self, method: reqwest::Method, path: &str) -> (u16, Value) {
        let response = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn events(&self) -> Vec<Value> {
        let (_, page) = self.get("/events?after=0&limit=1000").await;
        page["events"].as_array().cloned().unwrap_or_default()
    }

    /// The newest state of every entity of `kind` with `id`.
    pub async fn latest(&self, kind: &str, id: &str) -> Value {
        self.events()
            .await
            .into_iter()
            .rev()
            .find(|e| e["kind"] == kind && e["data"]["id"] == id)
            .map(|e| e["data"].clone())
            .unwrap_or(Value::Null)
    }

    /// Waits (up to 20 s) until the newest state of the message reading `text` satisfies `done`,
    /// and returns it.
    pub async fn wait_for_message(&self, text: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let message = self
                .events()
                .await
                .into_iter()
                .rev()
                .find(|e| e["kind"] == "message" && e["data"]["text"] == text)
                .map(|e| e["data"].clone())
                .unwrap_or(Value::Null);
            if done(&message) {
                return message;
            }
            assert!(
                Instant::now() < deadline,
                "the message {text:?} is still {message}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn handoff_of(&self, ticket: &str) -> Value {
        self.events()
            .await
            .into_iter()
            .rev()
            .find(|e| e["kind"] == "handoff" && e["data"]["conversation_id"] == ticket)
            .map(|e| e["data"].clone())
            .expect("the ticket's handoff")
    }
}

/// A device's client for the hub at `hub_url`, signed in as the test agent.
pub async fn signed_in(hub_url: &str) -> baton_core::HubClient {
    let client = baton_core::HubClient::new(hub_url).expect("client");
    let login = client
        .login(AGENT_EMAIL, AGENT_PASSWORD)
        .await
        .expect("login");
    client.with_token(login.token)
}
