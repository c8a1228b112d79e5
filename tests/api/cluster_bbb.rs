//! The balancer in a cluster (SPEC §10): one create per meeting across instances, placement
//! charges shared, meeting ends and moves seen everywhere. Both instances use BBB servers
//! simulated by the first instance, so the simulator's counters see every call.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;

/// Settings: servers s1, s2 on the simulator of the instance listening on `sim_port`
/// (`{PORT}` = the instance itself).
fn servers_on(sim_port: &str, servers: &[&str]) -> impl Fn(String) -> String {
    let mut extra = String::new();
    for id in servers {
        extra.push_str(&format!(
            "\n[[bbb.servers]]\nid = \"{id}\"\nurl = \"http://127.0.0.1:{sim_port}/simulator/{id}/bigbluebutton/\"\nsecret = \"{SIM_SECRET}\"\n"
        ));
    }
    move |s: String| s.replace("\n[simulator]", &format!("{extra}\n[simulator]"))
}

async fn cluster_on_shared_bbb(servers: &[&str]) -> (TestApp, TestApp) {
    let url = fresh_pg_database();
    let a = spawn_pg_app_with(&url, "node-a", servers_on("{PORT}", servers)).await;
    let port = a.port.to_string();
    let b = spawn_pg_app_with(&url, "node-b", servers_on(&port, servers)).await;
    (a, b)
}

async fn named(app: &TestApp, client_id: &str) -> Ws {
    let (mut ws, _) = app.client("sample", client_id).await;
    ws.set_name(client_id).await;
    ws
}

fn meeting_of(reply: &Value) -> (String, String) {
    assert_eq!(reply[0], "success", "{reply}");
    let url = reply[2]["url"].as_str().unwrap();
    let server = url
        .split("/simulator/")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    (query_params(url)["meetingID"].clone(), server.to_string())
}

async fn admin_servers(app: &TestApp) -> Value {
    let mut res = awc::Client::new()
        .get(app.url("/admin/servers"))
        .insert_header(("Authorization", format!("Bearer {ADMIN_TOKEN}")))
        .send()
        .await
        .unwrap();
    serde_json::from_slice(&res.body().await.unwrap()).unwrap()
}

#[actix_web::test]
async fn a_storm_split_over_two_instances_sends_one_create() {
    let (a, b) = cluster_on_shared_bbb(&["s1"]).await;
    let mut sockets = Vec::new();
    for i in 0..16 {
        let app = if i % 2 == 0 { &a } else { &b };
        sockets.push(named(app, &format!("storm-{i}")).await);
    }
    for ws in &mut sockets {
        ws.send_json(json!(["bbb.room_url", "storm", {"room": "stage"}]))
            .await;
    }
    let mut meetings = Vec::new();
    for ws in &mut sockets {
        let r = ws.reply_to(json!("storm")).await;
        meetings.push(meeting_of(&r));
    }
    meetings.dedup();
    assert_eq!(meetings.len(), 1, "one meeting on one server: {meetings:?}");
    let meeting_id = &meetings[0].0;
    let stats = a.sim_stats("s1").await;
    assert_eq!(stats["creates"][meeting_id], 1, "{stats}");
    // Every URL works: the meeting exists on BBB.
    let r = sockets[1].request("bbb.room_url", json!({"room": "stage"})).await;
    let (status, page) = http_get(r[2]["url"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{page}");
}

#[actix_web::test]
async fn placement_charges_are_seen_by_the_other_instance() {
    let (a, b) = cluster_on_shared_bbb(&["s1", "s2"]).await;
    let mut ann = named(&a, "ann").await;
    let (_, server) = meeting_of(&ann.request("bbb.room_url", json!({"room": "stage"})).await);
    // B's view of that server's cost includes A's placement charge within a second.
    let started = Instant::now();
    loop {
        let servers = admin_servers(&b).await;
        let charged = servers["servers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == server.as_str())
            .unwrap()["cost"]
            .as_f64()
            .unwrap();
        if charged > 0.0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(1), "{servers}");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    // So B places the next room on the other server.
    let (mut ben, _) = b.token_user("sample", "speaker-ben", &["speaker"]).await;
    ben.set_name("Ben").await;
    let (_, other) = meeting_of(&ben.request("bbb.room_url", json!({"room": "backstage"})).await);
    assert_ne!(server, other, "spread across instances");
}

#[actix_web::test]
async fn a_meeting_ended_through_one_instance_is_created_again_through_the_other() {
    let (a, b) = cluster_on_shared_bbb(&["s1"]).await;
    let mut ann = named(&a, "ann").await;
    let mut ben = named(&b, "ben").await;
    let (meeting, _) = meeting_of(&ann.request("bbb.room_url", json!({"room": "stage"})).await);
    // B learns from the cluster that it runs: no second create.
    let (same, _) = meeting_of(&ben.request("bbb.room_url", json!({"room": "stage"})).await);
    assert_eq!(same, meeting);
    assert_eq!(a.sim_stats("s1").await["creates"][&meeting], 1);
    // BBB ends it and calls back the instance that created it; B hears of it.
    a.sim_end("s1", &meeting).await;
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    let r = ben.request("bbb.room_url", json!({"room": "stage"})).await;
    assert_eq!(meeting_of(&r).0, meeting);
    assert_eq!(a.sim_stats("s1").await["creates"][&meeting], 2);
    let (status, page) = http_get(r[2]["url"].as_str().unwrap()).await;
    assert_eq!(status, 200, "the join works: {page}");
}

#[actix_web::test]
async fn failed_calls_on_one_instance_make_the_server_unhealthy_on_every_instance() {
    // unhealthy_after = 2 (default): one failed create on each instance is enough together.
    let (a, b) = cluster_on_shared_bbb(&["s1"]).await;
    a.sim_fault("s1", "http500").await;
    let mut ann = named(&a, "ann").await;
    let mut ben = named(&b, "ben").await;
    let r = ann.request("bbb.room_url", json!({"room": "stage"})).await;
    assert_eq!(code(&r), "bbb.failed");
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    let r = ben.request("bbb.room_url", json!({"room": "stage"})).await;
    assert_eq!(code(&r), "bbb.failed");
    let started = Instant::now();
    loop {
        let (sa, sb) = (admin_servers(&a).await, admin_servers(&b).await);
        if sa["servers"][0]["healthy"] == false && sb["servers"][0]["healthy"] == false {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(1), "{sa} {sb}");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn a_claim_left_by_a_dead_instance_expires_and_the_join_goes_on() {
    let url = fresh_pg_database();
    let a = spawn_pg_app_with(&url, "node-a", servers_on("{PORT}", &["s1"])).await;
    // An instance that died mid-create left its claim on the room (lease of 1 s left).
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    actix_web::rt::spawn(conn);
    client
        .execute(
            "INSERT INTO meeting_claims (key, holder, expires_at)
             VALUES ('room/sample/stage', 'dead-node', now() + interval '1 second')",
            &[],
        )
        .await
        .unwrap();
    let mut ann = named(&a, "ann").await;
    let started = Instant::now();
    let r = ann.request("bbb.room_url", json!({"room": "stage"})).await;
    let (meeting, _) = meeting_of(&r);
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "waited for the claim"
    );
    assert_eq!(a.sim_stats("s1").await["creates"][&meeting], 1);
}

#[actix_web::test]
async fn an_end_callback_reaching_an_instance_that_never_saw_the_meeting_acts_for_the_cluster() {
    let (a, b) = cluster_on_shared_bbb(&["s1"]).await;
    let mut ann = named(&a, "ann").await;
    let (meeting, _) = meeting_of(&ann.request("bbb.room_url", json!({"room": "stage"})).await);
    let details = a.sim_meeting("s1", &meeting).await.unwrap();
    let callback = details["create"]["params"]["meetingEndedURL"]
        .as_str()
        .unwrap()
        .replace(
            &format!("127.0.0.1:{}/", a.port),
            &format!("127.0.0.1:{}/", b.port),
        );
    assert!(callback.contains(&b.port.to_string()), "{callback}");
    // The load balancer sends BBB's callback to B, which has not seen this meeting.
    let (status, _) = http_get(&callback).await;
    assert_eq!(status, 200);
    // A hears that it ended: its next join creates it again.
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    let r = ann.request("bbb.room_url", json!({"room": "stage"})).await;
    assert_eq!(meeting_of(&r).0, meeting);
    assert_eq!(a.sim_stats("s1").await["creates"][&meeting], 2);
    // A forged token is still refused there.
    let forged = format!("{}x", &callback[..callback.len() - 1]);
    assert_eq!(http_get(&forged).await.0, 403);
}

#[actix_web::test]
async fn each_server_is_polled_about_once_per_interval_by_the_cluster() {
    let url = fresh_pg_database();
    let fast = |port: &str| {
        let servers = servers_on(port, &["s1"]);
        move |s: String| servers(s.replace("poll_interval_ms = 60000", "poll_interval_ms = 500"))
    };
    let a = spawn_pg_app_with(&url, "node-a", fast("{PORT}")).await;
    let port = a.port.to_string();
    let b = spawn_pg_app_with(&url, "node-b", fast(&port)).await;
    let before = a.sim_stats("s1").await["get_meetings_total"].as_u64().unwrap();
    actix_web::rt::time::sleep(Duration::from_secs(3)).await;
    let polls = a.sim_stats("s1").await["get_meetings_total"].as_u64().unwrap() - before;
    // Two instances polling on their own would make about 12 in 3 s.
    assert!((3..=8).contains(&polls), "{polls} polls in 3 s at 500 ms");
    // Both instances see the shared result, the server's version included.
    for app in [&a, &b] {
        let servers = admin_servers(app).await;
        assert!(servers["servers"][0]["last_poll_at"].is_string(), "{servers}");
        assert!(servers["servers"][0]["version"].is_string(), "{servers}");
    }
}

#[actix_web::test]
async fn an_instance_started_later_shows_the_stored_server_state_at_once() {
    let url = fresh_pg_database();
    let a = spawn_pg_app_with(&url, "node-a", servers_on("{PORT}", &["s1"])).await;
    // A polls s1 at start (learning its version), then two failed creates make it unhealthy.
    let started = Instant::now();
    while !(admin_servers(&a).await["servers"][0]["version"].is_string()) {
        assert!(started.elapsed() < Duration::from_secs(10), "A polled s1");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    a.sim_fault("s1", "http500").await;
    let mut ann = named(&a, "ann").await;
    for _ in 0..2 {
        let r = ann.request("bbb.room_url", json!({"room": "stage"})).await;
        assert_eq!(code(&r), "bbb.failed");
    }
    let seen = admin_servers(&a).await["servers"][0].clone();
    assert_eq!(seen["healthy"], false, "{seen}");
    assert!(seen["last_poll_at"].is_string(), "{seen}");
    // B starts after all that (it heard none of the notifications) and polls only every
    // 10 minutes; A holds the poll lease anyway. Only the stored row can tell B.
    let port = a.port.to_string();
    let servers = servers_on(&port, &["s1"]);
    let b = spawn_pg_app_with(&url, "node-b", move |s| {
        servers(s.replace("poll_interval_ms = 60000", "poll_interval_ms = 600000"))
    })
    .await;
    let late = admin_servers(&b).await["servers"][0].clone();
    for field in [
        "healthy",
        "last_poll_at",
        "version",
        "last_error",
        "cost",
        "meetings",
    ] {
        assert_eq!(late[field], seen[field], "{field}: {late} vs {seen}");
    }
}
