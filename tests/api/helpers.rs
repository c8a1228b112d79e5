//! `spawn_app()` and a small WebSocket client for the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use bbb_gateway::app::{Application, Services};
use bbb_gateway::config::{self, Settings};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

pub const JWT_SECRET: &str = "test-jwt-secret-7f3a";
pub const ADMIN_TOKEN: &str = "test-admin-token-91b2";
pub const SIM_SECRET: &str = "test-simulator-secret-55c1";

/// Settings for tests: world "sample" (JWT + client ids), world "closed" (token traits needed).
pub fn base_settings_toml(db: &str) -> String {
    format!(
        r#"
[server]
bind = "127.0.0.1:0"
database = "{db}"
admin_token = "{ADMIN_TOKEN}"
max_frame_bytes = 4096
requests_per_second = 50
heartbeat_interval_ms = 200
client_timeout_ms = 2000

[bbb]
request_timeout_ms = 1000
poll_interval_ms = 60000

[simulator]
enabled = true
secret = "{SIM_SECRET}"

[[worlds]]
id = "sample"
title = "Sample World"
timezone = "Europe/Berlin"
trait_grants = {{ attendee = [], moderator = ["moderator"], admin = ["admin"] }}

[[worlds.jwt_secrets]]
issuer = "any"
audience = "venueless"
secret = "{JWT_SECRET}"

[[worlds.rooms]]
id = "stage"
name = "Main stage"
trait_grants = {{ viewer = [], participant = [], speaker = ["speaker"] }}
modules = [ {{ type = "call.bigbluebutton", config = {{ record = true }} }} ]

[[worlds.rooms]]
id = "backstage"
name = "Backstage"
trait_grants = {{ viewer = [], speaker = ["speaker"] }}
modules = [ {{ type = "call.bigbluebutton", config = {{}} }} ]

[[worlds.rooms]]
id = "lounge"
name = "Lounge"
trait_grants = {{ viewer = [] }}
modules = [ {{ type = "chat.native", config = {{}} }} ]

[[worlds.rooms]]
id = "secret-room"
name = "Hidden"
trait_grants = {{ viewer = ["vip"] }}
modules = [ {{ type = "call.bigbluebutton", config = {{}} }} ]

[[worlds.role_grants]]
uid = "granted-speaker"
role = "speaker"
room = "backstage"

[[worlds]]
id = "nochat"
title = "No DMs"
trait_grants = {{ visitor = [] }}
roles = {{ visitor = ["world:view"] }}

[[worlds]]
id = "closed"
title = "Closed World"
connection_limit = 1
trait_grants = {{ attendee = ["ticket"], participant = ["ticket", ["speaker", "crew"]], admin = ["admin"] }}

[[worlds.jwt_secrets]]
issuer = "any"
audience = "venueless"
secret = "{JWT_SECRET}"
"#
    )
}

pub struct TestApp {
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
    pub settings_toml: String,
    pub handle: ServerHandle,
    pub services: Services,
}

/// Starts the app on port 0 with the base settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|s| s).await
}

/// Starts the app with the base settings text transformed by `edit`.
pub async fn spawn_app_with(edit: impl FnOnce(String) -> String) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data/test.sqlite3");
    let toml = edit(base_settings_toml(db.to_str().unwrap()));
    start(dir, db, toml).await
}

/// A fresh database on the test binary's shared PostgreSQL server.
pub fn fresh_pg_database() -> String {
    let server = bbb_gateway::pgserver::shared().expect("PostgreSQL for tests starts");
    server.fresh_database().unwrap()
}

/// An instance of a cluster: the base settings on PostgreSQL database `url`, named `name`,
/// with the settings text transformed by `edit`.
pub async fn spawn_pg_app_with(url: &str, name: &str, edit: impl FnOnce(String) -> String) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let toml =
        base_settings_toml(url).replace("[server]\n", &format!("[server]\ninstance_name = \"{name}\"\n"));
    let toml = edit(toml);
    start(dir, PathBuf::from(url), toml).await
}

pub async fn spawn_pg_app(url: &str, name: &str) -> TestApp {
    spawn_pg_app_with(url, name, |s| s).await
}

/// `{PORT}` in the settings text is replaced by the port the app listens on, so servers can
/// point at the app's own simulator instances.
pub async fn restart_with(dir: tempfile::TempDir, db: PathBuf, toml: String) -> TestApp {
    start(dir, db, toml).await
}

async fn start(dir: tempfile::TempDir, db: PathBuf, toml: String) -> TestApp {
    let _ = env_logger::builder().is_test(true).try_init();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let template = toml;
    let toml = template.replace("{PORT}", &listener.local_addr().unwrap().port().to_string());
    let path = dir.path().join("settings.toml");
    std::fs::write(&path, &toml).unwrap();
    let settings: Settings = config::load_with_env(&path, &[]).expect("test settings are valid");
    let app = Application::build(settings, listener, Some(path))
        .await
        .expect("app starts");
    let port = app.port();
    let handle = app.handle();
    let services = app.services().clone();
    actix_web::rt::spawn(app.run_until_stopped());
    TestApp {
        port,
        dir,
        db,
        settings_toml: template,
        handle,
        services,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// Stops this instance and starts a new one on the same database and settings.
    pub async fn restart(self) -> TestApp {
        self.handle.stop(true).await;
        start(self.dir, self.db, self.settings_toml).await
    }

    pub async fn ws(&self, world: &str) -> Ws {
        Ws::connect(&self.url(&format!("/ws/world/{world}/"))).await
    }

    /// A socket authenticated with a client id, its `authenticated` body returned too.
    pub async fn client(&self, world: &str, client_id: &str) -> (Ws, Value) {
        let mut ws = self.ws(world).await;
        let body = ws.authenticate(json!({"client_id": client_id})).await;
        (ws, body)
    }

    /// A socket authenticated with a JWT for `uid` with `traits`.
    pub async fn token_user(&self, world: &str, uid: &str, traits: &[&str]) -> (Ws, Value) {
        let mut ws = self.ws(world).await;
        let body = ws.authenticate(json!({"token": token(uid, traits)})).await;
        (ws, body)
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        http_get(&self.url(path)).await
    }

    pub async fn post_json(&self, path: &str, body: Value) -> (u16, String) {
        let mut res = awc::Client::new()
            .post(self.url(path))
            .send_json(&body)
            .await
            .unwrap();
        let body = res.body().limit(10 << 20).await.unwrap();
        (res.status().as_u16(), String::from_utf8_lossy(&body).into_owned())
    }

    /// The simulator's counters for `instance`.
    pub async fn sim_stats(&self, instance: &str) -> Value {
        let (status, body) = self.get("/simulator/stats").await;
        assert_eq!(status, 200);
        let v: Value = serde_json::from_str(&body).unwrap();
        v["instances"][instance].clone()
    }

    /// Everything the simulator instance knows about a meeting (404 → None).
    pub async fn sim_meeting(&self, instance: &str, meeting_id: &str) -> Option<Value> {
        let (status, body) = self
            .get(&format!("/simulator/{instance}/meetings/{meeting_id}"))
            .await;
        (status == 200).then(|| serde_json::from_str(&body).unwrap())
    }

    pub async fn sim_fault(&self, instance: &str, mode: &str) {
        let (status, body) = self
            .post_json(&format!("/simulator/{instance}/fault"), json!({"mode": mode}))
            .await;
        assert_eq!(status, 200, "{body}");
    }

    /// Ends a meeting on the simulator, as a moderator pressing End would.
    pub async fn sim_end(&self, instance: &str, meeting_id: &str) {
        let mut res = awc::Client::new()
            .post(self.url(&format!("/simulator/{instance}/meetings/{meeting_id}/end")))
            .send()
            .await
            .unwrap();
        let _ = res.body().await;
        assert!(res.status().is_success());
    }
}

pub async fn http_get(url: &str) -> (u16, String) {
    let mut res = awc::Client::new()
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    let body = res.body().limit(10 << 20).await.unwrap();
    (res.status().as_u16(), String::from_utf8_lossy(&body).into_owned())
}

/// The decoded query parameters of a URL.
pub fn query_params(url: &str) -> std::collections::HashMap<String, String> {
    let parsed = url::Url::parse(url).unwrap();
    parsed.query_pairs().into_owned().collect()
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// An HS256 token signed with the test worlds' secret.
pub fn token(uid: &str, traits: &[&str]) -> String {
    sign(json!({"iss": "any", "aud": "venueless", "uid": uid, "traits": traits, "exp": now() + 600}))
}

pub fn sign(claims: Value) -> String {
    sign_with(claims, JWT_SECRET)
}

pub fn sign_with(claims: Value, secret: &str) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

pub use bbb_gateway::wsclient::Received;
use bbb_gateway::wsclient::WsClient;

/// The shared WebSocket client ([`WsClient`]) with panicking helpers for tests.
pub struct Ws {
    client: WsClient,
}

/// Read access to the client's counters (`fragmented_messages`).
impl std::ops::Deref for Ws {
    type Target = WsClient;

    fn deref(&self) -> &WsClient {
        &self.client
    }
}

impl Ws {
    pub async fn connect(url: &str) -> Ws {
        let client = WsClient::connect(&awc::Client::new(), url, 16 << 20)
            .await
            .expect("websocket connects");
        Ws { client }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.client.send_text(text).await.unwrap();
    }

    pub async fn send_json(&mut self, value: Value) {
        self.client.send_json(&value).await.unwrap();
    }

    pub async fn send_binary(&mut self, bytes: &[u8]) {
        self.client.send_binary(bytes).await.unwrap();
    }

    /// The next JSON frame or close, skipping pings; panics after 5 s.
    pub async fn next(&mut self) -> Received {
        self.next_within(Duration::from_secs(5))
            .await
            .expect("a frame within 5 s")
    }

    /// The next JSON frame or close within `wait` (a broken connection counts as a close).
    pub async fn next_within(&mut self, wait: Duration) -> Option<Received> {
        match actix_web::rt::time::timeout(wait, self.client.next_message()).await {
            Err(_) => None,
            Ok(Ok(received)) => Some(received),
            Ok(Err(bbb_gateway::wsclient::WsClientError::BadJson(e))) => panic!("server sends JSON: {e}"),
            Ok(Err(_)) => Some(Received::Close(None)),
        }
    }

    /// The next JSON frame; panics on close.
    pub async fn recv(&mut self) -> Value {
        match self.next().await {
            Received::Json(v) => v,
            Received::Close(r) => panic!("socket closed: {r:?}"),
        }
    }

    /// Waits for a frame whose first element is `name` (skipping others).
    pub async fn recv_event(&mut self, name: &str) -> Value {
        for _ in 0..50 {
            let v = self.recv().await;
            if v[0] == name {
                return v;
            }
        }
        panic!("no {name} event");
    }

    /// Asserts that nothing arrives for `wait`.
    pub async fn expect_silence(&mut self, wait: Duration) {
        if let Some(r) = self.next_within(wait).await {
            panic!("expected silence, got {r:?}");
        }
    }

    /// Sends `authenticate` and returns the `authenticated` body; panics on error.
    pub async fn authenticate(&mut self, body: Value) -> Value {
        self.send_json(json!(["authenticate", body])).await;
        let reply = self.recv().await;
        assert_eq!(reply[0], "authenticated", "authentication failed: {reply}");
        reply[1].clone()
    }

    /// Sends `authenticate` and returns whatever came back.
    pub async fn try_authenticate(&mut self, body: Value) -> Value {
        self.send_json(json!(["authenticate", body])).await;
        self.recv().await
    }

    /// Sends `[action, id, body]` and waits for the reply carrying that id.
    pub async fn request(&mut self, action: &str, body: Value) -> Value {
        let id = self.client.take_id();
        self.send_json(json!([action, id, body])).await;
        self.reply_to(json!(id)).await
    }

    /// Waits for the success/error frame with `id`, skipping pushes.
    pub async fn reply_to(&mut self, id: Value) -> Value {
        for _ in 0..100 {
            let v = self.recv().await;
            if bbb_gateway::wsclient::is_reply_to(&v, &id) {
                return v;
            }
        }
        panic!("no reply to {id}");
    }

    pub async fn set_name(&mut self, name: &str) {
        let r = self
            .request("user.update", json!({"profile": {"display_name": name}}))
            .await;
        assert_eq!(r[0], "success", "{r}");
    }
}

/// The error code of an error frame (id or not).
pub fn code(frame: &Value) -> String {
    assert_eq!(frame[0], "error", "not an error: {frame}");
    let body = frame.as_array().unwrap().last().unwrap();
    body["code"].as_str().unwrap().to_string()
}

/// A named user of the sample world on one socket, with their user id.
pub struct Person {
    pub ws: Ws,
    pub id: String,
}

/// Logs `client_id` into the sample world and sets the display name `name`.
pub async fn person(app: &TestApp, client_id: &str, name: &str) -> Person {
    let (mut ws, body) = app.client("sample", client_id).await;
    ws.set_name(name).await;
    Person {
        ws,
        id: body["user.config"]["id"].as_str().unwrap().to_string(),
    }
}
