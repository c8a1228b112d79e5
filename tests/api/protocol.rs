//! Framing and protocol errors (SPEC §4): every code, and the socket staying usable.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

#[actix_web::test]
async fn ping_is_answered_before_and_after_authentication() {
    let app = spawn_app().await;
    let mut ws = app.ws("sample").await;
    ws.send_json(json!(["ping", 123])).await;
    assert_eq!(ws.recv().await, json!(["pong", 123]));
    ws.authenticate(json!({"client_id": "pinger"})).await;
    ws.send_json(json!(["ping", {"t": "x"}])).await;
    assert_eq!(ws.recv().await, json!(["pong", {"t": "x"}]));
}

#[actix_web::test]
async fn unknown_world_gets_an_error_and_is_closed() {
    let app = spawn_app().await;
    let mut ws = app.ws("nosuchworld").await;
    assert_eq!(ws.recv().await, json!(["error", {"code": "world.unknown_world"}]));
    assert!(matches!(ws.next().await, Received::Close(_)));
}

#[actix_web::test]
async fn requests_before_authentication_are_unauthenticated_with_their_id() {
    let app = spawn_app().await;
    let mut ws = app.ws("sample").await;
    ws.send_json(json!(["bbb.room_url", "r1", {"room": "stage"}]))
        .await;
    assert_eq!(
        ws.recv().await,
        json!(["error", "r1", {"code": "protocol.unauthenticated"}])
    );
    ws.send_json(json!(["nonsense.thing", 9, {}])).await;
    assert_eq!(
        ws.recv().await,
        json!(["error", 9, {"code": "protocol.unauthenticated"}])
    );
}

#[actix_web::test]
async fn malformed_frames_get_invalid_message_and_the_socket_stays_usable() {
    let app = spawn_app().await;
    let (mut ws, _) = app.client("sample", "malformed").await;

    ws.send_text("this is not json").await;
    let r = ws.recv().await;
    assert_eq!(r.as_array().unwrap().len(), 2, "no id is known: {r}");
    assert_eq!(code(&r), "protocol.invalid_message");

    ws.send_text(r#"{"action": "ping"}"#).await;
    assert_eq!(code(&ws.recv().await), "protocol.invalid_message");

    ws.send_binary(b"\x00\x01binary").await;
    assert_eq!(code(&ws.recv().await), "protocol.invalid_message");

    ws.send_text("[]").await;
    assert_eq!(code(&ws.recv().await), "protocol.invalid_message");

    ws.send_text(r#"[42, "the-id", {}]"#).await;
    let r = ws.recv().await;
    assert_eq!(r[1], "the-id");
    assert_eq!(code(&r), "protocol.invalid_message");

    ws.send_text(r#"["user.fetch", 5]"#).await;
    let r = ws.recv().await;
    assert_eq!(
        (r[1].clone(), code(&r)),
        (json!(5), "protocol.invalid_message".to_string())
    );

    ws.send_text(r#"["user.fetch", 6, "body is a string"]"#).await;
    let r = ws.recv().await;
    assert_eq!(
        (r[1].clone(), code(&r)),
        (json!(6), "protocol.invalid_message".to_string())
    );

    ws.send_text(r#"["user.fetch", 7, {"id": 12}]"#).await;
    let r = ws.recv().await;
    assert_eq!(
        (r[1].clone(), code(&r)),
        (json!(7), "protocol.invalid_message".to_string())
    );

    ws.send_text(r#"["user.fetch", 8, {}, "extra"]"#).await;
    assert_eq!(code(&ws.recv().await), "protocol.invalid_message");

    ws.send_json(json!(["ping", "still-alive"])).await;
    assert_eq!(ws.recv().await, json!(["pong", "still-alive"]));
}

#[actix_web::test]
async fn error_frames_have_the_exact_wire_shape() {
    let app = spawn_app().await;
    let (mut ws, _) = app.client("sample", "shapes").await;
    let r = ws.request("user.update", json!({"profile": "nope"})).await;
    assert_eq!(
        r,
        json!(["error", 1, {"code": "protocol.invalid_message", "message": "profile must be an object"}])
    );
    let r = ws
        .request(
            "user.fetch",
            json!({"id": "00000000-0000-4000-8000-000000000000"}),
        )
        .await;
    assert_eq!(r, json!(["error", 2, {"code": "user.not_found"}]));
}

#[actix_web::test]
async fn unknown_namespace_and_unsupported_actions_after_authentication() {
    let app = spawn_app().await;
    let (mut ws, _) = app.client("sample", "commands").await;
    let r = ws.request("exhibition.list", json!({})).await;
    assert_eq!(r, json!(["error", 1, {"code": "protocol.unknown_command"}]));
    for ns in ["bbb", "user", "chat", "world", "room"] {
        let r = ws
            .request(&format!("{ns}.does_not_exist"), json!("body not even an object"))
            .await;
        assert_eq!(code(&r), format!("{ns}.unsupported_command"));
    }
}

#[actix_web::test]
async fn second_authenticate_is_an_unknown_command() {
    let app = spawn_app().await;
    let (mut ws, _) = app.client("sample", "twice").await;
    ws.send_json(json!(["authenticate", {"client_id": "twice"}]))
        .await;
    assert_eq!(
        ws.recv().await,
        json!(["error", {"code": "protocol.unknown_command"}])
    );
    ws.send_json(json!(["authenticate", "id-3", {"client_id": "twice"}]))
        .await;
    assert_eq!(
        ws.recv().await,
        json!(["error", "id-3", {"code": "protocol.unknown_command"}])
    );
}

#[actix_web::test]
async fn excess_frames_are_rate_limited_with_their_id() {
    let app = spawn_app_with(|s| s.replace("requests_per_second = 50", "requests_per_second = 5")).await;
    let (mut ws, _) = app.client("sample", "flooder").await;
    // The login used one token; the burst is 10.
    for i in 0..20 {
        ws.send_json(json!(["ping", i])).await;
        ws.send_json(json!(["user.fetch", format!("f{i}"), {"id": "x"}]))
            .await;
    }
    let mut limited = Vec::new();
    let mut answered = 0;
    for _ in 0..40 {
        let r = ws.recv().await;
        if r[0] == "error" && code(&r) == "protocol.rate_limited" {
            limited.push(r[1].clone());
        } else {
            answered += 1;
        }
    }
    assert!(answered <= 12, "{answered} frames got through a burst of 10");
    assert!(
        limited
            .iter()
            .any(|id| id.as_str().is_some_and(|s| s.starts_with('f'))),
        "{limited:?}"
    );
    // The bucket refills: after a pause requests work again.
    actix_web::rt::time::sleep(Duration::from_millis(400)).await;
    ws.send_json(json!(["ping", "later"])).await;
    assert_eq!(ws.recv().await, json!(["pong", "later"]));
}

#[actix_web::test]
async fn frames_over_the_limit_are_refused() {
    let app = spawn_app().await;
    let (mut ws, _) = app.client("sample", "big").await;
    let huge = "x".repeat(10_000);
    ws.send_json(json!(["user.update", 1, {"profile": {"display_name": huge}}]))
        .await;
    let mut refused = false;
    while let Some(r) = ws.next_within(Duration::from_secs(3)).await {
        match r {
            Received::Json(v) => assert_eq!(code(&v), "protocol.invalid_message"),
            Received::Close(reason) => {
                if let Some(reason) = reason {
                    assert_eq!(u16::from(reason.code), 1009);
                }
                refused = true;
                break;
            }
        }
    }
    assert!(refused, "oversized frame was not refused");
    // The service is still up for everyone else.
    let (mut other, _) = app.client("sample", "after-big").await;
    other.send_json(json!(["ping", 1])).await;
    assert_eq!(other.recv().await, json!(["pong", 1]));
}

#[actix_web::test]
async fn silent_clients_are_closed_by_the_heartbeat() {
    let app = spawn_app().await;
    let ws = app.ws("sample").await;
    // Never read or answer pings: the server must drop us after client_timeout_ms (2 s).
    let mut ws = ws;
    actix_web::rt::time::sleep(Duration::from_millis(2600)).await;
    let mut closed = false;
    // Drain without answering pings (read frames directly).
    while let Some(r) = ws.next_within(Duration::from_millis(500)).await {
        if matches!(r, Received::Close(_)) {
            closed = true;
            break;
        }
    }
    assert!(closed, "server kept a silent socket open");
}
