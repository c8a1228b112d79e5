//! `user.update`, `user.updated` pushes and `user.fetch` (SPEC §4.2), and persistence.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

#[actix_web::test]
async fn profile_update_is_pushed_to_the_users_other_sockets_only() {
    let app = spawn_app().await;
    let (mut a1, body) = app.client("sample", "multi").await;
    let (mut a2, _) = app.client("sample", "multi").await;
    let (mut other, _) = app.client("sample", "bystander").await;
    let id = body["user.config"]["id"].clone();

    let r = a1
        .request(
            "user.update",
            json!({"profile": {"display_name": "Ada", "avatar": {"url": "https://example.org/a.png"}}}),
        )
        .await;
    assert_eq!(r, json!(["success", 1, {}]));

    let push = a2.recv_event("user.updated").await;
    assert_eq!(push[1]["id"], id);
    assert_eq!(push[1]["profile"]["display_name"], "Ada");
    a1.expect_silence(Duration::from_millis(200)).await;
    other.expect_silence(Duration::from_millis(100)).await;
}

#[actix_web::test]
async fn invalid_profiles_are_refused() {
    let app = spawn_app().await;
    let (mut ws, _) = app.client("sample", "picky").await;
    for body in [
        json!({"profile": [1, 2]}),
        json!({"profile": {"display_name": 42}}),
        json!({"profile": {"display_name": "x".repeat(201)}}),
        json!({"profile": {"avatar": "https://example.org/a.png"}}),
        json!({}),
    ] {
        let r = ws.request("user.update", body.clone()).await;
        assert_eq!(code(&r), "protocol.invalid_message", "for {body}");
    }
    let r = ws
        .request(
            "user.update",
            json!({"profile": {"display_name": "y".repeat(200)}}),
        )
        .await;
    assert_eq!(r[0], "success");
}

#[actix_web::test]
async fn user_fetch_finds_users_of_the_same_world_only() {
    let app = spawn_app().await;
    let (mut a, _) = app.client("sample", "fetcher").await;
    let (mut b, body_b) = app.client("sample", "fetched").await;
    b.set_name("Bea").await;
    let b_id = body_b["user.config"]["id"].clone();
    let r = a.request("user.fetch", json!({"id": b_id})).await;
    assert_eq!(r[0], "success");
    assert_eq!(r[2]["id"], b_id);
    assert_eq!(r[2]["profile"]["display_name"], "Bea");
    for unknown in [json!("not-a-uuid"), json!("00000000-0000-4000-8000-000000000000")] {
        let r = a.request("user.fetch", json!({"id": unknown})).await;
        assert_eq!(code(&r), "user.not_found");
    }
    let (_c, body_c) = app.token_user("closed", "elsewhere", &["ticket"]).await;
    let r = a
        .request("user.fetch", json!({"id": body_c["user.config"]["id"]}))
        .await;
    assert_eq!(code(&r), "user.not_found");
}

#[actix_web::test]
async fn profile_survives_a_restart_on_the_same_database() {
    let app = spawn_app().await;
    let (mut ws, body) = app.client("sample", "persistent").await;
    let id = body["user.config"]["id"].clone();
    ws.set_name("Kept Across Restarts").await;
    drop(ws);

    let app = app.restart().await;
    let (_ws, body) = app.client("sample", "persistent").await;
    assert_eq!(body["user.config"]["id"], id);
    assert_eq!(
        body["user.config"]["profile"]["display_name"],
        "Kept Across Restarts"
    );
}
