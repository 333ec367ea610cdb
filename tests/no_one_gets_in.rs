//! No one gets in where they don't belong: sessions that end when they should, credentials that
//! never leak, a front door that throttles and times out, and data only its owner can read. Each
//! against a real `baton-hub` process on loopback.

mod support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use baton_core::HubClient;
use futures_util::StreamExt;
use serde_json::{json, Value};
use support::fake_botpress::{FakeBotpress, Mode};
use support::{AgentSession, Botpress, HubData, HubProcess, AGENT_EMAIL, AGENT_PASSWORD};

async fn stream_of(hub: &HubProcess, token: &str) -> baton_core::client::Stream {
    HubClient::new(&hub.url())
        .expect("client")
        .with_token(token)
        .stream(0)
        .await
        .expect("stream opens")
}

/// How long until the stream ends (closed, or broken), reading whatever it sends meanwhile.
async fn ends_within(stream: &mut baton_core::client::Stream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    tokio::time::timeout(limit, async {
        loop {
            match stream.next().await {
                None | Some(Err(_)) => return,
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .ok()
    .map(|()| start.elapsed())
}

#[tokio::test]
async fn disabling_an_agent_from_the_cli_closes_their_open_stream_within_a_second() {
    let data = HubData::new();
    data.add_agent("bob@example.com", "Bob", "agent");
    let hub = HubProcess::start(&data, support::free_port());
    let bob = AgentSession::sign_in(&hub, "bob@example.com").await;
    let mut stream = stream_of(&hub, &bob.token).await;
    let (ok, _, err) = support::hub_cli(
        &[
            "agent",
            "set",
            "--data",
            data.path(),
            "--agent",
            "bob@example.com",
            "--disable",
        ],
        "",
    );
    assert!(ok, "{err}");
    let ended = ends_within(&mut stream, Duration::from_secs(3)).await;
    assert!(
        ended.is_some_and(|d| d <= Duration::from_millis(1500)),
        "the stream stayed open: {ended:?}"
    );
    let (status, _) = bob.post("/presence", json!({"status": "online"})).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn signing_out_or_a_new_password_closes_streams_at_once() {
    let data = HubData::new();
    data.add_agent("root@example.com", "Rita Admin", "admin");
    let hub = HubProcess::start(&data, support::free_port());
    let alice = AgentSession::sign_in(&hub, AGENT_EMAIL).await;
    let mut stream = stream_of(&hub, &alice.token).await;
    let (status, _) = alice.post("/logout", json!({})).await;
    assert_eq!(status, 200);
    let ended = ends_within(&mut stream, Duration::from_secs(3)).await;
    assert!(
        ended.is_some_and(|d| d <= Duration::from_millis(500)),
        "{ended:?}"
    );
    let (status, _) = alice.post("/presence", json!({"status": "online"})).await;
    assert_eq!(status, 401, "the token is revoked");

    // An admin sets a new password over the API: every session of that agent ends.
    let alice = AgentSession::sign_in(&hub, AGENT_EMAIL).await;
    let mut stream = stream_of(&hub, &alice.token).await;
    let rita = AgentSession::sign_in(&hub, "root@example.com").await;
    let response = rita
        .http
        .patch(format!("{}/api/v1/admin/agents/{AGENT_EMAIL}", rita.base))
        .bearer_auth(&rita.token)
        .json(&json!({"password": "a brand new password"}))
        .send()
        .await
        .expect("reset");
    assert_eq!(response.status().as_u16(), 200);
    let ended = ends_within(&mut stream, Duration::from_secs(3)).await;
    assert!(
        ended.is_some_and(|d| d <= Duration::from_millis(500)),
        "{ended:?}"
    );
}

#[tokio::test]
async fn a_sign_in_left_unused_past_the_idle_limit_stops_working() {
    let data = HubData::new();
    let hub = HubProcess::start_with(&data, support::free_port(), &["--token-idle-timeout", "1"]);
    let alice = AgentSession::sign_in(&hub, AGENT_EMAIL).await;
    let (status, _) = alice.post("/presence", json!({"status": "online"})).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let (status, body) = alice.post("/presence", json!({"status": "online"})).await;
    assert_eq!(status, 401, "{body}");
}

#[tokio::test]
async fn the_webhook_url_never_reaches_agents_nor_the_log_and_botpress_errors_stay_in_the_log() {
    let fake = FakeBotpress::start().await;
    fake.set_mode(Mode::Reject);
    let data = HubData::with_webhook(&fake.url());
    let hub = HubProcess::start(&data, support::free_port());
    let botpress = Botpress::new(&hub.url(), &data.endpoint_path);
    let ticket = botpress.hand_off("Secret", "Dana Reyes", "hi").await;
    let alice = AgentSession::sign_in(&hub, AGENT_EMAIL).await;
    let (status, _) = alice
        .post(
            &format!("/conversations/{ticket}/messages"),
            json!({"txn_id": "t-secret-1", "text": "hello"}),
        )
        .await;
    assert_eq!(status, 200);
    let failed = alice
        .wait_for_message("hello", |m| m["status"] == "failed")
        .await;
    let reason = failed["status_reason"].as_str().unwrap_or_default();
    assert_eq!(reason, "Botpress refused it (HTTP 400)");
    let webhook_id = fake
        .url()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(!webhook_id.is_empty());
    let everything_agents_see = alice.events().await;
    assert!(!Value::Array(everything_agents_see)
        .to_string()
        .contains(&webhook_id));
    let log = data.log();
    assert!(
        log.contains("did not accept a call"),
        "the detail is logged: {log}"
    );
    assert!(
        !log.contains(&webhook_id),
        "the webhook URL is in the log:\n{log}"
    );
    assert!(
        !log.contains(data.endpoint_path.trim_start_matches("/botpress/")),
        "the endpoint secret is in the log"
    );

    // The same when Botpress cannot be reached at all.
    fake.set_mode(Mode::Unavailable);
    drop(fake);
    let (status, _) = alice
        .post(
            &format!(
                "/messages/{}/resend",
                failed["id"].as_str().unwrap_or_default()
            ),
            json!({"txn_id": "t-secret-2"}),
        )
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!data.log().contains(&webhook_id));
}

#[tokio::test]
async fn rotating_a_channels_secret_retires_the_old_endpoint() {
    let data = HubData::new();
    let hub = HubProcess::start(&data, support::free_port());
    let old = Botpress::new(&hub.url(), &data.endpoint_path);
    let (status, _) = old.post("ping", json!({"type": "ping"})).await;
    assert_eq!(status, 200);
    let (ok, out, err) = support::hub_cli(
        &[
            "botpress",
            "rotate-secret",
            "--data",
            data.path(),
            "--channel",
            "Support bot",
        ],
        "",
    );
    assert!(ok, "{err}");
    let new_path = out.lines().last().unwrap_or_default().trim().to_string();
    assert!(new_path.starts_with("/botpress/") && new_path != data.endpoint_path);
    let new = Botpress::new(&hub.url(), &new_path);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (old_status, _) = old.post("ping", json!({"type": "ping"})).await;
        if old_status == 404 {
            break;
        }
        assert!(Instant::now() < deadline, "the old secret still works");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, _) = new.post("ping", json!({"type": "ping"})).await;
    assert_eq!(status, 200);
    let (_, list, _) = support::hub_cli(&["botpress", "list", "--data", data.path()], "");
    assert!(
        !list.contains(new_path.trim_start_matches("/botpress/")),
        "never printed back"
    );
}

#[tokio::test]
async fn repeated_wrong_passwords_are_throttled_with_retry_after_and_unknown_emails_too() {
    let data = HubData::new();
    let hub = HubProcess::start(&data, support::free_port());
    let http = reqwest::Client::new();
    let login = |email: &'static str, password: &'static str| {
        let http = http.clone();
        let url = format!("{}/api/v1/login", hub.url());
        async move {
            http.post(url)
                .json(&json!({"email": email, "password": password}))
                .send()
                .await
                .expect("login")
        }
    };
    for _ in 0..5 {
        assert_eq!(
            login(AGENT_EMAIL, "wrong guess").await.status().as_u16(),
            401
        );
    }
    let throttled = login(AGENT_EMAIL, AGENT_PASSWORD).await;
    assert_eq!(
        throttled.status().as_u16(),
        429,
        "even the right password waits"
    );
    let wait: u64 = throttled
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=30).contains(&wait), "{wait}");
    // Another account from the same address is not locked by these five.
    let started = Instant::now();
    assert_eq!(
        login("nobody@example.com", "whatever!")
            .await
            .status()
            .as_u16(),
        401
    );
    let unknown = started.elapsed();
    assert!(
        unknown >= Duration::from_millis(5),
        "an unknown email still costs a password check ({unknown:?})"
    );
}

#[tokio::test]
async fn a_private_or_plain_http_webhook_is_refused_unless_the_hub_allows_private_urls() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().to_str().expect("path");
    // `botpress add` as an admin runs it, without the tests' allowance for private URLs.
    let add = |url: &str| {
        std::process::Command::new(support::hub_binary())
            .args([
                "botpress",
                "add",
                "--data",
                data,
                "--name",
                "Bot",
                "--webhook-url",
                url,
            ])
            .env_remove(support::ALLOW_PRIVATE_URLS)
            .output()
            .expect("run")
    };
    let out = add("http://127.0.0.1:9/hook");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("must be https://"), "{err}");
    let out = add("https://169.254.169.254/latest");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("public host"));
    let out = add("https://webhook.botpress.cloud/0a1b2c3d");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn oversized_bodies_are_413_on_every_route_and_the_hub_keeps_serving() {
    let data = HubData::new();
    data.add_agent("root@example.com", "Rita Admin", "admin");
    let hub = HubProcess::start(&data, support::free_port());
    let alice = AgentSession::sign_in(&hub, "root@example.com").await;
    let big = format!(
        r#"{{"txn_id":"t-big","text":"{}"}}"#,
        "x".repeat(200 * 1024)
    );
    for path in [
        "/api/v1/login".to_string(),
        "/api/v1/presence".to_string(),
        "/api/v1/conversations/t_x/messages".to_string(),
        "/api/v1/admin/templates".to_string(),
        format!("{}/botSendsMessage", data.endpoint_path),
    ] {
        let response = alice
            .http
            .post(format!("{}{path}", hub.url()))
            .bearer_auth(&alice.token)
            .header("content-type", "application/json")
            .body(if path.contains("botpress") {
                "x".repeat(300 * 1024)
            } else {
                big.clone()
            })
            .send()
            .await;
        // The hub may answer before it has read everything, and close the connection.
        if let Ok(response) = response {
            assert_eq!(response.status().as_u16(), 413, "{path}");
        }
    }
    let (status, _) = alice.post("/presence", json!({"status": "online"})).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let data = HubData::new();
    let hub = HubProcess::start(&data, support::free_port());
    let mut socket = std::net::TcpStream::connect(("127.0.0.1", hub.port)).expect("connect");
    socket
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .expect("partial headers");
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let started = Instant::now();
    let mut buf = [0u8; 256];
    // The hub hangs up (with or without a 408); only our own read timeout would be an error.
    let read = socket.read(&mut buf);
    assert!(read.is_ok(), "the connection was still open: {read:?}");
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(15),
        "held for {waited:?}: the header timeout did not apply"
    );
    // A socket that sends nothing at all is dropped the same way.
    let mut silent = std::net::TcpStream::connect(("127.0.0.1", hub.port)).expect("connect");
    silent
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let started = Instant::now();
    let read = silent.read(&mut buf);
    assert!(
        read.is_ok(),
        "the silent connection was still open: {read:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[tokio::test]
async fn the_hubs_data_is_readable_by_its_user_only() {
    use std::os::unix::fs::PermissionsExt;
    let data = HubData::new();
    let hub = HubProcess::start(&data, support::free_port());
    let _ = AgentSession::sign_in(&hub, AGENT_EMAIL).await;
    let mode = |p: &std::path::Path| {
        std::fs::metadata(p)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0)
    };
    let dir = std::path::Path::new(data.path());
    assert_eq!(mode(dir), 0o700);
    for entry in std::fs::read_dir(dir).expect("list") {
        let path = entry.expect("entry").path();
        // Files are the owner's to read; directories (customers' media) the owner's to open.
        let wanted = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&path), wanted, "{}", path.display());
    }
}

#[tokio::test]
async fn a_txn_id_reused_for_another_command_is_refused_and_closed_handoffs_refuse_tags_and_resends(
) {
    let fake = FakeBotpress::start().await;
    let data = HubData::with_webhook(&fake.url());
    let (ok, _, err) = support::hub_cli(&["tags", "set", "--data", data.path(), "vip"], "");
    assert!(ok, "{err}");
    let hub = HubProcess::start(&data, support::free_port());
    let botpress = Botpress::new(&hub.url(), &data.endpoint_path);
    let ticket = botpress.hand_off("Reuse", "Dana Reyes", "hi").await;
    let alice = AgentSession::sign_in(&hub, AGENT_EMAIL).await;
    let handoff = alice.handoff_of(&ticket).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let (status, _) = alice
        .post(
            &format!("/handoffs/{handoff}/assign"),
            json!({"txn_id": "t-same"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = alice
        .post(
            &format!("/conversations/{ticket}/messages"),
            json!({"txn_id": "t-same", "text": "hello"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("txn_reused")),
        "{body}"
    );
    let (status, _) = alice
        .post(
            &format!("/handoffs/{handoff}/assign"),
            json!({"txn_id": "t-same"}),
        )
        .await;
    assert_eq!(status, 200, "the same command again is answered as before");

    fake.set_mode(Mode::Reject);
    let (status, _) = alice
        .post(
            &format!("/conversations/{ticket}/messages"),
            json!({"txn_id": "t-msg", "text": "will fail"}),
        )
        .await;
    assert_eq!(status, 200);
    let message = alice
        .wait_for_message("will fail", |m| m["status"] == "failed")
        .await;
    let (status, _) = alice
        .post(
            &format!("/handoffs/{handoff}/resolve"),
            json!({"txn_id": "t-done"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = alice
        .post(
            &format!(
                "/messages/{}/resend",
                message["id"].as_str().unwrap_or_default()
            ),
            json!({"txn_id": "t-resend"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("closed")),
        "{body}"
    );
    let (status, body) = alice
        .post(
            &format!("/handoffs/{handoff}/tags"),
            json!({"txn_id": "t-tag", "tags": ["vip"]}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("closed")),
        "{body}"
    );
}

#[tokio::test]
async fn the_last_admin_can_be_neither_demoted_nor_disabled() {
    let data = HubData::new();
    data.add_agent("root@example.com", "Rita Admin", "admin");
    for flags in [&["--role", "agent"][..], &["--disable"][..]] {
        let mut args = vec![
            "agent",
            "set",
            "--data",
            data.path(),
            "--agent",
            "root@example.com",
        ];
        args.extend_from_slice(flags);
        let (ok, _, err) = support::hub_cli(&args, "");
        assert!(!ok, "{flags:?} succeeded");
        assert!(err.contains("last admin"), "{err}");
    }
    data.add_agent("second@example.com", "Sam Admin", "admin");
    let (ok, _, err) = support::hub_cli(
        &[
            "agent",
            "set",
            "--data",
            data.path(),
            "--agent",
            "root@example.com",
            "--role",
            "agent",
        ],
        "",
    );
    assert!(ok, "with another admin it works: {err}");
}

/// A browser's sign-in at `hub`: the `Set-Cookie` it was given and the answer's body.
async fn browser_sign_in(hub: &HubProcess) -> (String, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/login", hub.url()))
        .header("origin", hub.url())
        .json(&json!({"email": AGENT_EMAIL, "password": AGENT_PASSWORD, "cookie": true}))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), 200);
    let set_cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a cookie is set")
        .to_string();
    (set_cookie, response.json().await.expect("json"))
}

#[tokio::test]
async fn a_browser_session_is_a_cookie_its_page_cannot_read_and_other_sites_cannot_use() {
    let data = HubData::new();
    let hub = HubProcess::start(&data, support::free_port());
    let elsewhere = reqwest::Client::new()
        .post(format!("{}/api/v1/login", hub.url()))
        .header("origin", "https://evil.example")
        .json(&json!({"email": AGENT_EMAIL, "password": AGENT_PASSWORD, "cookie": true}))
        .send()
        .await
        .expect("login");
    assert_eq!(
        elsewhere.status(),
        403,
        "another site cannot sign a browser in"
    );
    assert!(elsewhere.headers().get("set-cookie").is_none());
    let (set_cookie, body) = browser_sign_in(&hub).await;
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/api/"] {
        assert!(
            set_cookie.contains(attribute),
            "{attribute} missing: {set_cookie}"
        );
    }
    assert!(
        body.get("token").is_none(),
        "the page is never given the token: {body}"
    );
    assert_eq!(body["agent"]["email"], AGENT_EMAIL);
    let cookie = set_cookie
        .split(';')
        .next()
        .expect("name=value")
        .to_string();
    assert!(
        !data
            .log()
            .contains(cookie.trim_start_matches("baton_session=")),
        "the token is never logged"
    );

    let http = reqwest::Client::new();
    let me = |origin: Option<&str>| {
        let mut request = http
            .post(format!("{}/api/v1/presence", hub.url()))
            .header("cookie", &cookie)
            .json(&json!({"status": "online"}));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    let own = hub.url();
    assert_eq!(me(Some(&own)).await.expect("own page").status(), 200);
    let elsewhere = me(Some("https://evil.example")).await.expect("other site");
    assert_eq!(
        elsewhere.status(),
        403,
        "another site's page cannot act with the cookie"
    );
    let read = http
        .get(format!("{}/api/v1/me", hub.url()))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("me");
    assert_eq!(
        read.status(),
        200,
        "the hub's own page reads with the cookie"
    );

    let out = http
        .post(format!("{}/api/v1/logout", hub.url()))
        .header("cookie", &cookie)
        .header("origin", &own)
        .send()
        .await
        .expect("logout");
    assert_eq!(out.status(), 200);
    let cleared = out
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        cleared.contains("Max-Age=0"),
        "signing out clears the cookie: {cleared}"
    );
    let after = me(Some(&own)).await.expect("after");
    assert_eq!(after.status(), 401, "the session ended with sign-out");
}

#[tokio::test]
async fn the_hub_serves_the_inbox_to_browsers_at_app_under_a_strict_content_security_policy() {
    let data = HubData::new();
    let hub = HubProcess::start(&data, support::free_port());
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let root = http
        .get(format!("{}/", hub.url()))
        .send()
        .await
        .expect("root");
    assert_eq!(
        root.headers()["location"],
        "/app/",
        "the hub's address leads to the inbox"
    );

    let page = http
        .get(format!("{}/app/", hub.url()))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_string();
    for rule in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ] {
        assert!(csp.contains(rule), "{rule} missing: {csp}");
    }
    assert!(page.headers()["content-type"]
        .to_str()
        .expect("type")
        .starts_with("text/html"));
    let html = page.text().await.expect("html");
    assert!(html.contains("<div id=\"app\">"), "the UI's page: {html}");

    // Each script the page loads is served, as JavaScript, and kept by browsers.
    let script = html
        .split("src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the page loads a script")
        .trim_start_matches("./");
    let js = http
        .get(format!("{}/app/{script}", hub.url()))
        .send()
        .await
        .expect("script");
    assert_eq!(js.status(), 200, "{script}");
    assert!(js.headers()["content-type"]
        .to_str()
        .expect("type")
        .contains("javascript"));
    assert!(js.headers()["cache-control"]
        .to_str()
        .expect("cache")
        .contains("immutable"));

    let missing = http
        .get(format!("{}/app/assets/nothing.js", hub.url()))
        .send()
        .await
        .expect("missing");
    assert_eq!(
        missing.status(),
        404,
        "a missing file is missing, not the page"
    );
    let screen = http
        .get(format!("{}/app/conversations/t_1", hub.url()))
        .send()
        .await
        .expect("screen");
    assert_eq!(
        screen.status(),
        200,
        "a reload on any of the UI's screens gets the page"
    );
}
