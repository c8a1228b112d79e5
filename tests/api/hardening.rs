//! SPEC §7 against hostile clients and a failing database: bounded output, no amplification,
//! deadlines, close codes, honest readiness, a busy database, JWT time claims. Raw TCP sockets
//! where a WebSocket library would hide the attack (a client that never reads, invalid UTF-8,
//! unfinished fragments).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;

/// A WebSocket client on a plain TCP socket, reading only when told to.
pub struct RawWs {
    pub tcp: TcpStream,
}

impl RawWs {
    /// Connects with a small receive buffer (so unread output backs up in the service quickly)
    /// and completes the handshake.
    pub fn connect(port: u16, world: &str) -> RawWs {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        socket.connect(&addr.into()).unwrap();
        let mut tcp: TcpStream = socket.into();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            tcp,
            "GET /ws/world/{world}/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        )
        .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            tcp.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        assert!(String::from_utf8_lossy(&head).starts_with("HTTP/1.1 101"));
        RawWs { tcp }
    }

    /// Sends one masked frame with `opcode` (FIN set when `fin`).
    pub fn send_frame(&mut self, opcode: u8, fin: bool, payload: &[u8]) {
        let mut frame = vec![opcode | if fin { 0x80 } else { 0 }];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n < 65536 => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let mask = [0x12, 0x34, 0x56, 0x78];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.tcp.write_all(&frame).unwrap();
    }

    pub fn send_text(&mut self, text: &str) {
        self.send_frame(0x1, true, text.as_bytes());
    }

    /// Like `send_text`, for a peer the service may already have dropped.
    pub fn try_send_text(&mut self, text: &str) -> bool {
        let mask = [0u8; 4];
        let payload = text.as_bytes();
        let mut frame = vec![0x81u8];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend_from_slice(payload);
        self.tcp.write_all(&frame).is_ok()
    }

    /// The next frame from the server: (opcode, FIN, payload); None at EOF or timeout.
    pub fn read_frame(&mut self) -> Option<(u8, bool, Vec<u8>)> {
        let mut head = [0u8; 2];
        self.tcp.read_exact(&mut head).ok()?;
        let len = match head[1] & 0x7f {
            126 => {
                let mut b = [0u8; 2];
                self.tcp.read_exact(&mut b).ok()?;
                u16::from_be_bytes(b) as usize
            }
            127 => {
                let mut b = [0u8; 8];
                self.tcp.read_exact(&mut b).ok()?;
                u64::from_be_bytes(b) as usize
            }
            n => n as usize,
        };
        let mut payload = vec![0u8; len];
        self.tcp.read_exact(&mut payload).ok()?;
        Some((head[0] & 0x0f, head[0] & 0x80 != 0, payload))
    }

    /// The next whole text message (reassembling fragments, skipping pings); panics on close.
    pub fn read_json(&mut self) -> Value {
        let mut message = Vec::new();
        loop {
            let (op, fin, payload) = self.read_frame().expect("a frame");
            match op {
                0x9 | 0xA => continue,
                0x8 => panic!("closed: {payload:?}"),
                _ => message.extend_from_slice(&payload),
            }
            if fin {
                return serde_json::from_slice(&message).unwrap();
            }
        }
    }

    /// Reads until the close frame and returns its code; None if the connection ends without.
    pub fn close_code(&mut self) -> Option<u16> {
        while let Some((op, _, payload)) = self.read_frame() {
            if op == 0x8 {
                return payload.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]]));
            }
        }
        None
    }

    /// Authenticates with a client id; returns the `authenticated` body.
    pub fn authenticate(&mut self, client_id: &str) -> Value {
        self.send_text(&json!(["authenticate", {"client_id": client_id}]).to_string());
        let reply = self.read_json();
        assert_eq!(reply[0], "authenticated", "{reply}");
        reply[1].clone()
    }
}

fn ok(reply: &Value) -> &Value {
    assert_eq!(reply[0], "success", "{reply}");
    &reply[2]
}

fn user_id(body: &Value) -> String {
    body["user.config"]["id"].as_str().unwrap().to_string()
}

/// Opens (or finds) the direct channel of `sender` and `other`; returns its id.
async fn dm_with(sender: &mut Ws, other: &str) -> String {
    let r = sender
        .request("chat.direct.create", json!({"users": [other]}))
        .await;
    ok(&r)["id"].as_str().unwrap().to_string()
}

/// Sends a text message and asserts it was acknowledged.
async fn send_text(sender: &mut Ws, channel: &str, body: &str) {
    let r = sender
        .request(
            "chat.send",
            json!({"channel": channel, "event_type": "channel.message", "content": {"type": "text", "body": body}}),
        )
        .await;
    ok(&r);
}

/// Runs blocking socket work off the test's event loop.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    actix_web::rt::task::spawn_blocking(f).await.unwrap()
}

// ---- deadlines and close codes ----

#[actix_web::test]
async fn a_socket_that_does_not_authenticate_in_time_is_closed_with_1008() {
    let app = spawn_app_with(|s| s.replace("[server]", "[server]\nauth_timeout_ms = 300")).await;
    let mut idle = app.ws("sample").await;
    let (mut member, _) = app.client("sample", "in-time").await;
    match idle.next_within(Duration::from_secs(5)).await {
        Some(Received::Close(Some(reason))) => assert_eq!(u16::from(reason.code), 1008),
        other => panic!("expected a 1008 close, got {other:?}"),
    }
    // The authenticated socket outlives the deadline.
    actix_web::rt::time::sleep(Duration::from_millis(400)).await;
    member.send_json(json!(["ping", 1])).await;
    assert_eq!(member.recv().await, json!(["pong", 1]));
}

#[actix_web::test]
async fn an_unfinished_fragmented_message_is_closed_with_1008() {
    let app = spawn_app_with(|s| s.replace("[server]", "[server]\nfragment_timeout_ms = 300")).await;
    let port = app.port;
    let code = blocking(move || {
        let mut raw = RawWs::connect(port, "sample");
        raw.send_frame(0x1, false, b"[\"ping\", ");
        raw.close_code()
    })
    .await;
    assert_eq!(code, Some(1008));
}

#[actix_web::test]
async fn invalid_utf8_closes_with_1007_whole_or_fragmented() {
    let app = spawn_app().await;
    let port = app.port;
    let codes = blocking(move || {
        let mut whole = RawWs::connect(port, "sample");
        whole.send_frame(0x1, true, b"[\"ping\", \"\xff\xfe\"]");
        let mut pieces = RawWs::connect(port, "sample");
        pieces.send_frame(0x1, false, b"[\"ping\", \"\xc3");
        pieces.send_frame(0x0, true, b"(\"]");
        (whole.close_code(), pieces.close_code())
    })
    .await;
    assert_eq!(codes, (Some(1007), Some(1007)));
}

#[actix_web::test]
async fn ping_without_a_payload_is_a_wrong_arity() {
    let app = spawn_app().await;
    let mut ws = app.ws("sample").await;
    ws.send_json(json!(["ping"])).await;
    let reply = ws.recv().await;
    assert_eq!(code(&reply), "protocol.invalid_message");
    assert_eq!(reply.as_array().unwrap().len(), 2, "no id to echo: {reply}");
    ws.send_json(json!(["ping", "still-open"])).await;
    assert_eq!(ws.recv().await, json!(["pong", "still-open"]));
}

#[actix_web::test]
async fn the_heartbeat_closes_a_silent_socket_with_1001_even_with_output_pending() {
    let app = spawn_app().await;
    let (mut sender, _) = app.client("sample", "hb-sender").await;
    sender.set_name("Sender").await;
    let port = app.port;
    let (raw, sink_id) = blocking(move || {
        let mut raw = RawWs::connect(port, "sample");
        let body = raw.authenticate("hb-sink");
        (raw, user_id(&body))
    })
    .await;
    let channel = dm_with(&mut sender, &sink_id).await;
    // Output the silent socket does not read (below the 1008 limit).
    for i in 0..8 {
        send_text(&mut sender, &channel, &format!("{i}{}", "x".repeat(3000))).await;
    }
    // client_timeout_ms is 2000 in the test settings: wait past it without reading.
    actix_web::rt::time::sleep(Duration::from_millis(3500)).await;
    let code = blocking(move || {
        let mut raw = raw;
        raw.close_code()
    })
    .await;
    assert_eq!(code, Some(1001));
}

// ---- bounded output ----

#[actix_web::test]
async fn a_socket_that_never_reads_is_closed_with_1008_and_delays_nobody() {
    // A long client timeout, so the heartbeat does not close the sink first.
    let app = spawn_app_with(|s| {
        s.replace("requests_per_second = 50", "requests_per_second = 0")
            .replace("client_timeout_ms = 2000", "client_timeout_ms = 60000")
    })
    .await;
    let (mut sender, _) = app.client("sample", "flooder").await;
    sender.set_name("Flooder").await;
    let port = app.port;
    let (sink, sink_id) = blocking(move || {
        let mut raw = RawWs::connect(port, "sample");
        let body = raw.authenticate("never-reads");
        (raw, user_id(&body))
    })
    .await;
    // The same user on a socket that reads, all along.
    let (mut reader, _) = app.client("sample", "never-reads").await;
    let reading = actix_web::rt::spawn(async move {
        let mut seen = 0;
        while seen < 400 {
            let v = reader.recv().await;
            if v[0] == "chat.event" {
                seen += 1;
            }
        }
        reader
    });
    let channel = dm_with(&mut sender, &sink_id).await;
    // Several times the limit plus what kernel buffers hold; every send is answered.
    for i in 0..400 {
        send_text(&mut sender, &channel, &format!("{i:04}{}", "y".repeat(3500))).await;
    }
    // The reading socket of the same user got every event and still answers.
    let mut reader = reading.await.unwrap();
    reader.send_json(json!(["ping", "alive"])).await;
    assert_eq!(reader.recv_event("pong").await, json!(["pong", "alive"]));
    // Kernel buffers on loopback hold a megabyte or more: the sink also asks for large pages
    // of that history (1.4 MB each) and reads nothing. It is closed with 1008 after what was
    // already on its way.
    let code = blocking(move || {
        let mut sink = sink;
        for i in 0..8 {
            sink.send_text(&json!(["chat.fetch", i, {"channel": channel, "count": 500}]).to_string());
        }
        std::thread::sleep(Duration::from_secs(1));
        sink.close_code()
    })
    .await;
    assert_eq!(code, Some(1008));
}

// ---- no amplification ----

#[actix_web::test]
async fn profiles_over_16_kib_are_invalid_and_channels_over_50_members_denied() {
    let app = spawn_app_with(|s| s.replace("max_frame_bytes = 4096", "max_frame_bytes = 65536")).await;
    let (mut ws, _) = app.client("sample", "big-profile").await;
    let too_big = json!({"profile": {"display_name": "Big", "bio": "b".repeat(16 * 1024)}});
    let r = ws.request("user.update", too_big).await;
    assert_eq!(code(&r), "protocol.invalid_message", "{r}");
    let fits = json!({"profile": {"display_name": "Big", "bio": "b".repeat(16 * 1024 - 64)}});
    ok(&ws.request("user.update", fits).await);

    let mut others = Vec::new();
    for i in 0..50 {
        let (_, body) = app.client("sample", &format!("member-{i}")).await;
        others.push(user_id(&body));
    }
    let r = ws
        .request("chat.direct.create", json!({"users": others[..49]}))
        .await;
    assert_eq!(ok(&r)["members"].as_array().unwrap().len(), 50);
    let r = ws.request("chat.direct.create", json!({"users": others})).await;
    assert_eq!(code(&r), "chat.denied", "51 members: {r}");
}

#[actix_web::test]
async fn a_login_with_many_large_channels_lists_the_100_most_recent_under_1_mib() {
    let app = spawn_app_with(|s| {
        s.replace("max_frame_bytes = 4096", "max_frame_bytes = 65536")
            .replace("requests_per_second = 50", "requests_per_second = 0")
    })
    .await;
    // 60 users with the largest profiles allowed: a 200-character name, an avatar, a long bio.
    let mut ids = Vec::new();
    for i in 0..60 {
        let (mut ws, body) = app.client("sample", &format!("crowd-{i}")).await;
        let profile = json!({
            "display_name": format!("{i:03}{}", "n".repeat(197)),
            "avatar": {"url": format!("https://example.org/{i}.png"), "padding": "p".repeat(4000)},
            "bio": "b".repeat(11_000),
        });
        ok(&ws.request("user.update", json!({ "profile": profile })).await);
        ids.push(user_id(&body));
    }
    let (mut hub, body) = app.client("sample", "hub").await;
    ids.push(user_id(&body));
    // 120 channels of 50 members each (the hub and 49 others).
    let mut channels = Vec::new();
    for i in 0..120 {
        let members: Vec<&String> = (0..49).map(|k| &ids[(i + k * (1 + i / 60)) % 60]).collect();
        let r = hub
            .request("chat.direct.create", json!({ "users": members }))
            .await;
        channels.push(ok(&r)["id"].as_str().unwrap().to_string());
    }
    channels.dedup();
    // The first channel becomes the most recently active one.
    let r = hub
        .request(
            "chat.send",
            json!({"channel": channels[0], "event_type": "channel.message", "content": {"type": "text", "body": "hi"}}),
        )
        .await;
    ok(&r);

    let mut ws = app.ws("sample").await;
    ws.send_json(json!(["authenticate", {"client_id": "hub"}])).await;
    let frame = ws.recv().await;
    let size = frame.to_string().len();
    assert!(size < 1 << 20, "authenticated is {size} bytes");
    let listed = frame[1]["chat.channels"].as_array().unwrap();
    assert!(
        !listed.is_empty() && listed.len() <= 100,
        "{} channels",
        listed.len()
    );
    assert_eq!(listed[0]["id"], channels[0], "most recently active first");
    for channel in listed {
        for member in channel["members"].as_array().unwrap() {
            let keys: Vec<&String> = member["profile"].as_object().unwrap().keys().collect();
            assert!(
                keys.iter().all(|k| *k == "display_name" || *k == "avatar"),
                "{keys:?}"
            );
            if let Some(avatar) = member["profile"].get("avatar") {
                assert!(avatar.get("padding").is_none(), "avatar cut to its url");
            }
        }
    }
}

// ---- JWT time claims ----

#[actix_web::test]
async fn jwt_time_claims_are_checked_as_pyjwt_does() {
    let app = spawn_app().await;
    let claims = |extra: Value| {
        let mut c = json!({"iss": "any", "aud": "venueless", "uid": "timed", "traits": []});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        sign(c)
    };
    let cases = [
        (json!({"nbf": now() + 3600}), "auth.invalid_token"),
        (json!({"exp": "1"}), "auth.invalid_token"),
        (json!({"exp": null}), "auth.invalid_token"),
        (json!({"exp": {}}), "auth.invalid_token"),
        (json!({"iat": "now"}), "auth.invalid_token"),
        (json!({"exp": now() - 10}), "auth.expired_token"),
    ];
    for (extra, expected) in cases {
        let mut ws = app.ws("sample").await;
        let reply = ws.try_authenticate(json!({"token": claims(extra.clone())})).await;
        assert_eq!(code(&reply), expected, "{extra}");
    }
    let mut ws = app.ws("sample").await;
    ws.authenticate(
        json!({"token": claims(json!({"nbf": now() - 10, "iat": now() - 10, "exp": now() + 60}))}),
    )
    .await;
}

// ---- the database ----

#[actix_web::test]
async fn a_held_write_lock_delays_writes_instead_of_failing_them() {
    let app = spawn_app().await;
    let (mut a, body_a) = app.client("sample", "lock-a").await;
    let (_b, body_b) = app.client("sample", "lock-b").await;
    let channel = ok(&a
        .request("chat.direct.create", json!({"users": [user_id(&body_b)]}))
        .await)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let _ = body_a;
    // Another process's connection takes the write lock, writes, and holds it for 1.5 s.
    let db = app.db.clone();
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(
            "BEGIN IMMEDIATE; INSERT OR REPLACE INTO health_probe (id, probed_at, payload) VALUES (1, 'held', NULL)",
        )
        .unwrap();
        locked_tx.send(Instant::now()).unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        conn.execute_batch("COMMIT").unwrap();
        Instant::now()
    });
    let locked_at = blocking(move || locked_rx.recv().unwrap()).await;
    // A read-then-write transaction (a message), and a login that creates a user.
    let sent = a
        .request(
            "chat.send",
            json!({"channel": channel, "event_type": "channel.message", "content": {"type": "text", "body": "waited"}}),
        )
        .await;
    let (_c, _) = app.client("sample", "lock-newcomer").await;
    let released_at = holder.join().unwrap();
    ok(&sent);
    assert!(released_at > locked_at);
}

// ---- the real binary: start, readiness, shutdown, logs ----

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Settings for the binary: the built-in simulator is the one BBB server.
fn binary_settings(db: &std::path::Path, extra_server: &str) -> String {
    format!(
        r#"
[server]
database = "{}"
max_frame_bytes = 65536
requests_per_second = 0
shutdown_grace_ms = 2000
{extra_server}

[simulator]
enabled = true
secret = "{SIM_SECRET}"

[[worlds]]
id = "sample"
title = "Sample"
trait_grants = {{ attendee = [] }}

[[worlds.rooms]]
id = "stage"
name = "Stage"
trait_grants = {{ viewer = [], participant = [] }}
modules = [ {{ type = "call.bigbluebutton", config = {{}} }} ]
"#,
        db.display()
    )
}

/// A `bbb-gateway` child process, killed on drop.
struct Gateway {
    child: std::process::Child,
    port: u16,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary through `sh -c` (so a test can set limits) and waits for `/healthz`.
async fn gateway(
    dir: &std::path::Path,
    settings: &str,
    shell_prefix: &str,
    stderr: std::process::Stdio,
) -> Gateway {
    let path = dir.join("settings.toml");
    std::fs::write(&path, settings).unwrap();
    let port = free_port();
    let script = format!(
        "{shell_prefix} exec '{}' --config '{}' --bind 127.0.0.1:{port}",
        env!("CARGO_BIN_EXE_bbb-gateway"),
        path.display()
    );
    let child = std::process::Command::new("bash")
        .arg("-c")
        .arg(script)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let gw = Gateway { child, port };
    for _ in 0..150 {
        if awc::Client::new()
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return gw;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("bbb-gateway did not start");
}

#[actix_web::test]
async fn sigterm_closes_every_socket_with_1012_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let settings = binary_settings(&dir.path().join("db.sqlite3"), "");
    let mut gw = gateway(dir.path(), &settings, "", std::process::Stdio::null()).await;
    let url = format!("http://127.0.0.1:{}/ws/world/sample/", gw.port);
    let mut anonymous = Ws::connect(&url).await;
    let mut member = Ws::connect(&url).await;
    member.authenticate(json!({"client_id": "stopping"})).await;
    let pid = gw.child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    for ws in [&mut anonymous, &mut member] {
        match ws.next_within(Duration::from_secs(10)).await {
            Some(Received::Close(Some(reason))) => assert_eq!(u16::from(reason.code), 1012),
            other => panic!("expected a 1012 close, got {other:?}"),
        }
    }
    let status = blocking(move || {
        let status = gw.child.wait().unwrap();
        std::mem::forget(gw);
        status
    })
    .await;
    assert_eq!(status.code(), Some(0));
}

/// Whether this test runs as root (who writes through any file mode).
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    let probe = tempfile::NamedTempFile::new().unwrap();
    probe.as_file().metadata().unwrap().uid() == 0
}

#[actix_web::test]
async fn an_unwritable_database_at_start_exits_2_naming_the_file_before_the_port_opens() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let db = data.join("ro.sqlite3");
    bbb_gateway::store::check_writable(&db).unwrap();
    // Another connection keeps the -wal and -shm files present.
    let keeper = rusqlite::Connection::open(&db).unwrap();
    keeper
        .query_row("SELECT COUNT(*) FROM users", [], |r| r.get::<_, i64>(0))
        .unwrap();
    let settings_path = dir.path().join("settings.toml");
    std::fs::write(&settings_path, binary_settings(&db, "")).unwrap();
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    }
    assert!(data.join("ro.sqlite3-wal").exists() && data.join("ro.sqlite3-shm").exists());
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o555)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let port = free_port();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_bbb-gateway"));
    cmd.arg("--config")
        .arg(&settings_path)
        .arg("--bind")
        .arg(format!("127.0.0.1:{port}"));
    if running_as_root() {
        // Root ignores file modes: run as nobody, for whom they hold.
        use std::os::unix::process::CommandExt;
        cmd.uid(65534).gid(65534);
    }
    let out = blocking(move || cmd.output().unwrap()).await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(lines[0].contains(&db.display().to_string()), "{stderr}");
    assert!(!stderr.contains("listening"), "{stderr}");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    drop(keeper);
}

#[actix_web::test]
async fn readiness_is_503_database_when_writes_fail_on_a_full_disk() {
    let dir = tempfile::tempdir().unwrap();
    let settings = binary_settings(&dir.path().join("full.sqlite3"), "");
    // A file-size limit of 1 MiB stands in for a full disk: writes past it fail (EFBIG).
    let gw = gateway(
        dir.path(),
        &settings,
        "trap '' XFSZ; ulimit -f 1024;",
        std::process::Stdio::null(),
    )
    .await;
    let ready = format!("http://127.0.0.1:{}/readyz", gw.port);
    assert_eq!(http_get(&ready).await, (200, r#"{"ready":true}"#.to_string()));
    let mut ws = Ws::connect(&format!("http://127.0.0.1:{}/ws/world/sample/", gw.port)).await;
    ws.authenticate(json!({"client_id": "filler"})).await;
    let update = |i: usize| {
        let profile = json!({"display_name": format!("F{i}"), "bio": format!("{i}{}", "f".repeat(15_000))});
        json!({ "profile": profile })
    };
    let mut first_failure = None;
    for i in 0..400 {
        let r = ws.request("user.update", update(i)).await;
        if r[0] == "error" {
            assert_eq!(code(&r), "server.fatal");
            first_failure = Some(i);
            break;
        }
    }
    assert!(first_failure.is_some(), "writes fail once the files cannot grow");
    // While writes keep failing, readiness says so (the write right after the first failure
    // may still find room freed by its rollback).
    let mut states = Vec::new();
    for i in 0..4 {
        let r = ws.request("user.update", update(1000 + i)).await;
        assert_eq!(code(&r), "server.fatal");
        states.push(http_get(&ready).await);
    }
    let not_ready = (503, r#"{"ready":false,"reason":"database"}"#.to_string());
    assert_eq!(states.last(), Some(&not_ready), "{states:?}");
    assert!(
        states.iter().filter(|s| **s == not_ready).count() >= 3,
        "{states:?}"
    );
    // The socket stays usable.
    ws.send_json(json!(["ping", 1])).await;
    assert_eq!(ws.recv().await, json!(["pong", 1]));
}

#[actix_web::test]
async fn an_outage_of_every_server_writes_a_few_log_lines_not_one_per_join() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.log");
    let settings = binary_settings(&dir.path().join("db.sqlite3"), "")
        .replace(
            "[simulator]",
            "[bbb]\nunhealthy_after = 1\npoll_interval_ms = 60000\nrequest_timeout_ms = 500\n\n\
             [[bbb.servers]]\nid = \"down\"\nurl = \"http://127.0.0.1:9/bigbluebutton/\"\nsecret = \"s\"\n\n[simulator]",
        );
    let gw = gateway(
        dir.path(),
        &settings,
        "",
        std::process::Stdio::from(std::fs::File::create(&log).unwrap()),
    )
    .await;
    let url = format!("http://127.0.0.1:{}/ws/world/sample/", gw.port);
    // The first poll marks the only server unhealthy.
    for _ in 0..100 {
        let (status, _) = http_get(&format!("http://127.0.0.1:{}/readyz", gw.port)).await;
        if status == 503 {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let mut joins = 0;
    for s in 0..4 {
        let mut ws = Ws::connect(&url).await;
        ws.authenticate(json!({"client_id": format!("outage-{s}")})).await;
        ws.set_name("Outage").await;
        for _ in 0..250 {
            let r = ws.request("bbb.room_url", json!({"room": "stage"})).await;
            assert_eq!(code(&r), "bbb.failed");
            joins += 1;
        }
    }
    let (_, metrics) = http_get(&format!("http://127.0.0.1:{}/metrics", gw.port)).await;
    assert!(
        metrics.contains(r#"requests_total{action="bbb.room_url",code="bbb.failed"} 1000"#),
        "exact counts stay in /metrics"
    );
    drop(gw);
    let text = std::fs::read_to_string(&log).unwrap();
    let lines = text.lines().filter(|l| l.contains("no usable server")).count();
    assert!(
        joins == 1000 && (1..=3).contains(&lines),
        "{lines} lines for {joins} joins:\n{text}"
    );
}

fn open_sockets(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("socket:"))
        .count()
}

#[actix_web::test]
async fn a_peer_that_never_reads_loses_its_connection_after_the_close_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let settings = binary_settings(
        &dir.path().join("db.sqlite3"),
        "heartbeat_interval_ms = 200\nclient_timeout_ms = 1000",
    ) + "\n[bbb]\npoll_interval_ms = 600000\n";
    let gw = gateway(dir.path(), &settings, "", std::process::Stdio::null()).await;
    let pid = gw.child.id();
    let port = gw.port;
    let mut sender = Ws::connect(&format!("http://127.0.0.1:{port}/ws/world/sample/")).await;
    sender.authenticate(json!({"client_id": "drop-sender"})).await;
    sender.set_name("Sender").await;
    let base = open_sockets(pid);
    let sinks = blocking(move || {
        (0..6)
            .map(|_| {
                let mut raw = RawWs::connect(port, "sample");
                let id = user_id(&raw.authenticate("drop-sink"));
                (raw, id)
            })
            .collect::<Vec<_>>()
    })
    .await;
    let sink_id = sinks[0].1.clone();
    let r = sender
        .request("chat.direct.create", json!({"users": [sink_id]}))
        .await;
    let channel = ok(&r)["id"].as_str().unwrap().to_string();
    for i in 0..40 {
        let body = format!("{i:02}{}", "z".repeat(9_990));
        let r = sender
            .request(
                "chat.send",
                json!({"channel": channel, "event_type": "channel.message", "content": {"type": "text", "body": body}}),
            )
            .await;
        ok(&r);
    }
    // Large pages the sinks never read, asked for one at a time: more than kernel buffers
    // hold, so the service's writer is stuck on each connection when its session ends.
    let mut sinks = blocking(move || {
        let mut sinks: Vec<RawWs> = sinks.into_iter().map(|(raw, _)| raw).collect();
        for i in 0..12 {
            for raw in &mut sinks {
                raw.try_send_text(&json!(["chat.fetch", i, {"channel": channel, "count": 40}]).to_string());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        sinks
    })
    .await;
    // Heartbeat (1 s) or backlog close, then at most the 5 s linger, then the connections
    // are dropped: the service is back to the sockets it had before the sinks came.
    let deadline = Instant::now() + Duration::from_secs(20);
    while open_sockets(pid) > base && Instant::now() < deadline {
        actix_web::rt::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        open_sockets(pid) <= base,
        "the six connections are dropped: {} sockets open, {base} before",
        open_sockets(pid)
    );
    // The peers find their connection ended once they read.
    let ended = blocking(move || {
        sinks.iter_mut().all(|raw| {
            let mut buf = vec![0u8; 1 << 16];
            loop {
                match raw.tcp.read(&mut buf) {
                    Ok(0) | Err(_) => return true,
                    Ok(_) => {}
                }
            }
        })
    })
    .await;
    assert!(ended);
    drop(sender);
}
