//! BBB as servers are today (SPEC §6, BBB 2.6–3.x): RFC 3986 encoding, Content-Type on POST
//! create, paged getRecordings, `meetingEndedURL` callbacks with HMAC tokens.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;

async fn named(app: &TestApp, client_id: &str, name: &str) -> (Ws, Value) {
    let (mut ws, body) = app.client("sample", client_id).await;
    ws.set_name(name).await;
    (ws, body)
}

async fn join_url(ws: &mut Ws, room: &str) -> String {
    let reply = ws.request("bbb.room_url", json!({ "room": room })).await;
    assert_eq!(reply[0], "success", "{reply}");
    reply[2]["url"].as_str().unwrap().to_string()
}

/// The value of one metric series in `/metrics` (0 when absent).
async fn metric(app: &TestApp, series: &str) -> f64 {
    let (status, text) = app.get("/metrics").await;
    assert_eq!(status, 200);
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// What the simulator got as `meetingEndedURL` in the meeting's last create.
async fn ended_url(app: &TestApp, meeting_id: &str) -> String {
    let sim = app.sim_meeting("default", meeting_id).await.unwrap();
    sim["create"]["params"]["meetingEndedURL"]
        .as_str()
        .unwrap_or_else(|| panic!("no meetingEndedURL in {sim}"))
        .to_string()
}

async fn request(method: &str, url: &str) -> u16 {
    let client = awc::Client::new();
    let req = if method == "POST" {
        client.post(url)
    } else {
        client.get(url)
    };
    let mut res = req.send().await.unwrap();
    let _ = res.body().await;
    res.status().as_u16()
}

/// What a normalising client (Python `requests`, some proxies) does to a URL: percent-encoded
/// RFC 3986 unreserved characters are decoded.
fn normalise(url: &str) -> String {
    let mut out = url.to_string();
    for (encoded, plain) in [
        ("%7E", "~"),
        ("%7e", "~"),
        ("%2D", "-"),
        ("%2E", "."),
        ("%5F", "_"),
    ] {
        out = out.replace(encoded, plain);
    }
    for c in ('A'..='Z').chain('a'..='z').chain('0'..='9') {
        out = out.replace(&format!("%{:02X}", c as u32), &c.to_string());
    }
    out
}

#[actix_web::test]
async fn a_name_with_tilde_and_reserved_characters_survives_a_normalising_client() {
    let app = spawn_app().await;
    let name = "Tom ~ O'Neil (café) *50% & co.";
    let (mut ws, _) = named(&app, "tilde", name).await;
    let url = join_url(&mut ws, "stage").await;
    assert!(
        url.contains("fullName=Tom+~+O%27Neil+%28caf%C3%A9%29+%2A50%25+%26+co."),
        "{url}"
    );
    assert!(!url.contains("%7E"), "{url}");

    let normalised = normalise(&url);
    assert_eq!(normalised, url, "nothing left for a normaliser to change");
    let (status, page) = http_get(&normalised).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("data-full-name=\"Tom ~ O&#39;Neil (café) *50% &amp; co.\""),
        "{page}"
    );

    // The old encoding (%7E) would have broken the checksum once normalised: the simulator
    // hashes the query exactly as received.
    let tampered = url.replacen("~", "%7E", 1);
    let (_, page) = http_get(&tampered).await;
    assert!(page.contains("checksumError"), "{page}");
}

#[actix_web::test]
async fn join_urls_carry_role_and_no_legacy_or_default_guest_flags() {
    let app = spawn_app().await;
    let (mut viewer, _) = named(&app, "viewer", "Vi").await;
    let (mut speaker, _) = app.token_user("sample", "spk", &["speaker"]).await;
    speaker.set_name("Sp").await;
    let v = query_params(&join_url(&mut viewer, "stage").await);
    let s = query_params(&join_url(&mut speaker, "stage").await);
    assert_eq!(v["role"], "VIEWER");
    assert_eq!(s["role"], "MODERATOR");
    for p in [&v, &s] {
        assert!(!p.contains_key("joinViaHtml5"), "{p:?}");
        assert!(!p.contains_key("guest"), "{p:?}");
    }
    let sim = app.sim_meeting("default", &v["meetingID"]).await.unwrap();
    assert_eq!(sim["attendeePW"], v["password"].as_str());
    assert_eq!(sim["moderatorPW"], s["password"].as_str());
}

#[actix_web::test]
async fn a_presentation_create_is_a_post_with_an_xml_content_type_bbb_accepts() {
    let app = spawn_app_with(|s| {
        s.replacen(
            "config = { record = true }",
            "config = { record = true, presentation = \"https://example.org/deck.pdf\" }",
            1,
        )
    })
    .await;
    let (mut ws, _) = named(&app, "deck", "Dee").await;
    let url = join_url(&mut ws, "stage").await;
    let sim = app
        .sim_meeting("default", &query_params(&url)["meetingID"])
        .await
        .unwrap();
    assert_eq!(sim["create"]["method"], "POST");
    assert_eq!(
        sim["create"]["presentation_urls"],
        json!(["https://example.org/deck.pdf"])
    );
    assert_eq!(http_get(&url).await.0, 200);
}

#[actix_web::test]
async fn a_room_with_250_recordings_lists_them_all_over_three_pages() {
    let app = spawn_app().await;
    let (mut ws, _) = app.token_user("sample", "mod", &["moderator"]).await;
    ws.set_name("Mo").await;
    let url = join_url(&mut ws, "stage").await;
    let meeting_id = query_params(&url)["meetingID"].clone();
    let (status, body) = app
        .post_json(
            &format!("/simulator/default/meetings/{meeting_id}/recordings"),
            json!({"count": 250}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let series =
        "bbb_gateway_bbb_api_calls_total{server=\"simulator\",call=\"getRecordings\",outcome=\"ok\"}";
    let calls_before = metric(&app, series).await;

    let reply = ws.request("bbb.recordings", json!({"room": "stage"})).await;
    assert_eq!(reply[0], "success", "{reply}");
    let results = reply[2]["results"].as_array().unwrap();
    assert_eq!(results.len(), 250);
    let starts: Vec<&str> = results.iter().map(|r| r["start"].as_str().unwrap()).collect();
    let mut sorted = starts.clone();
    sorted.sort();
    assert_eq!(starts, sorted);
    assert_eq!(
        metric(&app, series).await - calls_before,
        3.0,
        "pages of 100, 100, 50"
    );
}

#[actix_web::test]
async fn creates_carry_a_meeting_ended_url_that_never_reaches_clients_or_metadata() {
    let app = spawn_app().await;
    let (mut ws, authenticated) = named(&app, "secretive", "Sue").await;
    let reply = ws.request("bbb.room_url", json!({"room": "stage"})).await;
    let meeting_id = query_params(reply[2]["url"].as_str().unwrap())["meetingID"].clone();
    let callback = ended_url(&app, &meeting_id).await;
    assert!(
        callback.starts_with(&app.url(&format!("/bbb/ended/{meeting_id}/"))),
        "{callback}"
    );
    for frame in [&authenticated, &reply] {
        assert!(!frame.to_string().contains("/bbb/ended/"), "{frame}");
    }
    let sim = app.sim_meeting("default", &meeting_id).await.unwrap();
    for (k, v) in sim["create"]["params"].as_object().unwrap() {
        if k.starts_with("meta_") {
            assert!(!v.as_str().unwrap().contains("/bbb/ended/"), "{k}");
        }
    }
    assert!(
        !sim["metadata"].to_string().contains("/bbb/ended/"),
        "{}",
        sim["metadata"]
    );
    assert!(sim["metadata"].get("endcallbackurl").is_none());
}

#[actix_web::test]
async fn with_end_callbacks_off_creates_carry_no_callback() {
    let app = spawn_app_with(|s| {
        s.replace(
            "request_timeout_ms = 1000",
            "request_timeout_ms = 1000\nend_callbacks = false",
        )
    })
    .await;
    let (mut ws, _) = named(&app, "quiet", "Q").await;
    let url = join_url(&mut ws, "stage").await;
    let sim = app
        .sim_meeting("default", &query_params(&url)["meetingID"])
        .await
        .unwrap();
    assert!(sim["create"]["params"].get("meetingEndedURL").is_none(), "{sim}");
}

#[actix_web::test]
async fn forged_end_callbacks_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let (mut ws, _) = named(&app, "forger", "Fay").await;
    let url = join_url(&mut ws, "stage").await;
    let meeting_id = query_params(&url)["meetingID"].clone();
    let genuine = ended_url(&app, &meeting_id).await;
    let token = genuine.rsplit('/').next().unwrap().to_string();
    let (incarnation, mac) = token.split_once('.').unwrap();
    let flipped_mac: String = mac.chars().map(|c| if c == '0' { '1' } else { '0' }).collect();
    let forged = [
        format!("/bbb/ended/{meeting_id}/00000000000000000000000000000000"),
        format!("/bbb/ended/{meeting_id}/{incarnation}.{flipped_mac}"),
        format!("/bbb/ended/{meeting_id}/other.{mac}"),
        format!("/bbb/ended/someone-else/{token}"),
    ];
    for path in &forged {
        for method in ["GET", "POST"] {
            assert_eq!(request(method, &app.url(path)).await, 403, "{method} {path}");
        }
    }
    assert_eq!(
        metric(&app, "bbb_gateway_end_callbacks_total{outcome=\"forged\"}").await,
        8.0
    );
    // Nothing changed: the meeting keeps its incarnation, so its next create carries the same URL.
    join_url(&mut ws, "stage").await;
    assert_eq!(ended_url(&app, &meeting_id).await, genuine);
}

#[actix_web::test]
async fn a_genuine_callback_ends_the_incarnation_and_its_late_retry_is_ignored() {
    let app = spawn_app().await;
    let (mut ws, _) = named(&app, "ender", "Ed").await;
    let url = join_url(&mut ws, "stage").await;
    let meeting_id = query_params(&url)["meetingID"].clone();
    let first = ended_url(&app, &meeting_id).await;

    // BBB ends the meeting: the simulator calls the URL, the gateway takes note.
    app.sim_end("default", &meeting_id).await;
    assert_eq!(
        metric(&app, "bbb_gateway_end_callbacks_total{outcome=\"ended\"}").await,
        1.0
    );

    // The next join creates the meeting again under a new incarnation.
    let url = join_url(&mut ws, "stage").await;
    assert_eq!(http_get(&url).await.0, 200);
    let second = ended_url(&app, &meeting_id).await;
    assert_ne!(first, second);

    // A bbb-web retry of the first callback arrives late (POST this time): 200, ignored.
    assert_eq!(request("POST", &first).await, 200);
    assert_eq!(
        metric(&app, "bbb_gateway_end_callbacks_total{outcome=\"stale\"}").await,
        1.0
    );
    join_url(&mut ws, "stage").await;
    assert_eq!(
        ended_url(&app, &meeting_id).await,
        second,
        "the running incarnation stays"
    );
}

#[actix_web::test]
async fn an_empty_meeting_that_expires_on_bbb_calls_the_gateway_back() {
    let app = spawn_app().await;
    let (mut ws, _) = named(&app, "expiring", "Ex").await;
    let url = join_url(&mut ws, "stage").await;
    let meeting_id = query_params(&url)["meetingID"].clone();
    let (status, body) = app
        .post_json(
            "/simulator/default/config",
            json!({"empty_meeting_expiry_ms": 50}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&app, "bbb_gateway_end_callbacks_total{outcome=\"ended\"}").await < 1.0 {
        assert!(Instant::now() < deadline, "no callback after expiry");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(app.sim_meeting("default", &meeting_id).await.is_none());
    app.post_json("/simulator/default/config", json!({"empty_meeting_expiry_ms": 0}))
        .await;
    let (status, page) = http_get(&join_url(&mut ws, "stage").await).await;
    assert!(status == 200 && page.contains("sim-join"), "{page}");
}

#[actix_web::test]
async fn the_client_reads_the_version_a_server_reports() {
    use bbb_gateway::bbb::checksum::ChecksumAlgorithm;
    use bbb_gateway::bbb::client::{tls_config, BbbClient, Endpoint};
    use bbb_gateway::config::Secret;
    use bbb_gateway::ids::ServerId;

    let app = spawn_app().await;
    let client = BbbClient::new(
        Duration::from_secs(2),
        tls_config("").unwrap(),
        bbb_gateway::metrics::Metrics::new(),
    );
    let endpoint = |instance: &str| Endpoint {
        id: ServerId::new(instance),
        url: app.url(&format!("/simulator/{instance}/bigbluebutton/")),
        secret: Secret::new(SIM_SECRET),
        checksum: ChecksumAlgorithm::Sha1,
    };
    assert_eq!(
        client.version(&endpoint("v30")).await.unwrap().as_deref(),
        Some("3.0.0-sim")
    );
    app.post_json("/simulator/v27/config", json!({"bbb_version": "2.7.14"}))
        .await;
    assert_eq!(
        client.version(&endpoint("v27")).await.unwrap().as_deref(),
        Some("2.7.14")
    );
    app.sim_fault("v27", "garbage").await;
    assert!(client.version(&endpoint("v27")).await.is_err());
}

// ---- known-running meetings: one create per meeting ----

async fn creates_of(app: &TestApp, meeting_id: &str) -> u64 {
    app.sim_stats("default").await["creates"][meeting_id]
        .as_u64()
        .unwrap_or(0)
}

#[actix_web::test]
async fn a_storm_of_first_joins_sends_exactly_one_create_and_warm_joins_none() {
    let app = spawn_app().await;
    let mut sockets = Vec::new();
    for i in 0..100 {
        sockets.push(named(&app, &format!("storm-{i}"), &format!("User {i}")).await.0);
    }
    for ws in sockets.iter_mut() {
        ws.send_json(json!(["bbb.room_url", "storm", {"room": "stage"}]))
            .await;
    }
    let mut meeting_ids = std::collections::HashSet::new();
    for ws in sockets.iter_mut() {
        let r = ws.reply_to(json!("storm")).await;
        assert_eq!(r[0], "success", "{r}");
        meeting_ids.insert(query_params(r[2]["url"].as_str().unwrap())["meetingID"].clone());
    }
    assert_eq!(meeting_ids.len(), 1);
    let meeting_id = meeting_ids.into_iter().next().unwrap();
    assert_eq!(creates_of(&app, &meeting_id).await, 1);

    // Warm: every further join is signed without asking BBB.
    for ws in sockets.iter_mut().take(20) {
        for _ in 0..5 {
            join_url(ws, "stage").await;
        }
    }
    assert_eq!(creates_of(&app, &meeting_id).await, 1);
    let url = join_url(&mut sockets[0], "stage").await;
    let (status, page) = http_get(&url).await;
    assert!(status == 200 && page.contains("sim-join"), "{page}");
}

#[actix_web::test]
async fn a_meeting_ended_on_bbb_is_created_again_on_the_next_join_after_the_callback() {
    let app = spawn_app().await;
    let (mut ws, _) = named(&app, "again", "Al").await;
    let url = join_url(&mut ws, "stage").await;
    let meeting_id = query_params(&url)["meetingID"].clone();
    join_url(&mut ws, "stage").await;
    assert_eq!(creates_of(&app, &meeting_id).await, 1);

    app.sim_end("default", &meeting_id).await; // End pressed: BBB calls back
    let url = join_url(&mut ws, "stage").await;
    assert_eq!(creates_of(&app, &meeting_id).await, 2);
    let (_, page) = http_get(&url).await;
    assert!(
        page.contains("sim-join"),
        "the join after the end must work: {page}"
    );
    join_url(&mut ws, "stage").await;
    assert_eq!(creates_of(&app, &meeting_id).await, 2);
}

#[actix_web::test]
async fn without_end_callbacks_every_join_creates_and_concurrent_joins_share_one() {
    let app = spawn_app_with(|s| {
        s.replace(
            "request_timeout_ms = 1000",
            "request_timeout_ms = 1000\nend_callbacks = false",
        )
    })
    .await;
    let (mut ws, _) = named(&app, "each", "Ea").await;
    let url = join_url(&mut ws, "stage").await;
    let meeting_id = query_params(&url)["meetingID"].clone();
    for _ in 0..4 {
        join_url(&mut ws, "stage").await;
    }
    assert_eq!(creates_of(&app, &meeting_id).await, 5);

    let mut sockets = Vec::new();
    for i in 0..30 {
        sockets.push(named(&app, &format!("share-{i}"), "S").await.0);
    }
    for ws in sockets.iter_mut() {
        ws.send_json(json!(["bbb.room_url", "s", {"room": "stage"}]))
            .await;
    }
    for ws in sockets.iter_mut() {
        assert_eq!(ws.reply_to(json!("s")).await[0], "success");
    }
    let stats = app.sim_stats("default").await;
    assert_eq!(stats["max_concurrent_creates"][&meeting_id], 1, "{stats}");
    assert!(stats["creates"][&meeting_id].as_u64().unwrap() < 35, "{stats}");
}

/// Settings with a fast poll, so tests see polls within milliseconds.
fn fast_poll(s: String) -> String {
    s.replace("poll_interval_ms = 60000", "poll_interval_ms = 50")
}

async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_web::test]
async fn a_poll_that_no_longer_lists_the_meeting_makes_the_next_join_create() {
    let app = spawn_app_with(fast_poll).await;
    let (mut ws, _) = named(&app, "polled", "Po").await;
    let url = join_url(&mut ws, "stage").await;
    let meeting_id = query_params(&url)["meetingID"].clone();
    // The meeting vanishes from BBB without a callback (as after a BBB restart).
    let (status, _) = app
        .post_json(
            &format!("/simulator/default/meetings/{meeting_id}/forget"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    wait_for("a poll without the meeting", async || {
        metric(&app, "bbb_gateway_meetings_running").await == 0.0
    })
    .await;
    let url = join_url(&mut ws, "stage").await;
    assert_eq!(creates_of(&app, &meeting_id).await, 2);
    assert!(http_get(&url).await.1.contains("sim-join"));
}

#[actix_web::test]
async fn after_a_restart_a_meeting_a_poll_lists_is_joined_without_a_create() {
    let app = spawn_app().await;
    let (mut ws, _) = named(&app, "restart", "Re").await;
    let url = join_url(&mut ws, "stage").await;
    let meeting_id = query_params(&url)["meetingID"].clone();
    drop(ws);
    // A second instance on the same database, pointed at the first one's simulator (which
    // keeps the meeting), stands in for the restarted service.
    let old = app.url("/simulator/bigbluebutton/");
    let toml = app.settings_toml.clone()
        + &format!("\n[[bbb.servers]]\nid = \"simulator\"\nurl = \"{old}\"\nsecret = \"{SIM_SECRET}\"\n");
    let app2 = restart_with(tempfile::tempdir().unwrap(), app.db.clone(), fast_poll(toml)).await;
    wait_for("the first poll", async || {
        metric(&app2, "bbb_gateway_meetings_running").await >= 1.0
    })
    .await;
    let (mut ws, _) = app2.client("sample", "restart").await;
    let url = join_url(&mut ws, "stage").await;
    assert_eq!(query_params(&url)["meetingID"], meeting_id);
    assert_eq!(
        creates_of(&app, &meeting_id).await,
        1,
        "listed by the poll: no create"
    );
}

#[actix_web::test]
async fn versions_are_read_at_start_and_with_polls_and_shown_to_operators() {
    let app = spawn_app_with(fast_poll).await;
    let admin = |path: &str| {
        let url = app.url(path);
        async move {
            let mut res = awc::Client::new()
                .get(url)
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap();
            serde_json::from_slice::<Value>(&res.body().await.unwrap()).unwrap()
        }
    };
    wait_for("the version", async || {
        admin("/admin/servers").await["servers"][0]["version"] == "3.0.0-sim"
    })
    .await;
    assert_eq!(
        metric(
            &app,
            "bbb_gateway_server_version{server=\"simulator\",version=\"3.0.0-sim\"}"
        )
        .await,
        1.0
    );
    app.post_json("/simulator/default/config", json!({"bbb_version": "2.7.14"}))
        .await;
    wait_for("the new version", async || {
        admin("/admin/servers").await["servers"][0]["version"] == "2.7.14"
    })
    .await;
    let (_, text) = app.get("/metrics").await;
    assert!(text.contains("bbb_gateway_server_version{server=\"simulator\",version=\"2.7.14\"} 1"));
    assert!(!text.contains("version=\"3.0.0-sim\""), "the old series is gone");
}

// ---- the shared room-access cache never outlives what it depends on ----

#[actix_web::test]
async fn cached_room_access_gives_way_to_moderation_and_a_reload() {
    use bbb_gateway::ids::WorldId;
    use bbb_gateway::permissions::rules::Moderation;
    use bbb_gateway::permissions::ApplyModeration;

    let app = spawn_app().await;
    // Two users with the same traits share cached access; one of them is then silenced.
    let (mut loud, body) = app.token_user("sample", "loud", &["speaker"]).await;
    loud.set_name("Loud").await;
    let (mut other, _) = app.token_user("sample", "other", &["speaker"]).await;
    other.set_name("Other").await;
    join_url(&mut loud, "stage").await;
    join_url(&mut other, "stage").await;
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
    let (mut loud, _) = app.token_user("sample", "loud", &["speaker"]).await;
    let r = loud.request("bbb.room_url", json!({"room": "stage"})).await;
    assert_eq!(r[2]["code"], "protocol.denied", "{r}");
    join_url(&mut other, "stage").await;

    // A reload that takes the room away from everyone applies at once.
    let path = app.dir.path().join("settings.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let closed = text.replacen(
        "trait_grants = { viewer = [], participant = [], speaker = [\"speaker\"] }",
        "trait_grants = { viewer = [] }",
        1,
    );
    assert_ne!(closed, text);
    std::fs::write(&path, closed).unwrap();
    let mut res = awc::Client::new()
        .post(app.url("/admin/reload"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{:?}", res.body().await);
    let r = other.request("bbb.room_url", json!({"room": "stage"})).await;
    assert_eq!(r[2]["code"], "protocol.denied", "{r}");
}
