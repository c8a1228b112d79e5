//! Moving an SQLite deployment to PostgreSQL with `bbb-gateway migrate-store` (SPEC §10):
//! users, channels, messages, calls, meeting records, moderation and server overrides survive.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::process::Command;

use serde_json::{json, Value};

use crate::helpers::*;

fn meeting_id(url: &str) -> String {
    query_params(url)["meetingID"].clone()
}

async fn admin_post(app: &TestApp, path: &str, body: Value) -> u16 {
    awc::Client::new()
        .post(app.url(path))
        .insert_header(("Authorization", format!("Bearer {ADMIN_TOKEN}")))
        .send_json(&body)
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[actix_web::test]
async fn migrate_store_moves_an_sqlite_deployment_to_postgres() {
    let old = spawn_app().await;
    let (mut ann, ann_body) = old.client("sample", "ann").await;
    ann.set_name("Ann").await;
    let (_ben, ben_body) = old.client("sample", "ben").await;
    let (_eve, eve_body) = old.client("sample", "eve").await;
    let r = ann
        .request(
            "chat.direct.create",
            json!({"users": [ben_body["user.config"]["id"]]}),
        )
        .await;
    let channel = r[2]["id"].as_str().unwrap().to_string();
    for body in ["one", "two"] {
        let r = ann
            .request(
                "chat.send",
                json!({"channel": channel, "event_type": "channel.message",
                       "content": {"type": "text", "body": body}}),
            )
            .await;
        assert_eq!(r[0], "success", "{r}");
    }
    let r = ann.request("bbb.room_url", json!({"room": "stage"})).await;
    let stage_meeting = meeting_id(r[2]["url"].as_str().unwrap());
    let eve = eve_body["user.config"]["id"].as_str().unwrap();
    assert_eq!(
        admin_post(
            &old,
            &format!("/admin/worlds/sample/users/{eve}/moderation"),
            json!({"state": "banned"})
        )
        .await,
        200
    );
    old.handle.stop(true).await;
    drop(ann);

    let url = fresh_pg_database();
    let out = Command::new(env!("CARGO_BIN_EXE_bbb-gateway"))
        .args(["migrate-store", "--from", old.db.to_str().unwrap(), "--to", &url])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("chat_events: 4 rows"),
        "two member events, two messages: {stdout}"
    );
    assert!(stdout.contains("notifications: 2 rows"), "{stdout}");

    // A second import into the same database is refused: nothing is merged.
    let again = Command::new(env!("CARGO_BIN_EXE_bbb-gateway"))
        .args(["migrate-store", "--from", old.db.to_str().unwrap(), "--to", &url])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds data"));

    let new = spawn_pg_app(&url, "moved").await;
    let (mut ann, body) = new.client("sample", "ann").await;
    assert_eq!(body["user.config"]["id"], ann_body["user.config"]["id"]);
    assert_eq!(body["user.config"]["profile"]["display_name"], "Ann");
    let r = ann
        .request("chat.fetch", json!({"channel": channel, "count": 10}))
        .await;
    let bodies: Vec<&str> = r[2]["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event_type"] == "channel.message")
        .map(|e| e["content"]["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["one", "two"]);
    let r = ann.request("bbb.room_url", json!({"room": "stage"})).await;
    assert_eq!(meeting_id(r[2]["url"].as_str().unwrap()), stage_meeting);
    let (_ben, body) = new.client("sample", "ben").await;
    assert_eq!(
        body["chat.notification_counts"],
        json!({ channel.as_str(): 2 }),
        "notifications moved"
    );
    let mut eve = new.ws("sample").await;
    let r = eve.try_authenticate(json!({"client_id": "eve"})).await;
    assert_eq!(code(&r), "auth.denied", "moderation moved too");
}
