//! `authenticate` (SPEC §4.1): credentials, every auth error, the seven-key reply, disclosure
//! rules and `connection.replaced`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Duration;

use bbb_gateway::ids::WorldId;
use bbb_gateway::permissions::rules::Moderation;
use bbb_gateway::permissions::ApplyModeration;
use serde_json::{json, Value};

use crate::helpers::*;

#[actix_web::test]
async fn authenticated_reply_has_exactly_the_seven_keys() {
    let app = spawn_app().await;
    let (_ws, body) = app.client("sample", "seven").await;
    let mut keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        vec![
            "announcements",
            "chat.channels",
            "chat.notification_counts",
            "chat.read_pointers",
            "exhibition",
            "user.config",
            "world.config"
        ]
    );
    assert_eq!(
        body["exhibition"],
        json!({"exhibitors": [], "contact_requests": []})
    );
    let user = &body["user.config"];
    assert!(bbb_gateway::ids::is_uuid(user["id"].as_str().unwrap()));
    assert_eq!(
        user,
        &json!({"id": user["id"], "profile": {}, "pretalx_id": null, "deleted": false,
                "badges": [], "inactive": false, "client_state": {}})
    );
}

#[actix_web::test]
async fn world_config_lists_viewable_rooms_in_order_with_their_permissions() {
    let app = spawn_app().await;
    let (_ws, body) = app.token_user("sample", "speaker-a", &["speaker"]).await;
    let world = &body["world.config"];
    assert_eq!(world["world"]["id"], "sample");
    assert_eq!(world["world"]["title"], "Sample World");
    assert_eq!(
        world["world"]["iframe_blockers"],
        json!({"default": {"enabled": false, "policy_url": null}})
    );
    let rooms = world["rooms"].as_array().unwrap();
    let ids: Vec<&str> = rooms.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        vec!["stage", "backstage", "lounge"],
        "secret-room needs the vip trait"
    );
    let stage = &rooms[0];
    let perms: Vec<&str> = stage["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(
        perms.contains(&"room:bbb.join") && perms.contains(&"room:bbb.moderate"),
        "{perms:?}"
    );
    assert_eq!(
        stage["modules"],
        json!([{"type": "call.bigbluebutton", "config": {}}])
    );
    assert_eq!(stage["picture"], Value::Null);
    assert_eq!(stage["force_join"], false);
    assert_eq!(stage["pretalx_id"], 0);
    // A plain visitor: no moderation anywhere, and no bbb.join in backstage.
    let (_ws, body) = app.client("sample", "visitor").await;
    let rooms = body["world.config"]["rooms"].as_array().unwrap().clone();
    let backstage = rooms.iter().find(|r| r["id"] == "backstage").unwrap();
    assert!(!backstage["permissions"]
        .as_array()
        .unwrap()
        .contains(&json!("room:bbb.join")));
    assert!(!body["world.config"]["permissions"]
        .as_array()
        .unwrap()
        .contains(&json!("room:bbb.moderate")));
}

#[actix_web::test]
async fn nothing_secret_is_in_the_authenticated_frame() {
    let app = spawn_app().await;
    let mut ws = app.ws("sample").await;
    ws.send_json(json!(["authenticate", {"token": token("admin-1", &["admin", "moderator", "vip"])}]))
        .await;
    let text = ws.recv().await.to_string();
    assert!(text.contains("authenticated"));
    for secret in [
        JWT_SECRET,
        SIM_SECRET,
        ADMIN_TOKEN,
        "simulator",
        "trait_grants",
        "record\"",
        "speaker\"",
        "jwt",
        "127.0.0.1",
    ] {
        assert!(
            !text.contains(secret),
            "authenticated frame discloses {secret}: {text}"
        );
    }
}

#[actix_web::test]
async fn missing_credentials_are_missing_id_or_token() {
    let app = spawn_app().await;
    let mut ws = app.ws("sample").await;
    for body in [
        json!({}),
        json!({"client_id": ""}),
        json!({"client_id": 5}),
        json!({"token": null}),
    ] {
        let r = ws.try_authenticate(body).await;
        assert_eq!(r, json!(["error", {"code": "auth.missing_id_or_token"}]));
    }
    // The socket stays open and can still log in.
    ws.authenticate(json!({"client_id": "finally"})).await;
}

#[actix_web::test]
async fn bad_tokens_are_invalid_and_expired_tokens_expired() {
    let app = spawn_app().await;
    let mut ws = app.ws("sample").await;
    let cases = [
        (json!({"token": "garbage"}), "auth.invalid_token"),
        (json!({"token": 17}), "auth.invalid_token"),
        (
            json!({"token": sign_with(json!({"iss": "any", "aud": "venueless", "uid": "u"}), "wrong-secret")}),
            "auth.invalid_token",
        ),
        (
            json!({"token": sign(json!({"iss": "any", "aud": "venueless"}))}),
            "auth.invalid_token",
        ),
        (
            json!({"token": sign(json!({"iss": "any", "aud": "elsewhere", "uid": "u"}))}),
            "auth.invalid_token",
        ),
        (
            json!({"token": sign(json!({"iss": "any", "aud": "venueless", "uid": "u", "exp": now() - 30}))}),
            "auth.expired_token",
        ),
        (
            json!({"token": sign_with(json!({"iss": "any", "aud": "venueless", "uid": "u", "exp": now() - 30}), "nope")}),
            "auth.invalid_token",
        ),
        (
            json!({"token": "garbage", "client_id": "would-work"}),
            "auth.invalid_token",
        ),
    ];
    for (body, expected) in cases {
        let r = ws.try_authenticate(body.clone()).await;
        assert_eq!(r, json!(["error", {"code": expected}]), "for {body}");
    }
    ws.send_json(json!(["ping", 1])).await;
    assert_eq!(ws.recv().await, json!(["pong", 1]));
}

#[actix_web::test]
async fn numeric_uid_is_accepted() {
    let app = spawn_app().await;
    let mut ws = app.ws("sample").await;
    let t = sign(json!({"iss": "any", "aud": "venueless", "uid": 4711}));
    ws.authenticate(json!({"token": t})).await;
}

#[actix_web::test]
async fn client_id_user_without_world_view_is_missing_token() {
    let app = spawn_app().await;
    let mut ws = app.ws("closed").await;
    let r = ws.try_authenticate(json!({"client_id": "anon"})).await;
    assert_eq!(r, json!(["error", {"code": "auth.missing_token"}]));
}

#[actix_web::test]
async fn token_user_without_world_view_is_denied() {
    let app = spawn_app().await;
    let mut ws = app.ws("closed").await;
    let r = ws
        .try_authenticate(json!({"token": token("no-ticket", &["other"])}))
        .await;
    assert_eq!(r, json!(["error", {"code": "auth.denied"}]));
    ws.authenticate(json!({"token": token("has-ticket", &["ticket"])}))
        .await;
}

#[actix_web::test]
async fn nested_trait_requirements_decide_room_rights() {
    let app = spawn_app().await;
    let (_ws, body) = app.token_user("closed", "crew-1", &["ticket", "crew"]).await;
    let perms = body["world.config"]["permissions"].as_array().unwrap().clone();
    assert!(perms.contains(&json!("room:bbb.join")), "{perms:?}");
    let (_ws, body) = app.token_user("closed", "plain-1", &["ticket"]).await;
    let perms = body["world.config"]["permissions"].as_array().unwrap().clone();
    assert!(!perms.contains(&json!("room:bbb.join")), "{perms:?}");
}

#[actix_web::test]
async fn traits_are_replaced_only_by_tokens_that_carry_them() {
    let app = spawn_app().await;
    let (_ws, body) = app.token_user("closed", "t-user", &["ticket", "speaker"]).await;
    let id = body["user.config"]["id"].clone();
    assert!(body["world.config"]["permissions"]
        .as_array()
        .unwrap()
        .contains(&json!("room:bbb.join")));
    // No traits claim: stored traits stay.
    let mut ws = app.ws("closed").await;
    let b = ws
        .authenticate(json!({"token": sign(json!({"iss": "any", "aud": "venueless", "uid": "t-user"}))}))
        .await;
    assert_eq!(b["user.config"]["id"], id);
    assert!(b["world.config"]["permissions"]
        .as_array()
        .unwrap()
        .contains(&json!("room:bbb.join")));
    // New traits replace the old ones.
    let mut ws = app.ws("closed").await;
    let b = ws
        .authenticate(json!({"token": token("t-user", &["ticket"])}))
        .await;
    assert!(!b["world.config"]["permissions"]
        .as_array()
        .unwrap()
        .contains(&json!("room:bbb.join")));
}

#[actix_web::test]
async fn token_profile_is_stored_only_when_the_user_is_created() {
    let app = spawn_app().await;
    let claims = |name: &str| json!({"iss": "any", "aud": "venueless", "uid": "p-user", "profile": {"display_name": name}});
    let mut ws = app.ws("sample").await;
    let b = ws.authenticate(json!({"token": sign(claims("First"))})).await;
    assert_eq!(b["user.config"]["profile"]["display_name"], "First");
    let mut ws = app.ws("sample").await;
    let b = ws.authenticate(json!({"token": sign(claims("Second"))})).await;
    assert_eq!(b["user.config"]["profile"]["display_name"], "First");
}

#[actix_web::test]
async fn banned_users_are_denied_and_silenced_users_see_only_view() {
    let app = spawn_app().await;
    let (_ws, body) = app.token_user("sample", "trouble", &["admin"]).await;
    let id = body["user.config"]["id"].as_str().unwrap().to_string();
    let set = |state| ApplyModeration {
        world: WorldId::new("sample"),
        user: id.clone(),
        state,
    };

    app.services
        .perms
        .send(set(Moderation::Silenced))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let (_ws, body) = app.token_user("sample", "trouble", &["admin"]).await;
    assert_eq!(
        body["world.config"]["permissions"],
        json!(["room:view", "world:view"])
    );
    for room in body["world.config"]["rooms"].as_array().unwrap() {
        for p in room["permissions"].as_array().unwrap() {
            assert!(p == "room:view" || p == "world:view", "silenced user has {p}");
        }
    }

    app.services
        .perms
        .send(set(Moderation::Banned))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let mut ws = app.ws("sample").await;
    let r = ws
        .try_authenticate(json!({"token": token("trouble", &["admin"])}))
        .await;
    assert_eq!(r, json!(["error", {"code": "auth.denied"}]));
}

#[actix_web::test]
async fn newest_socket_replaces_the_oldest_beyond_the_connection_limit() {
    let app = spawn_app().await;
    let (mut first, _) = app.token_user("closed", "limited", &["ticket"]).await;
    let (mut second, _) = app.token_user("closed", "limited", &["ticket"]).await;
    assert_eq!(
        first.recv().await,
        json!(["error", {"code": "connection.replaced"}])
    );
    assert!(matches!(first.next().await, Received::Close(_)));
    second.send_json(json!(["ping", 2])).await;
    assert_eq!(second.recv().await, json!(["pong", 2]));
    // Another user is not affected.
    let (mut other, _) = app.token_user("closed", "someone-else", &["ticket"]).await;
    second.expect_silence(Duration::from_millis(200)).await;
    other.send_json(json!(["ping", 3])).await;
    assert_eq!(other.recv().await, json!(["pong", 3]));
}

#[actix_web::test]
async fn unlimited_connections_permission_skips_the_limit() {
    let app = spawn_app().await;
    let (mut first, _) = app.token_user("closed", "boss", &["ticket", "admin"]).await;
    let (_second, _) = app.token_user("closed", "boss", &["ticket", "admin"]).await;
    first.send_json(json!(["ping", 1])).await;
    assert_eq!(first.recv().await, json!(["pong", 1]));
}
