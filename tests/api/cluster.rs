//! Several instances on one PostgreSQL database (SPEC §10): each test starts two or three
//! in-process instances (each its own `Application` on port 0) on a fresh database of the
//! binary's shared, real PostgreSQL server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;

async fn admin_request(app: &TestApp, method: &str, path: &str) -> (u16, Value) {
    let client = awc::Client::new();
    let req = match method {
        "GET" => client.get(app.url(path)),
        _ => client.post(app.url(path)),
    }
    .insert_header(("Authorization", format!("Bearer {ADMIN_TOKEN}")));
    let mut res = req.send().await.unwrap();
    let bytes = res.body().await.unwrap();
    (
        res.status().as_u16(),
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn admin_post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let mut res = awc::Client::new()
        .post(app.url(path))
        .insert_header(("Authorization", format!("Bearer {ADMIN_TOKEN}")))
        .send_json(&body)
        .await
        .unwrap();
    let bytes = res.body().await.unwrap();
    (
        res.status().as_u16(),
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Polls `check` every 50 ms until it holds; panics after `within`.
async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < within {
        if check().await {
            return;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen within {within:?}");
}

async fn two_instances() -> (TestApp, TestApp) {
    let url = fresh_pg_database();
    let a = spawn_pg_app(&url, "node-a").await;
    let b = spawn_pg_app(&url, "node-b").await;
    (a, b)
}

fn user_id(body: &Value) -> String {
    body["user.config"]["id"].as_str().unwrap().to_string()
}

#[actix_web::test]
async fn chat_events_and_profile_updates_cross_instances_within_a_second() {
    let (a, b) = two_instances().await;
    let (mut ann, ann_body) = a.client("sample", "ann").await;
    let (mut ben, ben_body) = b.client("sample", "ben").await;
    // Ann's second socket is on the other instance.
    let (mut ann_on_b, _) = b.client("sample", "ann").await;
    let r = ann
        .request("chat.direct.create", json!({"users": [user_id(&ben_body)]}))
        .await;
    assert_eq!(r[0], "success", "{r}");
    let channel = r[2]["id"].as_str().unwrap().to_string();
    let sent = Instant::now();
    let r = ann
        .request(
            "chat.send",
            json!({"channel": channel, "event_type": "channel.message",
                   "content": {"type": "text", "body": "across"}}),
        )
        .await;
    assert_eq!(r[0], "success", "{r}");
    let pushed = ben.recv_event("chat.event").await;
    assert!(sent.elapsed() < Duration::from_secs(1), "{:?}", sent.elapsed());
    assert_eq!(pushed[1]["content"]["body"], "across");
    assert_eq!(pushed[1]["channel"], channel.as_str());
    let mine = ann_on_b.recv_event("chat.event").await;
    assert_eq!(mine[1]["event_id"], pushed[1]["event_id"]);
    // A profile change on A reaches the user's socket on B.
    ann.set_name("Ann Across").await;
    let updated = ann_on_b.recv_event("user.updated").await;
    assert_eq!(updated[1]["id"], user_id(&ann_body).as_str());
    assert_eq!(updated[1]["profile"]["display_name"], "Ann Across");
}

#[actix_web::test]
async fn large_pushes_cross_instances_through_a_row() {
    let url = fresh_pg_database();
    let big_frames = |s: String| s.replace("max_frame_bytes = 4096", "max_frame_bytes = 65536");
    let a = spawn_pg_app_with(&url, "node-a", big_frames).await;
    let b = spawn_pg_app_with(&url, "node-b", big_frames).await;
    let (mut ann, _) = a.client("sample", "ann").await;
    let (mut ben, ben_body) = b.client("sample", "ben").await;
    let r = ann
        .request("chat.direct.create", json!({"users": [user_id(&ben_body)]}))
        .await;
    let channel = r[2]["id"].as_str().unwrap().to_string();
    // Over PostgreSQL's 8000-byte NOTIFY limit, and several in a row: order kept.
    for i in 0..5 {
        let body = format!("{i}:{}", "x".repeat(9000));
        let r = ann
            .request(
                "chat.send",
                json!({"channel": channel, "event_type": "channel.message",
                       "content": {"type": "text", "body": body}}),
            )
            .await;
        assert_eq!(r[0], "success", "{r}");
    }
    for i in 0..5 {
        let pushed = ben.recv_event("chat.event").await;
        assert!(
            pushed[1]["content"]["body"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{i}:")),
            "order kept"
        );
    }
}

#[actix_web::test]
async fn connection_limit_counts_sockets_on_every_instance() {
    let (a, b) = two_instances().await;
    let (mut first, _) = a.token_user("closed", "limited", &["ticket"]).await;
    let (mut second, _) = b.token_user("closed", "limited", &["ticket"]).await;
    assert_eq!(
        first.recv().await,
        json!(["error", {"code": "connection.replaced"}])
    );
    second.send_json(json!(["ping", 2])).await;
    assert_eq!(second.recv().await, json!(["pong", 2]));
}

#[actix_web::test]
async fn admin_disable_and_moderation_apply_on_every_instance() {
    let (a, b) = two_instances().await;
    let (status, _) = admin_request(&a, "POST", "/admin/servers/simulator/disable").await;
    assert_eq!(status, 200);
    eventually(Duration::from_secs(1), "disable seen on B", || async {
        let (_, body) = admin_request(&b, "GET", "/admin/servers").await;
        body["servers"][0]["active"] == false
    })
    .await;
    let (status, _) = admin_request(&b, "POST", "/admin/servers/simulator/enable").await;
    assert_eq!(status, 200);
    eventually(Duration::from_secs(1), "enable seen on A", || async {
        let (_, body) = admin_request(&a, "GET", "/admin/servers").await;
        body["servers"][0]["active"] == true
    })
    .await;

    let (mut mallory, body) = b.client("sample", "mallory").await;
    let id = user_id(&body);
    let (status, _) = admin_post(
        &a,
        &format!("/admin/worlds/sample/users/{id}/moderation"),
        json!({"state": "banned"}),
    )
    .await;
    assert_eq!(status, 200);
    let started = Instant::now();
    assert_eq!(mallory.recv_event("connection.reload").await[1], json!({}));
    assert!(started.elapsed() < Duration::from_secs(1));
    // B refuses the banned user from now on.
    let mut again = b.ws("sample").await;
    let r = again.try_authenticate(json!({"client_id": "mallory"})).await;
    assert_eq!(code(&r), "auth.denied", "{r}");
}

#[actix_web::test]
async fn admin_servers_lists_the_live_instances_with_their_sockets() {
    let (a, b) = two_instances().await;
    let (_s1, _) = b.client("sample", "one").await;
    let (_s2, _) = b.client("sample", "two").await;
    eventually(Duration::from_secs(3), "both instances listed", || async {
        let (status, body) = admin_request(&a, "GET", "/admin/servers").await;
        assert_eq!(status, 200);
        let list = body["instances"].as_array().unwrap().clone();
        let names: Vec<&str> = list
            .iter()
            .map(|i| i["instance_name"].as_str().unwrap())
            .collect();
        names == ["node-a", "node-b"]
            && list[1]["sockets"] == 2
            && list[0]["last_heartbeat"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z'))
    })
    .await;
    let (_, metrics) = a.get("/metrics").await;
    assert!(
        metrics.contains("instance=\"node-a\""),
        "metrics carry the instance name"
    );
}

#[actix_web::test]
async fn instances_starting_together_on_an_empty_database_migrate_once() {
    let url = fresh_pg_database();
    let apps = futures_util::future::join_all(["n1", "n2", "n3"].map(|name| spawn_pg_app(&url, name))).await;
    for app in &apps {
        let (status, body) = app.get("/readyz").await;
        assert_eq!(status, 200, "{body}");
    }
}

/// The frame names a socket receives until (and including) `last`.
async fn names_until(ws: &mut Ws, last: &str) -> Vec<String> {
    let mut names = Vec::new();
    for _ in 0..20 {
        let frame = ws.recv().await;
        let name = frame[0].as_str().unwrap().to_string();
        names.push(name.clone());
        if name == last {
            return names;
        }
    }
    panic!("no {last}: {names:?}");
}

#[actix_web::test]
async fn conversation_pushes_cross_instances_in_order_and_presence_counts_every_instance() {
    let (a, b) = two_instances().await;
    let (mut ann, _) = a.client("sample", "ann").await;
    ann.set_name("Ann").await;
    let (mut ben, ben_body) = b.client("sample", "ben").await;
    ben.set_name("Ben").await;
    let ben_id = user_id(&ben_body);
    let (mut ben_on_a, _) = a.client("sample", "ben").await;

    let r = ann
        .request("chat.direct.create", json!({"users": [ben_id]}))
        .await;
    assert_eq!(r[0], "success", "{r}");
    let channel = r[2]["id"].as_str().unwrap().to_string();
    let r = ann
        .request(
            "chat.send",
            json!({"channel": channel, "event_type": "channel.message",
                   "content": {"type": "text", "body": "hello"}}),
        )
        .await;
    assert_eq!(r[0], "success", "{r}");
    let expected = [
        "chat.channels",
        "chat.event",
        "chat.unread_pointers",
        "chat.notification",
    ];
    assert_eq!(names_until(&mut ben, "chat.notification").await, expected, "on B");
    assert_eq!(
        names_until(&mut ben_on_a, "chat.notification").await,
        expected,
        "on A"
    );

    // Reading on B: Ben's socket on A gets the pointers, then the counts.
    let event_id = r[2]["event"]["event_id"].clone();
    let r = ben
        .request("chat.mark_read", json!({"channel": channel, "id": event_id}))
        .await;
    assert_eq!(r[0], "success", "{r}");
    let pointers = ben_on_a.recv().await;
    assert_eq!(pointers[0], "chat.read_pointers", "{pointers}");
    assert_eq!(pointers[1][channel.as_str()], event_id);
    let counts = ben_on_a.recv().await;
    assert_eq!(counts, json!(["chat.notification_counts", {}]));

    // Presence: Ben's socket on B counts on A; after both close, A says false within a second.
    drop(ben_on_a);
    actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    let r = ann.request("user.online_status", json!({"ids": [ben_id]})).await;
    assert_eq!(r[2][ben_id.as_str()], true, "Ben is on B: {r}");
    drop(ben);
    let closed = Instant::now();
    loop {
        let r = ann.request("user.online_status", json!({"ids": [ben_id]})).await;
        if r[2][ben_id.as_str()] == false {
            break;
        }
        assert!(closed.elapsed() < Duration::from_secs(1), "still online: {r}");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}
