//! The admin API (SPEC §8) and metrics, through HTTP with the bearer token.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

async fn admin(
    app: &TestApp,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    let client = awc::Client::new();
    let mut req = match method {
        "GET" => client.get(app.url(path)),
        _ => client.post(app.url(path)),
    };
    if let Some(t) = token {
        req = req.insert_header(("Authorization", format!("Bearer {t}")));
    }
    let mut res = match body {
        Some(b) => req
            .insert_header(("Content-Type", "application/json"))
            .send_body(b.to_string())
            .await
            .unwrap(),
        None => req.send().await.unwrap(),
    };
    let bytes = res.body().await.unwrap();
    (
        res.status().as_u16(),
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    admin(app, "GET", path, Some(ADMIN_TOKEN), None).await
}

async fn post(app: &TestApp, path: &str, body: Option<Value>) -> (u16, Value) {
    let body = body.map(|b| b.to_string());
    admin(app, "POST", path, Some(ADMIN_TOKEN), body.as_deref()).await
}

fn server(id: &str) -> String {
    format!(
        "\n[[bbb.servers]]\nid = \"{id}\"\nurl = \"http://127.0.0.1:{{PORT}}/simulator/{id}/bigbluebutton/\"\nsecret = \"{SIM_SECRET}\"\n"
    )
}

const ROUTES: [(&str, &str); 7] = [
    ("GET", "/admin/servers"),
    ("POST", "/admin/servers/simulator/disable"),
    ("POST", "/admin/servers/simulator/enable"),
    ("POST", "/admin/rooms/sample/stage/move"),
    ("POST", "/admin/worlds/sample/users/x/moderation"),
    ("POST", "/admin/reload"),
    ("GET", "/admin/anything/else"),
];

#[actix_web::test]
async fn every_admin_route_needs_the_bearer_token() {
    let app = spawn_app().await;
    for (method, path) in ROUTES {
        let (status, _) = admin(&app, method, path, None, Some("{}")).await;
        assert_eq!(status, 401, "{method} {path} without token");
        let (status, _) = admin(&app, method, path, Some("wrong-token"), Some("{}")).await;
        assert_eq!(status, 401, "{method} {path} with a wrong token");
    }
}

#[actix_web::test]
async fn without_an_admin_token_the_admin_api_does_not_exist() {
    let app = spawn_app_with(|s| s.replace(&format!("admin_token = \"{ADMIN_TOKEN}\"\n"), "")).await;
    for (method, path) in ROUTES {
        let (status, _) = admin(&app, method, path, Some(ADMIN_TOKEN), Some("{}")).await;
        assert_eq!(status, 404, "{method} {path}");
    }
}

#[actix_web::test]
async fn server_list_shows_health_load_and_meetings() {
    let app = spawn_app().await;
    let (mut ws, _) = app.client("sample", "counted").await;
    ws.set_name("Cora").await;
    assert_eq!(
        ws.request("bbb.room_url", json!({"room": "stage"})).await[0],
        "success"
    );
    let (status, body) = get(&app, "/admin/servers").await;
    assert_eq!(status, 200);
    let servers = body["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 1);
    let s = &servers[0];
    let mut keys: Vec<&str> = s.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        vec![
            "active",
            "cost",
            "healthy",
            "id",
            "last_error",
            "last_poll_at",
            "meetings",
            "participants",
            "rooms_only",
            "url",
            "version",
            "world_exclusive"
        ]
    );
    assert_eq!(s["id"], "simulator");
    assert_eq!(
        (s["active"].clone(), s["healthy"].clone()),
        (json!(true), json!(true))
    );
    assert!(s["meetings"].as_u64().unwrap() >= 1, "{s}");
    assert!(s["cost"].as_f64().unwrap() > 0.0, "{s}");
    assert!(!body.to_string().contains(SIM_SECRET));
}

#[actix_web::test]
async fn disabled_servers_get_no_new_rooms_and_stay_disabled_after_a_restart() {
    let app = spawn_app_with(|s| s + &server("a") + &server("b")).await;
    let (status, body) = post(&app, "/admin/servers/a/disable", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["server"]["active"], false);
    assert_eq!(post(&app, "/admin/servers/nope/disable", None).await.0, 404);
    let (mut ws, _) = app.client("sample", "placer").await;
    ws.set_name("Pia").await;
    for room in ["stage", "backstage"] {
        let r = ws.request("bbb.room_url", json!({ "room": room })).await;
        if r[0] == "success" {
            assert!(r[2]["url"].as_str().unwrap().contains("/simulator/b/"), "{r}");
        }
    }
    drop(ws);
    let app = app.restart().await;
    let (_, body) = get(&app, "/admin/servers").await;
    let a = body["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "a")
        .unwrap()
        .clone();
    assert_eq!(a["active"], false, "the override survives the restart");
    let (status, body) = post(&app, "/admin/servers/a/enable", None).await;
    assert_eq!((status, body["server"]["active"].clone()), (200, json!(true)));
}

#[actix_web::test]
async fn moving_a_room_ends_its_meeting_on_the_old_server() {
    let app = spawn_app_with(|s| {
        s.replace(
            "config = { record = true }",
            "config = { record = true, prefer_server = \"a\" }",
        ) + &server("a")
            + &server("b")
    })
    .await;
    let (mut ws, _) = app.client("sample", "mover").await;
    ws.set_name("Max").await;
    let r = ws.request("bbb.room_url", json!({"room": "stage"})).await;
    let url = r[2]["url"].as_str().unwrap().to_string();
    assert!(url.contains("/simulator/a/"));
    let meeting_id = query_params(&url)["meetingID"].clone();
    assert_eq!(http_get(&url).await.0, 200);
    assert!(app.sim_meeting("a", &meeting_id).await.is_some());

    let (status, body) = post(
        &app,
        "/admin/rooms/sample/stage/move",
        Some(json!({"server": "b"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["moved"],
        json!({"previous_server": "a", "server": "b", "meeting_ended": true})
    );
    assert!(
        app.sim_meeting("a", &meeting_id).await.is_none(),
        "meeting ended on the old server"
    );

    let r = ws.request("bbb.room_url", json!({"room": "stage"})).await;
    let url = r[2]["url"].as_str().unwrap().to_string();
    assert!(url.contains("/simulator/b/"), "{url}");
    assert_eq!(query_params(&url)["meetingID"], meeting_id);
    assert_eq!(http_get(&url).await.0, 200);

    // Unknown server, room, world; a room without BBB; bad bodies.
    for (path, body, status) in [
        ("/admin/rooms/sample/stage/move", r#"{"server": "zzz"}"#, 404),
        ("/admin/rooms/sample/nope/move", r#"{"server": "a"}"#, 404),
        ("/admin/rooms/sample/lounge/move", r#"{"server": "a"}"#, 404),
        ("/admin/rooms/nope/stage/move", r#"{"server": "a"}"#, 404),
        ("/admin/rooms/sample/stage/move", r#"{"srv": "a"}"#, 400),
        ("/admin/rooms/sample/stage/move", "not json", 400),
    ] {
        let (got, _) = admin(&app, "POST", path, Some(ADMIN_TOKEN), Some(body)).await;
        assert_eq!(got, status, "POST {path} {body}");
    }
    post(&app, "/admin/servers/a/disable", None).await;
    assert_eq!(
        post(
            &app,
            "/admin/rooms/sample/stage/move",
            Some(json!({"server": "a"}))
        )
        .await
        .0,
        409
    );
}

#[actix_web::test]
async fn moderation_reloads_the_users_live_sockets_and_takes_effect() {
    let app = spawn_app().await;
    let (mut ws1, body) = app.token_user("sample", "naughty", &["speaker"]).await;
    let (mut ws2, _) = app.token_user("sample", "naughty", &["speaker"]).await;
    let (mut bystander, _) = app.client("sample", "bystander").await;
    let id = body["user.config"]["id"].as_str().unwrap().to_string();
    let path = format!("/admin/worlds/sample/users/{id}/moderation");

    let (status, body) = post(&app, &path, Some(json!({"state": "silenced"}))).await;
    assert_eq!((status, body), (200, json!({"user": id, "state": "silenced"})));
    for ws in [&mut ws1, &mut ws2] {
        assert_eq!(ws.recv().await, json!(["connection.reload", {}]));
        assert!(matches!(ws.next().await, Received::Close(_)));
    }
    bystander.expect_silence(Duration::from_millis(100)).await;
    let (mut ws, body) = app.token_user("sample", "naughty", &["speaker"]).await;
    assert_eq!(body["world.config"]["permissions"], json!(["world:view"]));
    let stage = body["world.config"]["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "stage")
        .unwrap()
        .clone();
    assert_eq!(stage["permissions"], json!(["room:view", "world:view"]));
    ws.set_name("Nat").await;
    assert_eq!(
        code(&ws.request("bbb.room_url", json!({"room": "stage"})).await),
        "protocol.denied"
    );

    post(&app, &path, Some(json!({"state": "banned"}))).await;
    assert_eq!(ws.recv().await, json!(["connection.reload", {}]));
    let mut again = app.ws("sample").await;
    let r = again
        .try_authenticate(json!({"token": token("naughty", &["speaker"])}))
        .await;
    assert_eq!(code(&r), "auth.denied");

    post(&app, &path, Some(json!({"state": "none"}))).await;
    let (mut ws, _) = app.token_user("sample", "naughty", &["speaker"]).await;
    assert_eq!(
        ws.request("bbb.room_url", json!({"room": "stage"})).await[0],
        "success"
    );

    assert_eq!(post(&app, &path, Some(json!({"state": "grounded"}))).await.0, 400);
    assert_eq!(post(&app, &path, Some(json!({}))).await.0, 400);
    let unknown = "/admin/worlds/sample/users/00000000-0000-4000-8000-000000000000/moderation";
    assert_eq!(post(&app, unknown, Some(json!({"state": "banned"}))).await.0, 404);
    let other_world = format!("/admin/worlds/closed/users/{id}/moderation");
    assert_eq!(
        post(&app, &other_world, Some(json!({"state": "banned"}))).await.0,
        404
    );
    assert_eq!(
        post(
            &app,
            "/admin/worlds/nope/users/x/moderation",
            Some(json!({"state": "banned"}))
        )
        .await
        .0,
        404
    );
}

#[actix_web::test]
async fn moderation_survives_a_restart() {
    let app = spawn_app().await;
    let (_ws, body) = app.client("sample", "persisted-ban").await;
    let id = body["user.config"]["id"].as_str().unwrap().to_string();
    post(
        &app,
        &format!("/admin/worlds/sample/users/{id}/moderation"),
        Some(json!({"state": "banned"})),
    )
    .await;
    let app = app.restart().await;
    let mut ws = app.ws("sample").await;
    assert_eq!(
        code(&ws.try_authenticate(json!({"client_id": "persisted-ban"})).await),
        "auth.denied"
    );
}

#[actix_web::test]
async fn reload_adds_a_room_without_dropping_sockets() {
    let app = spawn_app().await;
    let (mut ws, body) = app.client("sample", "stayer").await;
    assert!(!body["world.config"]["rooms"].to_string().contains("new-room"));
    let path = app.dir.path().join("settings.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let with_room = text.replacen(
        "[[worlds.rooms]]\nid = \"lounge\"",
        "[[worlds.rooms]]\nid = \"new-room\"\nname = \"Added later\"\ntrait_grants = { viewer = [], participant = [] }\nmodules = [ { type = \"call.bigbluebutton\", config = {} } ]\n\n[[worlds.rooms]]\nid = \"lounge\"",
        1,
    );
    std::fs::write(&path, &with_room).unwrap();
    let (status, body) = post(&app, "/admin/reload", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reloaded"], true);

    ws.send_json(json!(["ping", "kept"])).await;
    assert_eq!(ws.recv().await, json!(["pong", "kept"]));
    ws.set_name("Sten").await;
    let r = ws.request("bbb.room_url", json!({"room": "new-room"})).await;
    assert_eq!(r[0], "success", "{r}");
    let (_ws2, body) = app.client("sample", "newcomer").await;
    assert!(body["world.config"]["rooms"].to_string().contains("Added later"));

    // A broken file is refused and the running settings stay.
    std::fs::write(&path, with_room.replace("[server]", "[server]\nnonsense = 1")).unwrap();
    let (status, body) = post(&app, "/admin/reload", None).await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("nonsense"), "{body}");
    let r = ws.request("bbb.room_url", json!({"room": "new-room"})).await;
    assert_eq!(r[0], "success");
}

#[actix_web::test]
async fn metrics_are_prometheus_text() {
    let app = spawn_app().await;
    let (mut ws, _) = app.client("sample", "measured").await;
    ws.set_name("Mia").await;
    ws.request("bbb.room_url", json!({"room": "stage"})).await;
    ws.request("bbb.room_url", json!({"room": "nope"})).await;
    let (status, text) = app.get("/metrics").await;
    assert_eq!(status, 200);
    for needle in [
        "bbb_gateway_sockets_open 1",
        "bbb_gateway_sessions_authenticated 1",
        "bbb_gateway_users_online 1",
        "bbb_gateway_requests_total{action=\"bbb.room_url\",code=\"success\"} 1",
        "bbb_gateway_requests_total{action=\"bbb.room_url\",code=\"room.unknown\"} 1",
        "bbb_gateway_bbb_api_calls_total{server=\"simulator\",call=\"create\",outcome=\"ok\"} 1",
        "bbb_gateway_bbb_api_call_seconds_bucket",
        "bbb_gateway_server_healthy{server=\"simulator\"} 1",
        "bbb_gateway_server_meetings{server=\"simulator\"}",
        "bbb_gateway_server_cost{server=\"simulator\"}",
        "bbb_gateway_server_participants{server=\"simulator\"}",
        "bbb_gateway_login_seconds_count 1",
        "bbb_gateway_instance_info{instance_name=\"",
    ] {
        assert!(text.contains(needle), "missing {needle} in:\n{text}");
    }
}

#[actix_web::test]
async fn rooms_move_off_a_disabled_server_and_off_a_removed_one_keeping_their_meeting() {
    let app = spawn_app_with(|s| {
        s.replace(
            "config = { record = true }",
            "config = { record = true, prefer_server = \"a\" }",
        ) + &server("a")
            + &server("b")
    })
    .await;
    let (mut ws, _) = app.client("sample", "nomad").await;
    ws.set_name("Nia").await;
    let first = ws.request("bbb.room_url", json!({"room": "stage"})).await[2]["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(first.contains("/simulator/a/"));
    let meeting_id = query_params(&first)["meetingID"].clone();

    // Disabled at runtime: the next join moves the room to b.
    post(&app, "/admin/servers/a/disable", None).await;
    let moved = ws.request("bbb.room_url", json!({"room": "stage"})).await[2]["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(moved.contains("/simulator/b/"), "{moved}");
    assert_eq!(query_params(&moved)["meetingID"], meeting_id);
    assert_eq!(http_get(&moved).await.0, 200);

    // Removed from the settings by a reload: the room moves again (a is back, b is gone).
    post(&app, "/admin/servers/a/enable", None).await;
    let path = app.dir.path().join("settings.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let port = app.port.to_string();
    let without_b = text.replace(&server("b").replace("{PORT}", &port), "");
    assert_ne!(text, without_b, "server b removed from the file");
    std::fs::write(&path, without_b).unwrap();
    assert_eq!(post(&app, "/admin/reload", None).await.0, 200);
    let back = ws.request("bbb.room_url", json!({"room": "stage"})).await[2]["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(back.contains("/simulator/a/"), "{back}");
    assert_eq!(query_params(&back)["meetingID"], meeting_id);
    let (_, body) = get(&app, "/admin/servers").await;
    assert_eq!(body["servers"].as_array().unwrap().len(), 1);
}

#[actix_web::test]
async fn reload_with_a_wrongly_typed_secret_names_the_key_not_the_value() {
    let app = spawn_app().await;
    let path = app.dir.path().join("settings.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let cases = [
        // An integer where the JWT secret string belongs.
        text.replacen(&format!("secret = \"{JWT_SECRET}\""), "secret = 918273645546372", 1),
        // A string where a boolean belongs, and an unknown checksum name.
        text.replace("[simulator]", "[[bbb.servers]]\nid = \"x\"\nurl = \"http://127.0.0.1:1/\"\nsecret = \"s\"\nactive = \"918273645546372\"\n\n[simulator]"),
        text.replace("[simulator]", "[[bbb.servers]]\nid = \"x\"\nurl = \"http://127.0.0.1:1/\"\nsecret = \"s\"\nchecksum = \"918273645546372\"\n\n[simulator]"),
    ];
    let keys = [
        "worlds[0].jwt_secrets[0].secret",
        "bbb.servers[0].active",
        "bbb.servers[0].checksum",
    ];
    for (broken, key) in cases.iter().zip(keys) {
        std::fs::write(&path, broken).unwrap();
        let (status, body) = post(&app, "/admin/reload", None).await;
        assert_eq!(status, 400, "{body}");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains(key), "names the key: {error}");
        assert!(
            !error.contains("918273645546372"),
            "never shows the value: {error}"
        );
    }
}
