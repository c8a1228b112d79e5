//! `bbb.room_url` and `bbb.recordings` against the built-in simulator (SPEC §4.3, §4.5, §6).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::{Duration, Instant};

use bbb_gateway::ids::WorldId;
use bbb_gateway::permissions::rules::Moderation;
use bbb_gateway::permissions::ApplyModeration;
use serde_json::{json, Value};

use crate::helpers::*;

/// A `[[bbb.servers]]` entry for simulator instance `instance` of the app itself.
fn server(id: &str, instance: &str, extra: &str) -> String {
    format!(
        "\n[[bbb.servers]]\nid = \"{id}\"\nurl = \"http://127.0.0.1:{{PORT}}/simulator/{instance}/bigbluebutton/\"\nsecret = \"{SIM_SECRET}\"\n{extra}\n"
    )
}

async fn named(app: &TestApp, client_id: &str, name: &str) -> (Ws, Value) {
    let (mut ws, body) = app.client("sample", client_id).await;
    ws.set_name(name).await;
    (ws, body)
}

async fn named_token(app: &TestApp, uid: &str, traits: &[&str], name: &str) -> (Ws, Value) {
    let (mut ws, body) = app.token_user("sample", uid, traits).await;
    ws.set_name(name).await;
    (ws, body)
}

async fn room_url(ws: &mut Ws, room: &str) -> Value {
    ws.request("bbb.room_url", json!({ "room": room })).await
}

fn url_of(reply: &Value) -> String {
    assert_eq!(reply[0], "success", "{reply}");
    reply[2]["url"].as_str().unwrap().to_string()
}

#[actix_web::test]
async fn room_url_for_unknown_room_or_room_without_bbb_is_room_unknown() {
    let app = spawn_app().await;
    let (mut ws, _) = named(&app, "u", "Una").await;
    let r = room_url(&mut ws, "no-such-room").await;
    assert_eq!(r[2], json!({"code": "room.unknown"}));
    assert_eq!(code(&room_url(&mut ws, "lounge").await), "room.unknown");
    let r = ws.request("bbb.room_url", json!({"room": 17})).await;
    assert_eq!(code(&r), "protocol.invalid_message");
}

#[actix_web::test]
async fn room_url_without_permission_is_denied_even_while_unnamed() {
    let app = spawn_app().await;
    let (mut ws, _) = app.client("sample", "nameless").await;
    assert_eq!(code(&room_url(&mut ws, "backstage").await), "protocol.denied");
}

#[actix_web::test]
async fn room_url_for_a_silenced_user_is_denied() {
    let app = spawn_app().await;
    let (_ws, body) = named_token(&app, "loud", &["speaker"], "Loud").await;
    let id = body["user.config"]["id"].as_str().unwrap().to_string();
    app.services
        .perms
        .send(ApplyModeration {
            world: WorldId::new("sample"),
            user: id,
            state: Moderation::Silenced,
        })
        .await
        .unwrap()
        .unwrap();
    let (mut ws, _) = app.token_user("sample", "loud", &["speaker"]).await;
    assert_eq!(code(&room_url(&mut ws, "stage").await), "protocol.denied");
}

#[actix_web::test]
async fn room_url_without_display_name_is_missing_profile() {
    let app = spawn_app().await;
    let (mut ws, _) = app.client("sample", "anon").await;
    assert_eq!(
        room_url(&mut ws, "stage").await,
        json!(["error", 1, {"code": "bbb.join.missing_profile", "message": "set a display name before joining"}])
    );
    ws.set_name("   ").await;
    assert_eq!(
        code(&room_url(&mut ws, "stage").await),
        "bbb.join.missing_profile"
    );
}

#[actix_web::test]
async fn attendee_and_moderator_joins_are_accepted_by_the_simulated_server() {
    let app = spawn_app().await;
    let (mut speaker, _) = named_token(&app, "spk", &["speaker"], "Sam Speaker").await;
    let (mut visitor, _) = named(&app, "vis", "Vic Visitor").await;
    let mod_url = url_of(&room_url(&mut speaker, "stage").await);
    let att_url = url_of(&room_url(&mut visitor, "stage").await);
    let (m, a) = (query_params(&mod_url), query_params(&att_url));
    assert_eq!(m["meetingID"], a["meetingID"]);
    assert_ne!(m["password"], a["password"]);

    let (status, page) = http_get(&mod_url).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("data-role=\"MODERATOR\"") && page.contains("Sam Speaker"),
        "{page}"
    );
    let (status, page) = http_get(&att_url).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("data-role=\"VIEWER\"") && page.contains("Vic Visitor"),
        "{page}"
    );
}

#[actix_web::test]
async fn create_and_join_send_the_spec_parameters() {
    let app = spawn_app().await;
    let (mut ws, body) = named(&app, "params", "Pat: Params").await;
    let user_id = body["user.config"]["id"].as_str().unwrap().to_string();
    let url = url_of(&room_url(&mut ws, "stage").await);
    let join = query_params(&url);
    let expected_join = [
        ("fullName", "Pat Params"),
        ("userID", user_id.as_str()),
        ("role", "VIEWER"),
        ("userdata-bbb_show_public_chat_on_login", "false"),
        ("userdata-bbb_skip_check_audio", "true"),
        ("userdata-bbb_listen_only_mode", "true"),
        ("userdata-bbb_auto_share_webcam", "false"),
        ("userdata-bbb_skip_video_preview", "false"),
        ("userdata-bbb_hide_presentation_on_join", "false"),
    ];
    for (k, v) in expected_join {
        assert_eq!(join.get(k).map(String::as_str), Some(v), "join {k}: {url}");
    }
    assert!(
        !join.contains_key("joinViaHtml5") && !join.contains_key("guest"),
        "{url}"
    );
    assert_eq!(join["userdata-bbb_custom_style_url"], app.url("/_bbb.css"));
    assert!(join.contains_key("checksum"));
    let meeting_id = &join["meetingID"];
    assert!(meeting_id.len() >= 24 && meeting_id.chars().all(|c| c.is_ascii_alphanumeric()));

    let sim = app.sim_meeting("default", meeting_id).await.unwrap();
    let create = &sim["create"]["params"];
    for (k, v) in [
        ("name", "Main stage"),
        ("record", "true"),
        ("meta_Source", "bbb-gateway"),
        ("meta_World", "sample"),
        ("meta_Room", "stage"),
        ("muteOnStart", "false"),
        ("lockSettingsDisablePrivateChat", "true"),
        ("lockSettingsDisableCam", "false"),
        ("lockSettingsDisablePublicChat", "false"),
        ("guestPolicy", "ALWAYS_ACCEPT"),
    ] {
        assert_eq!(create[k], v, "create {k}: {create}");
    }
    assert_eq!(sim["create"]["method"], "GET");
    for pw in [
        create["attendeePW"].as_str().unwrap(),
        create["moderatorPW"].as_str().unwrap(),
    ] {
        assert!(pw.len() >= 24 && pw.chars().all(|c| c.is_ascii_alphanumeric()));
    }
    // The avatar is passed on once the profile has one.
    ws.request(
        "user.update",
        json!({"profile": {"display_name": "Pat", "avatar": {"url": "https://example.org/p.png"}}}),
    )
    .await;
    let url = url_of(&room_url(&mut ws, "stage").await);
    assert_eq!(query_params(&url)["avatarURL"], "https://example.org/p.png");
}

#[actix_web::test]
async fn presentation_waiting_room_and_voice_bridge_shape_the_create() {
    let app = spawn_app_with(|s| {
        s.replacen(
            "[[worlds.rooms]]\nid = \"lounge\"",
            "[[worlds.rooms]]\nid = \"talk\"\nname = \"Talk\"\ntrait_grants = {{ viewer = [], participant = [] }}\nmodules = [ {{ type = \"call.bigbluebutton\", config = {{ presentation = \"https://example.org/slides.pdf?a=1&b=2\", waiting_room = true, voice_bridge = \"12345\", auto_microphone = true, auto_camera = true, hide_presentation = true, bbb_mute_on_start = true, bbb_disable_cam = true, bbb_disable_chat = true }} }} ]\n\n[[worlds.rooms]]\nid = \"lounge\"",
            1,
        )
        .replace("{{", "{")
        .replace("}}", "}")
    })
    .await;
    let (mut ws, _) = named(&app, "talker", "Tara").await;
    let url = url_of(&room_url(&mut ws, "talk").await);
    let join = query_params(&url);
    assert_eq!(join["guest"], "true");
    assert_eq!(join["userdata-bbb_listen_only_mode"], "false");
    assert_eq!(join["userdata-bbb_auto_share_webcam"], "true");
    assert_eq!(join["userdata-bbb_skip_video_preview"], "true");
    assert_eq!(join["userdata-bbb_hide_presentation_on_join"], "true");
    let sim = app.sim_meeting("default", &join["meetingID"]).await.unwrap();
    assert_eq!(sim["create"]["method"], "POST");
    assert_eq!(
        sim["create"]["presentation_urls"],
        json!(["https://example.org/slides.pdf?a=1&b=2"])
    );
    let create = &sim["create"]["params"];
    assert_eq!(create["guestPolicy"], "ASK_MODERATOR");
    assert_eq!(create["voiceBridge"], "12345");
    assert_eq!(create["muteOnStart"], "true");
    assert_eq!(create["lockSettingsDisableCam"], "true");
    assert_eq!(create["lockSettingsDisablePublicChat"], "true");
    let (status, page) = http_get(&url).await;
    assert_eq!(status, 200);
    assert!(page.to_lowercase().contains("waiting"), "{page}");
}

#[actix_web::test]
async fn a_room_keeps_its_meeting_across_joins_and_restarts() {
    let app = spawn_app().await;
    let (mut ws, _) = named(&app, "keeper", "Kim").await;
    let first = query_params(&url_of(&room_url(&mut ws, "stage").await));
    let second = query_params(&url_of(&room_url(&mut ws, "stage").await));
    assert_eq!(first["meetingID"], second["meetingID"]);
    assert_eq!(first["password"], second["password"]);
    drop(ws);

    let app = app.restart().await;
    let (mut ws, _) = app.client("sample", "keeper").await;
    let url = url_of(&room_url(&mut ws, "stage").await);
    let third = query_params(&url);
    assert_eq!(first["meetingID"], third["meetingID"]);
    assert_eq!(first["password"], third["password"]);
    assert_eq!(http_get(&url).await.0, 200);
}

#[actix_web::test]
async fn a_meeting_ended_on_the_server_is_created_again_on_the_next_join() {
    let app = spawn_app().await;
    let (mut ws, _) = named(&app, "ender", "Eve").await;
    let url = url_of(&room_url(&mut ws, "stage").await);
    let meeting_id = query_params(&url)["meetingID"].clone();
    assert_eq!(http_get(&url).await.0, 200);
    app.sim_end("default", &meeting_id).await;
    assert!(app.sim_meeting("default", &meeting_id).await.is_none());

    let url = url_of(&room_url(&mut ws, "stage").await);
    assert_eq!(query_params(&url)["meetingID"], meeting_id);
    let (status, page) = http_get(&url).await;
    assert_eq!(status, 200, "join after end must work: {page}");
    assert!(page.contains("sim-join"), "{page}");
}

#[actix_web::test]
async fn fifty_concurrent_first_joins_share_one_create_at_a_time() {
    let app = spawn_app().await;
    let mut sockets = Vec::new();
    for i in 0..50 {
        sockets.push(named(&app, &format!("storm-{i}"), &format!("User {i}")).await.0);
    }
    for ws in sockets.iter_mut() {
        ws.send_json(json!(["bbb.room_url", "storm", {"room": "stage"}]))
            .await;
    }
    let mut meeting_ids = std::collections::HashSet::new();
    for ws in sockets.iter_mut() {
        let r = ws.reply_to(json!("storm")).await;
        meeting_ids.insert(query_params(&url_of(&r))["meetingID"].clone());
    }
    assert_eq!(meeting_ids.len(), 1);
    let meeting_id = meeting_ids.into_iter().next().unwrap();
    let stats = app.sim_stats("default").await;
    assert_eq!(stats["max_concurrent_creates"][&meeting_id], 1, "{stats}");
    assert_eq!(stats["creates"][&meeting_id], 1, "{stats}");
}

async fn assert_bbb_failed(app: &TestApp, ws: &mut Ws) {
    let started = Instant::now();
    let r = room_url(ws, "stage").await;
    assert_eq!(code(&r), "bbb.failed", "{r}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    ws.send_json(json!(["ping", "alive"])).await;
    assert_eq!(ws.recv().await, json!(["pong", "alive"]));
    let _ = app;
}

#[actix_web::test]
async fn bbb_answering_500_garbage_failed_or_hanging_is_bbb_failed() {
    let app = spawn_app_with(|s| {
        s.replace(
            "request_timeout_ms = 1000",
            "request_timeout_ms = 1000\nunhealthy_after = 100",
        ) + &server("faulty", "faulty", "")
    })
    .await;
    let (mut ws, _) = named(&app, "victim", "Vera").await;
    for mode in ["http500", "garbage", "failed", "hang", "close"] {
        app.sim_fault("faulty", mode).await;
        assert_bbb_failed(&app, &mut ws).await;
    }
    app.sim_fault("faulty", "ok").await;
    url_of(&room_url(&mut ws, "stage").await);
}

#[actix_web::test]
async fn bbb_refusing_connections_is_bbb_failed() {
    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let app = spawn_app_with(move |s| {
        s + &format!("\n[[bbb.servers]]\nid = \"gone\"\nurl = \"http://127.0.0.1:{closed_port}/bigbluebutton/\"\nsecret = \"x\"\n")
    })
    .await;
    let (mut ws, _) = named(&app, "refused", "Rita").await;
    assert_bbb_failed(&app, &mut ws).await;
}

#[actix_web::test]
async fn a_hanging_bbb_delays_nothing_else() {
    let app = spawn_app_with(|s| s + &server("slow", "slow", "")).await;
    let (mut ws, _) = named(&app, "patient", "Pia").await;
    let (mut other, _) = named(&app, "other", "Otto").await;
    app.sim_fault("slow", "hang").await;
    // The join hangs until request_timeout_ms (1 s); everything sent after it is answered first.
    ws.send_json(json!(["bbb.room_url", "slow-1", {"room": "stage"}]))
        .await;
    ws.send_json(json!(["ping", "quick"])).await;
    ws.send_json(json!(["user.fetch", "fetch-1", {"id": "00000000-0000-4000-8000-000000000000"}]))
        .await;
    let r = other
        .request(
            "user.fetch",
            json!({"id": "00000000-0000-4000-8000-000000000000"}),
        )
        .await;
    assert_eq!(code(&r), "user.not_found", "another socket is served meanwhile");
    assert_eq!(
        ws.recv().await,
        json!(["pong", "quick"]),
        "the ping overtakes the slow request"
    );
    let r = ws.recv().await;
    assert_eq!(
        (r[1].clone(), code(&r)),
        (json!("fetch-1"), "user.not_found".to_string())
    );
    let r = ws.recv().await;
    assert_eq!(
        (r[1].clone(), code(&r)),
        (json!("slow-1"), "bbb.failed".to_string())
    );
}

#[actix_web::test]
async fn a_room_on_an_unhealthy_server_moves_keeping_its_meeting_id() {
    let app = spawn_app_with(|s| {
        s.replace(
            "request_timeout_ms = 1000",
            "request_timeout_ms = 1000\nunhealthy_after = 1",
        ) + &server("a", "a", "")
            + &server("b", "b", "active = false")
    })
    .await;
    let (mut ws, _) = named(&app, "mover", "Mo").await;
    let url = url_of(&room_url(&mut ws, "stage").await);
    let meeting_id = query_params(&url)["meetingID"].clone();
    assert!(url.contains("/simulator/a/"));
    // Server a breaks and its meeting ends (so joins must create again); b is inactive, so
    // nothing can take the room.
    app.sim_fault("a", "http500").await;
    app.sim_end("a", &meeting_id).await;
    assert_eq!(code(&room_url(&mut ws, "stage").await), "bbb.failed");
    assert_eq!(code(&room_url(&mut ws, "stage").await), "bbb.failed");
    let servers = app
        .services
        .balancer
        .send(bbb_gateway::balancer::ListServers)
        .await
        .unwrap();
    assert!(!servers.iter().find(|s| s.id.as_str() == "a").unwrap().healthy);
    drop(servers);
    // A restart with b active: a stays broken (unhealthy after one failed poll), the room moves.
    let app = spawn_on_same_db_with_b_active(app).await;
    let (mut ws, _) = app.client("sample", "mover").await;
    app.sim_fault("a", "http500").await;
    let mut moved = None;
    for _ in 0..20 {
        let r = room_url(&mut ws, "stage").await;
        if r[0] == "success" {
            moved = Some(url_of(&r));
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    let moved = moved.expect("room moved to b");
    assert!(moved.contains("/simulator/b/"), "{moved}");
    assert_eq!(query_params(&moved)["meetingID"], meeting_id);
    assert_eq!(http_get(&moved).await.0, 200);
}

async fn spawn_on_same_db_with_b_active(app: TestApp) -> TestApp {
    let toml = app.settings_toml.replace("active = false", "active = true");
    app.handle.stop(true).await;
    restart_with(app.dir, app.db, toml).await
}

async fn recorded_meeting(app: &TestApp, instance: &str, instance_check: &str) -> String {
    let (mut ws, _) = named(app, "recorder", "Rec").await;
    let url = url_of(&room_url(&mut ws, "stage").await);
    assert!(url.contains(instance_check), "{url}");
    let meeting_id = query_params(&url)["meetingID"].clone();
    assert_eq!(http_get(&url).await.0, 200);
    app.sim_end(instance, &meeting_id).await;
    meeting_id
}

#[actix_web::test]
async fn recordings_are_listed_in_the_worlds_time_zone() {
    let app = spawn_app().await;
    let (mut moderator, _) = named_token(&app, "mod", &["moderator"], "Mona").await;
    let r = moderator
        .request("bbb.recordings", json!({"room": "stage"}))
        .await;
    assert_eq!((&r[0], &r[2]), (&json!("success"), &json!({"results": []})));
    recorded_meeting(&app, "default", "/simulator/bigbluebutton/").await;
    let r = moderator
        .request("bbb.recordings", json!({"room": "stage"}))
        .await;
    assert_eq!(r[0], "success", "{r}");
    let results = r[2]["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{r}");
    let rec = &results[0];
    let start = rec["start"].as_str().unwrap();
    assert!(
        start.ends_with("+01:00") || start.ends_with("+02:00"),
        "Europe/Berlin offset: {start}"
    );
    assert!(chrono::DateTime::parse_from_rfc3339(rec["end"].as_str().unwrap()).is_ok());
    assert_eq!(rec["participants"], "1");
    assert_eq!(rec["state"], "published");
    assert!(rec["url"].as_str().unwrap().contains("presentation"));
    assert!(rec["url_video"].as_str().unwrap().contains("video"));
    assert_eq!(rec["url_screenshare"], Value::Null);
    assert_eq!(rec["url_notes"], Value::Null);

    let (mut visitor, _) = named(&app, "peeker", "Pete").await;
    assert_eq!(
        code(&visitor.request("bbb.recordings", json!({"room": "stage"})).await),
        "protocol.denied"
    );
    assert_eq!(
        code(
            &moderator
                .request("bbb.recordings", json!({"room": "lounge"}))
                .await
        ),
        "room.unknown"
    );
    assert_eq!(
        code(&moderator.request("bbb.recordings", json!({"room": "nope"})).await),
        "room.unknown"
    );
}

#[actix_web::test]
async fn recordings_skip_a_failing_server_and_fail_only_when_all_fail() {
    let app = spawn_app_with(|s| {
        s.replace(
            "config = { record = true }",
            "config = { record = true, prefer_server = \"a\" }",
        )
        .replace(
            "request_timeout_ms = 1000",
            "request_timeout_ms = 1000\nunhealthy_after = 100",
        ) + &server("a", "a", "")
            + &server("b", "b", "")
    })
    .await;
    recorded_meeting(&app, "a", "/simulator/a/").await;
    let (mut moderator, _) = named_token(&app, "mod", &["moderator"], "Mona").await;
    app.sim_fault("b", "http500").await;
    let r = moderator
        .request("bbb.recordings", json!({"room": "stage"}))
        .await;
    assert_eq!(r[0], "success", "{r}");
    assert_eq!(r[2]["results"].as_array().unwrap().len(), 1);
    app.sim_fault("a", "garbage").await;
    let r = moderator
        .request("bbb.recordings", json!({"room": "stage"}))
        .await;
    assert_eq!(code(&r), "bbb.failed");
}

#[actix_web::test]
async fn readyz_follows_server_health() {
    let app = spawn_app().await;
    let (status, body) = app.get("/readyz").await;
    assert_eq!((status, body.as_str()), (200, r#"{"ready":true}"#));

    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let app = spawn_app_with(move |s| {
        s.replace(
            "request_timeout_ms = 1000",
            "request_timeout_ms = 1000\nunhealthy_after = 1",
        ) + &format!(
            "\n[[bbb.servers]]\nid = \"gone\"\nurl = \"http://127.0.0.1:{closed_port}/b/\"\nsecret = \"x\"\n"
        )
    })
    .await;
    let mut last = (0, String::new());
    for _ in 0..40 {
        last = app.get("/readyz").await;
        if last.0 == 503 {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(last.0, 503, "{last:?}");
    let v: Value = serde_json::from_str(&last.1).unwrap();
    assert_eq!(v["ready"], false);
    assert!(v["reason"].is_string());
}

#[actix_web::test]
async fn bbb_stylesheet_is_served() {
    let app = spawn_app().await;
    let mut res = awc::Client::new().get(app.url("/_bbb.css")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert!(res
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    assert!(!res.body().await.unwrap().is_empty());
}
