//! Cluster faults (SPEC §10): PostgreSQL stopped and started again under a running instance,
//! PostgreSQL unreachable at start, and an instance killed with SIGKILL in the middle of chat
//! sends (the real binary).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bbb_gateway::pgserver::PgServer;
use serde_json::{json, Value};

use crate::helpers::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[actix_web::test]
async fn postgres_stopped_and_started_again_readiness_fatal_and_recovery() {
    // Its own server: this test stops it.
    let server = web_block(PgServer::start).await.unwrap();
    let url = server.create_database("outage").unwrap();
    let app = spawn_pg_app(&url, "solo").await;
    let (mut ws, _) = app.client("sample", "ann").await;
    ws.set_name("Before").await;
    assert_eq!(app.get("/readyz").await.0, 200);

    let server = web_block(move || {
        server.stop().unwrap();
        server
    })
    .await;
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"ready": false, "reason": "database"})
    );
    let r = ws
        .request("user.update", json!({"profile": {"display_name": "During"}}))
        .await;
    assert_eq!(code(&r), "server.fatal", "{r}");
    ws.send_json(json!(["ping", 7])).await;
    assert_eq!(ws.recv().await, json!(["pong", 7]), "the socket stays open");

    let _server = web_block(move || {
        server.start_again().unwrap();
        server
    })
    .await;
    let started = Instant::now();
    loop {
        if app.get("/readyz").await.0 == 200 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "no recovery");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    let r = ws
        .request("user.update", json!({"profile": {"display_name": "After"}}))
        .await;
    assert_eq!(r[0], "success", "recovered without a restart: {r}");
}

async fn web_block<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    actix_web::rt::task::spawn_blocking(f).await.unwrap()
}

#[test]
fn unreachable_postgres_at_start_exits_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pg.toml");
    let port = free_port();
    std::fs::write(
        &path,
        format!("[server]\ndatabase = \"postgres://nobody:hunter2@127.0.0.1:{port}/none\"\n"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bbb-gateway"))
        .arg("--config")
        .arg(&path)
        .args(["--bind", "127.0.0.1:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("bbb-gateway:")).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("PostgreSQL"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "no password in the output");
}

/// A `bbb-gateway` child process, killed on drop.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start_binary(settings: &std::path::Path, port: u16) -> Child {
    let child = Child(
        Command::new(env!("CARGO_BIN_EXE_bbb-gateway"))
            .arg("--config")
            .arg(settings)
            .args(["--bind", &format!("127.0.0.1:{port}")])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    for _ in 0..80 {
        if http_get_opt(&format!("http://127.0.0.1:{port}/readyz")).await == Some(200) {
            return child;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("bbb-gateway did not start");
}

async fn http_get_opt(url: &str) -> Option<u16> {
    awc::Client::new()
        .get(url)
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

#[actix_web::test]
async fn sigkill_mid_chat_sends_loses_nothing_acknowledged() {
    let url = fresh_pg_database();
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("settings.toml");
    std::fs::write(&settings, base_settings_toml(&url)).unwrap();
    let (port_a, port_b) = (free_port(), free_port());
    let mut a = start_binary(&settings, port_a).await;
    let _b = start_binary(&settings, port_b).await;
    let ws_url = |port: u16| format!("http://127.0.0.1:{port}/ws/world/sample/");

    let mut ann = Ws::connect(&ws_url(port_a)).await;
    let ann_id = ann.authenticate(json!({"client_id": "ann"})).await["user.config"]["id"].clone();
    let mut ben = Ws::connect(&ws_url(port_b)).await;
    let ben_id = ben.authenticate(json!({"client_id": "ben"})).await["user.config"]["id"].clone();
    let r = ann
        .request("chat.direct.create", json!({"users": [ben_id]}))
        .await;
    let channel = r[2]["id"].as_str().unwrap().to_string();

    // Pipeline sends; kill A after some acknowledgements, with more in flight.
    let mut acked = Vec::new();
    let mut next_id = 1000u64;
    for _ in 0..80 {
        next_id += 1;
        ann.send_json(json!(["chat.send", next_id, {"channel": channel,
            "event_type": "channel.message", "content": {"type": "text", "body": format!("m{next_id}")}}]))
            .await;
    }
    loop {
        match ann.next_within(Duration::from_secs(5)).await {
            Some(Received::Json(v)) if v[0] == "success" => {
                acked.push(
                    v[2]["event"]["event_id"]
                        .as_i64()
                        .unwrap_or_else(|| panic!("chat.send success carries the event: {v}")),
                );
                if acked.len() == 20 {
                    a.0.kill().unwrap();
                }
            }
            Some(Received::Json(_)) => {}
            Some(Received::Close(_)) | None => break,
        }
    }
    let _ = a.0.wait();
    let killed = Instant::now();
    assert!(acked.len() >= 20, "acknowledged before the kill: {}", acked.len());

    // The dead instance's sockets count until its heartbeat expires, then no longer.
    let online = |r: &Value| r[2][ann_id.as_str().unwrap()] == true;
    let r = ben.request("user.online_status", json!({"ids": [ann_id]})).await;
    assert!(online(&r), "right after the kill Ann still counts: {r}");
    loop {
        let r = ben.request("user.online_status", json!({"ids": [ann_id]})).await;
        if !online(&r) {
            break;
        }
        assert!(killed.elapsed() < Duration::from_secs(10), "{r}");
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        killed.elapsed() >= Duration::from_secs(3),
        "not before the heartbeat expired"
    );

    // Ann reconnects to B and finds every acknowledged message.
    let mut ann = Ws::connect(&ws_url(port_b)).await;
    ann.authenticate(json!({"client_id": "ann"})).await;
    let r = ann
        .request("chat.fetch", json!({"channel": channel, "count": 100}))
        .await;
    assert_eq!(r[0], "success", "{r}");
    let stored: Vec<i64> = r[2]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_id"].as_i64().unwrap())
        .collect();
    for id in &acked {
        assert!(stored.contains(id), "acknowledged event {id} lost");
    }
}

#[actix_web::test]
async fn sigterm_closes_sockets_with_1012_exits_0_and_leaves_the_cluster_at_once() {
    let url = fresh_pg_database();
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("settings.toml");
    std::fs::write(&settings, base_settings_toml(&url)).unwrap();
    let (port_a, port_b) = (free_port(), free_port());
    let mut a = start_binary(&settings, port_a).await;
    let _b = start_binary(&settings, port_b).await;
    let ws_url = |port: u16| format!("http://127.0.0.1:{port}/ws/world/sample/");
    let mut ann = Ws::connect(&ws_url(port_a)).await;
    let ann_id = ann.authenticate(json!({"client_id": "ann"})).await["user.config"]["id"].clone();
    let mut ben = Ws::connect(&ws_url(port_b)).await;
    ben.authenticate(json!({"client_id": "ben"})).await;
    let r = ben.request("user.online_status", json!({"ids": [ann_id]})).await;
    assert_eq!(r[2][ann_id.as_str().unwrap()], true, "{r}");

    let term = Command::new("kill")
        .args(["-TERM", &a.0.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    match ann.next_within(Duration::from_secs(10)).await {
        Some(Received::Close(Some(reason))) => assert_eq!(u16::from(reason.code), 1012),
        other => panic!("expected a 1012 close, got {other:?}"),
    }
    let status = actix_web::rt::task::spawn_blocking(move || {
        let status = a.0.wait().unwrap();
        std::mem::forget(a);
        status
    })
    .await
    .unwrap();
    assert_eq!(status.code(), Some(0));
    // Signed off: Ann is offline for the cluster at once, not after the heartbeat expiry.
    let r = ben.request("user.online_status", json!({"ids": [ann_id]})).await;
    assert_eq!(r[2][ann_id.as_str().unwrap()], false, "{r}");
}

#[actix_web::test]
async fn log_lines_name_the_instance() {
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("settings.toml");
    let db = dir.path().join("db.sqlite3");
    std::fs::write(
        &settings,
        base_settings_toml(db.to_str().unwrap())
            .replace("[server]\n", "[server]\ninstance_name = \"log-check-7\"\n"),
    )
    .unwrap();
    let log = dir.path().join("stderr.log");
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bbb-gateway"))
        .arg("--config")
        .arg(&settings)
        .args(["--bind", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if http_get_opt(&format!("http://127.0.0.1:{port}/healthz")).await == Some(200) {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let mut ws = Ws::connect(&format!("http://127.0.0.1:{port}/ws/world/sample/")).await;
    ws.authenticate(json!({"client_id": "logged"})).await;
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = actix_web::rt::task::spawn_blocking(move || child.wait()).await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.lines().any(|l| l.contains(" log-check-7] ")),
        "no line names the instance:\n{text}"
    );
}

#[actix_web::test]
async fn warm_joins_need_no_database_and_cold_ones_fail_cleanly_while_it_is_down() {
    let server = web_block(PgServer::start).await.unwrap();
    let url = server.create_database("warm").unwrap();
    let a = spawn_pg_app(&url, "node-a").await;
    let (mut ann, _) = a.client("sample", "ann").await;
    ann.set_name("Ann").await;
    let r = ann.request("bbb.room_url", json!({"room": "stage"})).await;
    assert_eq!(r[0], "success", "{r}");
    let (mut speaker, _) = a.token_user("sample", "granted-speaker", &["speaker"]).await;
    speaker.set_name("Speaker").await;
    let _server = web_block(move || {
        server.stop().unwrap();
        server
    })
    .await;
    // The meeting is known running here: signed from memory.
    let r = ann.request("bbb.room_url", json!({"room": "stage"})).await;
    assert_eq!(r[0], "success", "a warm join without the database: {r}");
    // A room whose meeting must be created needs the cluster's claim: bbb.failed.
    let r = speaker
        .request("bbb.room_url", json!({"room": "backstage"}))
        .await;
    assert_eq!(code(&r), "bbb.failed", "{r}");
}
