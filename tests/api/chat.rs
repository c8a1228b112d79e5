//! Direct messages and private calls (SPEC §4.4) with several users on separate sockets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

async fn dm(p: &mut Person, others: &[&str]) -> Value {
    p.ws.request("chat.direct.create", json!({ "users": others }))
        .await
}

fn ok(reply: &Value) -> &Value {
    assert_eq!(reply[0], "success", "{reply}");
    &reply[2]
}

async fn send_text(p: &mut Person, channel: &str, body: &str) -> Value {
    p.ws.request(
        "chat.send",
        json!({"channel": channel, "event_type": "channel.message", "content": {"type": "text", "body": body}}),
    )
    .await
}

async fn start_call(p: &mut Person, channel: &str) -> Value {
    p.ws.request(
        "chat.send",
        json!({"channel": channel, "event_type": "channel.message", "content": {"type": "call"}}),
    )
    .await
}

#[actix_web::test]
async fn direct_channels_need_the_chat_permission() {
    let app = spawn_app().await;
    let (mut ws, _) = app.client("nochat", "quiet").await;
    let (_other, body) = app.client("nochat", "other").await;
    let r = ws
        .request(
            "chat.direct.create",
            json!({"users": [body["user.config"]["id"]]}),
        )
        .await;
    assert_eq!(code(&r), "auth.denied");
}

#[actix_web::test]
async fn the_same_member_set_gets_the_same_channel() {
    let app = spawn_app().await;
    let mut a = person(&app, "a", "Ann").await;
    let mut b = person(&app, "b", "Ben").await;
    let c = person(&app, "c", "Cat").await;
    let r = dm(&mut a, &[&b.id]).await;
    let channel = ok(&r).clone();
    let mut keys: Vec<&str> = channel.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        vec!["id", "members", "next_event_id", "state", "unread_pointer"]
    );
    assert_eq!(channel["state"], Value::Null);
    // Two member events, one per member (SPEC 4.6.2); U counts no member event.
    assert_eq!(channel["next_event_id"], 3);
    assert_eq!(channel["unread_pointer"], 0);
    let mut member_ids: Vec<&str> = channel["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    member_ids.sort();
    let mut expected = vec![a.id.as_str(), b.id.as_str()];
    expected.sort();
    assert_eq!(member_ids, expected);
    assert!(channel["members"][0]["profile"]["display_name"].is_string());

    let again = dm(&mut b, &[&a.id]).await;
    assert_eq!(ok(&again)["id"], channel["id"]);
    let a_id = a.id.clone();
    let duplicate = dm(&mut a, &[&b.id, &b.id, &a_id]).await;
    assert_eq!(ok(&duplicate)["id"], channel["id"]);
    let three = dm(&mut a, &[&b.id, &c.id]).await;
    assert_ne!(ok(&three)["id"], channel["id"]);
}

#[actix_web::test]
async fn unknown_users_or_too_few_members_are_chat_denied() {
    let app = spawn_app().await;
    let mut a = person(&app, "a", "Ann").await;
    let (_x, other_world) = app.token_user("closed", "far-away", &["ticket"]).await;
    let self_id = a.id.clone();
    for users in [
        json!([]),
        json!([self_id]),
        json!(["00000000-0000-4000-8000-000000000000"]),
        json!(["not-a-uuid"]),
        json!([other_world["user.config"]["id"]]),
    ] {
        let r =
            a.ws.request("chat.direct.create", json!({ "users": users }))
                .await;
        assert_eq!(code(&r), "chat.denied", "for {users}");
    }
    let r =
        a.ws.request("chat.direct.create", json!({"users": "everyone"}))
            .await;
    assert_eq!(code(&r), "protocol.invalid_message");
}

#[actix_web::test]
async fn messages_are_pushed_to_every_socket_of_every_member() {
    let app = spawn_app().await;
    let mut a = person(&app, "a", "Ann").await;
    let (mut a2, _) = app.client("sample", "a").await;
    let mut b = person(&app, "b", "Ben").await;
    let mut outsider = person(&app, "x", "Xavier").await;
    let channel = ok(&dm(&mut a, &[&b.id]).await)["id"]
        .as_str()
        .unwrap()
        .to_string();

    let r = send_text(&mut a, &channel, "hello").await;
    let event = ok(&r)["event"].clone();
    assert_eq!(event["event_id"], 3, "after the two member events");
    assert_eq!(event["channel"], channel);
    assert_eq!(event["sender"], a.id);
    assert_eq!(event["event_type"], "channel.message");
    assert_eq!(event["content"], json!({"type": "text", "body": "hello"}));
    assert_eq!(
        (
            event["edited"].clone(),
            event["replaces"].clone(),
            event["reactions"].clone()
        ),
        (Value::Null, Value::Null, json!({}))
    );
    assert!(chrono::DateTime::parse_from_rfc3339(event["timestamp"].as_str().unwrap()).is_ok());
    assert!(event["timestamp"].as_str().unwrap().ends_with('Z'));

    for ws in [&mut a.ws, &mut a2, &mut b.ws] {
        let push = ws.recv_event("chat.event").await;
        assert_eq!(push, json!(["chat.event", event]));
    }
    outsider.ws.expect_silence(Duration::from_millis(200)).await;
    let r = send_text(&mut b, &channel, "hi back").await;
    assert_eq!(ok(&r)["event"]["event_id"], 4);
}

#[actix_web::test]
async fn a_call_started_by_one_member_is_joined_by_the_others_as_moderators() {
    let app = spawn_app().await;
    let mut a = person(&app, "a", "Ann").await;
    let mut b = person(&app, "b", "Ben").await;
    let mut c = person(&app, "c", "Cat").await;
    let channel = ok(&dm(&mut a, &[&b.id]).await)["id"]
        .as_str()
        .unwrap()
        .to_string();

    let r = start_call(&mut a, &channel).await;
    let event = ok(&r)["event"].clone();
    assert_eq!(event["content"]["type"], "call");
    assert_eq!(event["content"]["body"]["type"], "bbb");
    let call = event["content"]["body"]["id"].as_str().unwrap().to_string();
    assert!(bbb_gateway::ids::is_uuid(&call));
    let push = b.ws.recv_event("chat.event").await;
    assert_eq!(push[1]["content"]["body"]["id"], call);

    let mut meeting = None;
    for p in [&mut b, &mut a] {
        let r = p.ws.request("bbb.call_url", json!({ "call": call })).await;
        let url = ok(&r)["url"].as_str().unwrap().to_string();
        let params = query_params(&url);
        assert_eq!(params["userdata-bbb_auto_swap_layout"], "true");
        assert_eq!(params["userdata-bbb_auto_share_webcam"], "true");
        assert_eq!(params["userdata-bbb_listen_only_mode"], "false");
        let (status, page) = http_get(&url).await;
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("data-role=\"MODERATOR\""), "{page}");
        if let Some(m) = &meeting {
            assert_eq!(&params["meetingID"], m);
        }
        meeting = Some(params["meetingID"].clone());
    }
    let sim = app
        .sim_meeting("default", meeting.as_ref().unwrap())
        .await
        .unwrap();
    let create = &sim["create"]["params"];
    assert_eq!(create["name"], "Call");
    assert_eq!(create["meta_Call"], call);
    assert_eq!(create["record"], "false");
    assert_eq!(create["lockSettingsDisablePrivateChat"], "true");
    assert_eq!(create["guestPolicy"], "ALWAYS_ACCEPT");

    // A third user is refused everything about the call and the channel.
    let r = c.ws.request("bbb.call_url", json!({ "call": call })).await;
    assert_eq!(code(&r), "bbb.failed");
    assert_eq!(
        code(&send_text(&mut c, &channel, "let me in").await),
        "chat.denied"
    );
    let r =
        c.ws.request("chat.fetch", json!({"channel": channel, "count": 10}))
            .await;
    assert_eq!(code(&r), "chat.denied");
    let r = start_call(&mut c, &channel).await;
    assert_eq!(code(&r), "chat.denied");
}

#[actix_web::test]
async fn malformed_and_unknown_ids_are_refused_and_the_socket_stays_usable() {
    let app = spawn_app().await;
    let mut a = person(&app, "a", "Ann").await;
    for call in [
        json!(42),
        json!("not-a-uuid"),
        json!("00000000-0000-4000-8000-000000000000"),
        json!(null),
    ] {
        let r = a.ws.request("bbb.call_url", json!({ "call": call })).await;
        assert_eq!(code(&r), "bbb.failed", "for {call}");
    }
    assert_eq!(
        code(&send_text(&mut a, "00000000-0000-4000-8000-000000000000", "x").await),
        "room.unknown"
    );
    assert_eq!(code(&send_text(&mut a, "whatever", "x").await), "room.unknown");
    let r =
        a.ws.request("chat.fetch", json!({"channel": "nope", "count": 5}))
            .await;
    assert_eq!(code(&r), "room.unknown");
    a.ws.send_json(json!(["ping", "still here"])).await;
    assert_eq!(a.ws.recv().await, json!(["pong", "still here"]));
}

#[actix_web::test]
async fn call_url_without_a_display_name_is_missing_profile() {
    let app = spawn_app().await;
    let mut a = person(&app, "a", "Ann").await;
    let (mut nameless, body) = app.client("sample", "nameless").await;
    let nameless_id = body["user.config"]["id"].as_str().unwrap().to_string();
    let channel = ok(&dm(&mut a, &[&nameless_id]).await)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let call = ok(&start_call(&mut a, &channel).await)["event"]["content"]["body"]["id"].clone();
    let r = nameless.request("bbb.call_url", json!({ "call": call })).await;
    assert_eq!(code(&r), "bbb.join.missing_profile");
}

#[actix_web::test]
async fn fetch_pages_oldest_first() {
    let app = spawn_app().await;
    let mut a = person(&app, "a", "Ann").await;
    let b = person(&app, "b", "Ben").await;
    let channel = ok(&dm(&mut a, &[&b.id]).await)["id"]
        .as_str()
        .unwrap()
        .to_string();
    for i in 1..=5 {
        ok(&send_text(&mut a, &channel, &format!("m{i}")).await);
    }
    let ids = |r: &Value| -> Vec<i64> {
        ok(r)["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event_id"].as_i64().unwrap())
            .collect()
    };
    let r =
        a.ws.request("chat.fetch", json!({"channel": channel, "count": 2}))
            .await;
    assert_eq!(ids(&r), vec![6, 7]);
    let r =
        a.ws.request(
            "chat.fetch",
            json!({"channel": channel, "count": 2, "before_id": 6}),
        )
        .await;
    assert_eq!(ids(&r), vec![4, 5]);
    let r =
        a.ws.request("chat.fetch", json!({"channel": channel, "count": 100}))
            .await;
    assert_eq!(ids(&r), vec![1, 2, 3, 4, 5, 6, 7], "member events 1 and 2 first");
    let r = a.ws.request("chat.direct.create", json!({"users": [b.id]})).await;
    assert_eq!(ok(&r)["next_event_id"], 8);
    assert_eq!(ok(&r)["unread_pointer"], 7);
}

#[actix_web::test]
async fn channels_calls_and_invites_survive_a_restart() {
    let app = spawn_app().await;
    let mut a = person(&app, "a", "Ann").await;
    let mut b = person(&app, "b", "Ben").await;
    let channel = ok(&dm(&mut a, &[&b.id]).await)["id"]
        .as_str()
        .unwrap()
        .to_string();
    ok(&send_text(&mut a, &channel, "before the restart").await);
    let call = ok(&start_call(&mut a, &channel).await)["event"]["content"]["body"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let before = query_params(
        ok(&b.ws.request("bbb.call_url", json!({"call": call})).await)["url"]
            .as_str()
            .unwrap(),
    );
    drop((a, b));

    let app = app.restart().await;
    let (mut a, body) = app.client("sample", "a").await;
    let channels = body["chat.channels"].as_array().unwrap();
    assert_eq!(channels.len(), 1);
    assert_eq!(channels[0]["id"], channel);
    assert_eq!(channels[0]["members"].as_array().unwrap().len(), 2);
    let r = a
        .request("chat.fetch", json!({"channel": channel, "count": 10}))
        .await;
    let events = ok(&r)["results"].as_array().unwrap().clone();
    assert_eq!(events.len(), 4, "two member events, the message, the call");
    assert_eq!(events[2]["content"]["body"], "before the restart");
    assert_eq!(
        events[3]["content"],
        json!({"type": "call", "body": {"id": call, "type": "bbb"}})
    );

    let (mut b, _) = app.client("sample", "b").await;
    let r = b.request("bbb.call_url", json!({ "call": call })).await;
    let url = ok(&r)["url"].as_str().unwrap().to_string();
    assert_eq!(query_params(&url)["meetingID"], before["meetingID"]);
    assert_eq!(http_get(&url).await.0, 200);
    let mut c = person(&app, "c", "Cat").await;
    assert_eq!(
        code(&c.ws.request("bbb.call_url", json!({ "call": call })).await),
        "bbb.failed"
    );
}

#[actix_web::test]
async fn calls_are_never_placed_on_rooms_only_servers() {
    let app = spawn_app_with(|s| {
        s + &format!(
            "\n[[bbb.servers]]\nid = \"rooms\"\nurl = \"http://127.0.0.1:{{PORT}}/simulator/rooms/bigbluebutton/\"\nsecret = \"{SIM_SECRET}\"\nrooms_only = true\n\n[[bbb.servers]]\nid = \"calls\"\nurl = \"http://127.0.0.1:{{PORT}}/simulator/calls/bigbluebutton/\"\nsecret = \"{SIM_SECRET}\"\nload_multiplier = 100.0\n"
        )
    })
    .await;
    let mut a = person(&app, "a", "Ann").await;
    let b = person(&app, "b", "Ben").await;
    let channel = ok(&dm(&mut a, &[&b.id]).await)["id"]
        .as_str()
        .unwrap()
        .to_string();
    for _ in 0..3 {
        let call = ok(&start_call(&mut a, &channel).await)["event"]["content"]["body"]["id"].clone();
        let url = ok(&a.ws.request("bbb.call_url", json!({ "call": call })).await)["url"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(url.contains("/simulator/calls/"), "{url}");
    }
    // Rooms still go to the cheaper rooms_only server.
    let url = ok(&a.ws.request("bbb.room_url", json!({"room": "stage"})).await)["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(url.contains("/simulator/rooms/"), "{url}");
}

#[actix_web::test]
async fn large_replies_arrive_whole_in_fragments_and_in_order() {
    let app = spawn_app_with(|s| s.replace("requests_per_second = 50", "requests_per_second = 0")).await;
    let mut a = person(&app, "a", "Ann").await;
    let b = person(&app, "b", "Ben").await;
    let channel = ok(&dm(&mut a, &[&b.id]).await)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let body = "ü".repeat(1500); // 3000 bytes of two-byte characters
    for _ in 0..10 {
        ok(&send_text(&mut a, &channel, &body).await);
    }
    let before = a.ws.fragmented_messages;
    // Pings sent while the large reply goes out in fragments must neither be lost nor land
    // inside it (an interleaved frame would break the reassembly).
    a.ws.send_json(json!(["chat.fetch", "big", {"channel": channel, "count": 10}]))
        .await;
    for i in 0..20 {
        a.ws.send_json(json!(["ping", i])).await;
        actix_web::rt::time::sleep(Duration::from_micros(300)).await;
    }
    let (mut big, mut pongs) = (None, 0);
    while big.is_none() || pongs < 20 {
        let v = a.ws.recv().await;
        if v[1] == "big" {
            big = Some(v);
        } else if v[0] == "pong" {
            pongs += 1;
        }
    }
    let big = big.unwrap();
    let results = ok(&big)["results"].as_array().unwrap();
    assert_eq!(results.len(), 10);
    assert!(results.iter().all(|e| e["content"]["body"] == body.as_str()));
    assert!(
        a.ws.fragmented_messages > before,
        "a reply over 8 KiB is fragmented"
    );
}
