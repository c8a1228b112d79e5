//! Conversations as the venueless webapp drives them (SPEC 4.6): finding people, hidden
//! memberships, the conversation list, reading, and who gets which push in which order. Two
//! and three users on real WebSocket clients; every frame is checked in arrival order.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

const SILENCE: Duration = Duration::from_millis(250);

fn ok(reply: &Value) -> &Value {
    assert_eq!(reply[0], "success", "{reply}");
    &reply[2]
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

/// The next `n` frames, in arrival order.
async fn frames(ws: &mut Ws, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(ws.recv().await);
    }
    out
}

fn names(frames: &[Value]) -> Vec<String> {
    frames
        .iter()
        .map(|f| f[0].as_str().unwrap().to_string())
        .collect()
}

fn channel_ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

async fn create(p: &mut Person, others: &[&str]) -> Value {
    let r =
        p.ws.request("chat.direct.create", json!({ "users": others }))
            .await;
    ok(&r).clone()
}

fn text(channel: &str, body: &str) -> Value {
    json!({"channel": channel, "event_type": "channel.message", "content": {"type": "text", "body": body}})
}

fn call(channel: &str) -> Value {
    json!({"channel": channel, "event_type": "channel.message", "content": {"type": "call"}})
}

async fn search(ws: &mut Ws, term: &str, page: u64) -> Value {
    let r = ws
        .request("user.list.search", json!({"search_term": term, "page": page}))
        .await;
    ok(&r).clone()
}

async fn ban(app: &TestApp, user: &str) {
    let mut res = awc::Client::new()
        .post(app.url(&format!("/admin/worlds/sample/users/{user}/moderation")))
        .insert_header(("Authorization", format!("Bearer {ADMIN_TOKEN}")))
        .send_json(&json!({"state": "banned"}))
        .await
        .unwrap();
    let _ = res.body().await;
    assert_eq!(res.status().as_u16(), 200);
}

#[actix_web::test]
async fn search_lists_people_by_name_in_pages_of_twenty() {
    let app = spawn_app_with(|s| s.replace("requests_per_second = 50", "requests_per_second = 0")).await;
    let mut me = person(&app, "me", "Zed Searcher").await;
    let profile =
        json!({"display_name": "Zed Searcher", "avatar": {"url": "https://example.org/z.png"}, "bio": "b"});
    ok(&me.ws.request("user.update", json!({ "profile": profile })).await);
    let mut people = Vec::new();
    for i in (0..22).rev() {
        people.push(person(&app, &format!("p{i}"), &format!("Person {i:02}")).await);
    }
    let (_nameless, _) = app.client("sample", "nameless").await;
    let banned = person(&app, "banned", "Person Banned").await;
    ban(&app, &banned.id).await;

    let first = search(&mut me.ws, "PERSON", 1).await;
    assert_eq!(keys(&first), ["isLastPage", "results"]);
    assert_eq!(first["isLastPage"], false);
    let results = first["results"].as_array().unwrap();
    assert_eq!(results.len(), 20);
    assert_eq!(
        keys(&results[0]),
        ["badges", "id", "inactive", "pretalx_id", "profile"]
    );
    assert_eq!(results[0]["profile"], json!({"display_name": "Person 00"}));
    assert_eq!(
        (results[0]["inactive"].clone(), results[0]["badges"].clone()),
        (json!(false), json!([]))
    );
    assert_eq!(results[19]["profile"]["display_name"], "Person 19");

    let second = search(&mut me.ws, "person", 2).await;
    let names: Vec<&str> = second["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["profile"]["display_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Person 20", "Person 21"], "banned users are never listed");
    assert_eq!(second["isLastPage"], true);
    assert_eq!(
        search(&mut me.ws, "person", 3).await,
        json!({"results": [], "isLastPage": true})
    );

    // An empty term lists every searchable user, the caller included; nameless users never.
    let all = search(&mut me.ws, "", 2).await;
    let last = all["results"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["id"], me.id);
    assert_eq!(
        last["profile"],
        json!({"display_name": "Zed Searcher", "avatar": {"url": "https://example.org/z.png"}}),
        "profiles cut to display_name and avatar"
    );
    assert_eq!(all["results"].as_array().unwrap().len(), 3);
    let r = me
        .ws
        .request(
            "user.list.search",
            json!({"search_term": "", "page": 1, "badge": "speaker", "include_banned": true}),
        )
        .await;
    assert_eq!(ok(&r), &json!({"results": [], "isLastPage": true}));
}

#[actix_web::test]
async fn search_needs_direct_chat_and_a_well_formed_body() {
    let app = spawn_app().await;
    let (mut quiet, _) = app.client("nochat", "quiet").await;
    let r = quiet
        .request("user.list.search", json!({"search_term": "", "page": 1}))
        .await;
    assert_eq!(code(&r), "auth.denied");
    let (mut ws, _) = app.client("sample", "asker").await;
    for body in [
        json!({"page": 1}),
        json!({"search_term": 3, "page": 1}),
        json!({"search_term": "x".repeat(201), "page": 1}),
        json!({"search_term": "x", "page": 0}),
        json!({"search_term": "x", "page": "2"}),
        json!({"search_term": "x"}),
        json!([]),
    ] {
        let r = ws.request("user.list.search", body.clone()).await;
        assert_eq!(code(&r), "protocol.invalid_message", "for {body}");
    }
    ws.send_json(json!(["ping", 1])).await;
    assert_eq!(ws.recv().await, json!(["pong", 1]));
}

#[actix_web::test]
async fn users_are_inactive_36_hours_after_their_last_authenticate() {
    let app = spawn_app().await;
    let mut me = person(&app, "me", "Me").await;
    let old = person(&app, "old", "Old Timer").await;
    let fresh = person(&app, "fresh", "Fresh One").await;
    let db = rusqlite::Connection::open(&app.db).unwrap();
    let hours_ago = |h: i64| chrono::Utc::now().timestamp_millis() - h * 3600 * 1000;
    db.execute(
        "UPDATE users SET last_login_ms = ?1 WHERE id = ?2",
        rusqlite::params![hours_ago(37), old.id],
    )
    .unwrap();
    db.execute(
        "UPDATE users SET last_login_ms = ?1 WHERE id = ?2",
        rusqlite::params![hours_ago(35), fresh.id],
    )
    .unwrap();
    let found = search(&mut me.ws, "o", 1).await;
    let inactive: Vec<(String, bool)> = found["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["profile"]["display_name"].as_str().unwrap().into(),
                u["inactive"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        inactive,
        [("Fresh One".into(), false), ("Old Timer".into(), true)]
    );
    let r = me.ws.request("user.fetch", json!({"id": old.id})).await;
    assert_eq!(ok(&r)["inactive"], true);
    // Logging in again makes the user active.
    let (_again, body) = app.client("sample", "old").await;
    assert_eq!(body["user.config"]["inactive"], false);
    let r = me.ws.request("user.fetch", json!({"ids": [old.id]})).await;
    assert_eq!(ok(&r)[&old.id]["inactive"], false);
}

#[actix_web::test]
async fn a_new_conversation_stays_hidden_from_the_invitee_until_its_first_message() {
    let app = spawn_app().await;
    let mut a = person(&app, "a", "Ann").await;
    let (mut a2, _) = app.client("sample", "a").await;
    let mut b = person(&app, "b", "Ben").await;
    let (mut b2, _) = app.client("sample", "b").await;

    // Creating: the reply, then the creator's other socket learns of it; the invitee nothing.
    a.ws.send_json(json!(["chat.direct.create", "mk", {"users": [b.id]}]))
        .await;
    let reply = a.ws.recv().await;
    let channel = ok(&reply)["id"].as_str().unwrap().to_string();
    assert_eq!(ok(&reply)["unread_pointer"], 0);
    assert_eq!(ok(&reply)["next_event_id"], 3);
    let push = a2.recv().await;
    assert_eq!(push[0], "chat.channels");
    assert_eq!(channel_ids(&push[1]["channels"]), [channel.as_str()]);
    let listed = &push[1]["channels"][0];
    assert_eq!(listed["unread_pointer"], 0);
    assert_eq!(listed["members"].as_array().unwrap().len(), 2);
    a.ws.expect_silence(SILENCE).await;
    b.ws.expect_silence(SILENCE).await;
    let (_b3, body) = app.client("sample", "b").await;
    assert_eq!(body["chat.channels"], json!([]), "hidden for the invitee");
    let (_a3, body) = app.client("sample", "a").await;
    assert_eq!(channel_ids(&body["chat.channels"]), [channel.as_str()]);

    // The first message: 4.6.6 order on every socket.
    a.ws.send_json(json!(["chat.send", "s1", text(&channel, "hello")]))
        .await;
    let sender = frames(&mut a.ws, 2).await;
    assert_eq!(names(&sender), ["success", "chat.event"]);
    let event = sender[0][2]["event"].clone();
    assert_eq!(event["event_id"], 3);
    assert_eq!(sender[1][1], event);
    assert_eq!(a2.recv().await, json!(["chat.event", event]));
    for ws in [&mut b.ws, &mut b2] {
        let got = frames(ws, 4).await;
        assert_eq!(
            names(&got),
            [
                "chat.channels",
                "chat.event",
                "chat.unread_pointers",
                "chat.notification"
            ]
        );
        let listed = &got[0][1]["channels"][0];
        assert_eq!(listed["id"], channel);
        assert_eq!(listed["unread_pointer"], 3);
        assert_eq!(got[1][1], event);
        assert_eq!(got[2][1], json!({ channel.clone(): 3 }));
        let mut typed = event.clone();
        typed["type"] = json!("chat.event");
        assert_eq!(got[3][1]["event"], typed);
        assert_eq!(got[3][1]["sender"]["id"], a.id);
        assert_eq!(got[3][1]["sender"]["profile"]["display_name"], "Ann");
        ws.expect_silence(SILENCE).await;
    }
    a.ws.expect_silence(SILENCE).await;
    a2.expect_silence(SILENCE).await;

    // Now visible: a login lists it with its count; the next message has no chat.channels.
    let (_b4, body) = app.client("sample", "b").await;
    assert_eq!(channel_ids(&body["chat.channels"]), [channel.as_str()]);
    assert_eq!(body["chat.notification_counts"], json!({ channel.clone(): 1 }));
    assert_eq!(body["chat.read_pointers"], json!({}));
    let r = a.ws.request("chat.send", text(&channel, "again")).await;
    ok(&r);
    let got = frames(&mut b.ws, 3).await;
    assert_eq!(
        names(&got),
        ["chat.event", "chat.unread_pointers", "chat.notification"]
    );
    assert_eq!(got[1][1], json!({ channel.clone(): 4 }));
}

#[actix_web::test]
async fn a_call_reaches_every_hidden_invitee_live_and_they_can_join_it() {
    let app = spawn_app().await;
    let mut a = person(&app, "a", "Ann").await;
    let mut b = person(&app, "b", "Ben").await;
    let mut c = person(&app, "c", "Cat").await;
    let channel = create(&mut a, &[&b.id, &c.id]).await["id"]
        .as_str()
        .unwrap()
        .to_string();

    a.ws.send_json(json!(["chat.send", "call", call(&channel)])).await;
    let sender = frames(&mut a.ws, 2).await;
    assert_eq!(names(&sender), ["success", "chat.event"]);
    let event = sender[0][2]["event"].clone();
    assert_eq!(event["event_id"], 4, "after three member events");
    let call_id = event["content"]["body"]["id"].as_str().unwrap().to_string();
    for p in [&mut b, &mut c] {
        let got = frames(&mut p.ws, 4).await;
        assert_eq!(
            names(&got),
            [
                "chat.channels",
                "chat.event",
                "chat.unread_pointers",
                "chat.notification"
            ]
        );
        assert_eq!(got[1][1]["content"]["type"], "call");
        assert_eq!(got[3][1]["event"]["content"]["body"]["id"], call_id);
        // Opening it as the webapp does: subscribe, fetch from next_event_id, join.
        let r =
            p.ws.request("chat.subscribe", json!({ "channel": channel }))
                .await;
        let sub = ok(&r).clone();
        assert_eq!(
            keys(&sub),
            ["members", "next_event_id", "state", "unread_pointer"]
        );
        assert_eq!(
            (sub["next_event_id"].clone(), sub["unread_pointer"].clone()),
            (json!(5), json!(4))
        );
        assert_eq!(sub["members"].as_array().unwrap().len(), 3);
        let r =
            p.ws.request(
                "chat.fetch",
                json!({"channel": channel, "count": 25, "before_id": 5}),
            )
            .await;
        let results = ok(&r)["results"].as_array().unwrap().clone();
        assert_eq!(results.last().unwrap(), &event);
        let r = p.ws.request("bbb.call_url", json!({ "call": call_id })).await;
        let url = ok(&r)["url"].as_str().unwrap().to_string();
        assert_eq!(http_get(&url).await.0, 200);
    }
}

#[actix_web::test]
async fn created_with_hide_false_the_conversation_appears_for_everyone_at_once() {
    let app = spawn_app().await;
    let mut a = person(&app, "a", "Ann").await;
    let (mut a2, _) = app.client("sample", "a").await;
    let mut b = person(&app, "b", "Ben").await;
    let r =
        a.ws.request("chat.direct.create", json!({"users": [b.id], "hide": false}))
            .await;
    let channel = ok(&r)["id"].clone();
    for ws in [&mut a2, &mut b.ws] {
        let push = ws.recv().await;
        assert_eq!(push[0], "chat.channels");
        assert_eq!(push[1]["channels"][0]["id"], channel);
    }
    a.ws.expect_silence(SILENCE).await;
    // The same members again: nothing new, nothing pushed.
    let r = b.ws.request("chat.direct.create", json!({"users": [a.id]})).await;
    assert_eq!(ok(&r)["id"], channel);
    a2.expect_silence(SILENCE).await;
    let r =
        a.ws.request("chat.direct.create", json!({"users": [b.id], "hide": "no"}))
            .await;
    assert_eq!(code(&r), "protocol.invalid_message");
}

#[actix_web::test]
async fn leaving_hides_the_conversation_until_it_is_created_again_or_a_message_arrives() {
    let app = spawn_app().await;
    let mut a = person(&app, "a", "Ann").await;
    let (mut a2, _) = app.client("sample", "a").await;
    let mut b = person(&app, "b", "Ben").await;
    let mut c = person(&app, "c", "Cat").await;
    let channel = create(&mut a, &[&b.id]).await["id"].as_str().unwrap().to_string();
    assert_eq!(a2.recv().await[0], "chat.channels");

    let r = a.ws.request("chat.leave", json!({ "channel": channel })).await;
    assert_eq!(ok(&r), &json!({}));
    assert_eq!(a2.recv().await, json!(["chat.channels", {"channels": []}]));
    let (_a3, body) = app.client("sample", "a").await;
    assert_eq!(body["chat.channels"], json!([]));

    // Creating it again makes it visible for the caller (fix), other sockets told.
    let again = create(&mut a, &[&b.id]).await;
    assert_eq!(again["id"], channel);
    let push = a2.recv().await;
    assert_eq!(channel_ids(&push[1]["channels"]), [channel.as_str()]);

    // Hidden again; B's message brings it back before the event reaches A.
    ok(&a.ws.request("chat.leave", json!({ "channel": channel })).await);
    assert_eq!(a2.recv().await[0], "chat.channels");
    ok(&b.ws.request("chat.send", text(&channel, "still there?")).await);
    let got = frames(&mut a2, 4).await;
    assert_eq!(
        names(&got),
        [
            "chat.channels",
            "chat.event",
            "chat.unread_pointers",
            "chat.notification"
        ]
    );

    for (body, expected) in [
        (json!({"channel": "nope"}), "room.unknown"),
        (json!({ "channel": channel }), "chat.denied"),
        (json!({"channel": 5}), "protocol.invalid_message"),
    ] {
        let r = c.ws.request("chat.leave", body.clone()).await;
        assert_eq!(code(&r), expected, "for {body}");
    }
}

#[actix_web::test]
async fn marking_read_moves_the_pointer_and_tells_the_other_sockets() {
    let app = spawn_app().await;
    let mut a = person(&app, "a", "Ann").await;
    let mut b = person(&app, "b", "Ben").await;
    let (mut b2, _) = app.client("sample", "b").await;
    let mut c = person(&app, "c", "Cat").await;
    let channel = create(&mut a, &[&b.id]).await["id"].as_str().unwrap().to_string();
    for body in ["one", "two", "three"] {
        ok(&a.ws.request("chat.send", text(&channel, body)).await); // events 3, 4, 5
    }
    for ws in [&mut b.ws, &mut b2] {
        let got = frames(ws, 10).await; // chat.channels + 3 × (event, unread, notification)
        assert_eq!(got.last().unwrap()[0], "chat.notification");
    }
    let (_b3, body) = app.client("sample", "b").await;
    assert_eq!(body["chat.notification_counts"], json!({ channel.clone(): 3 }));

    b.ws.send_json(json!(["chat.mark_read", "m", {"channel": channel, "id": 4}]))
        .await;
    let got = frames(&mut b.ws, 2).await;
    assert_eq!(got[0], json!(["success", "m", {}]));
    assert_eq!(
        got[1],
        json!(["chat.notification_counts", { channel.clone(): 1 }])
    );
    let other = frames(&mut b2, 2).await;
    assert_eq!(other[0], json!(["chat.read_pointers", { channel.clone(): 4 }]));
    assert_eq!(
        other[1],
        json!(["chat.notification_counts", { channel.clone(): 1 }])
    );
    b.ws.expect_silence(SILENCE).await;

    // Never back, never past the end.
    ok(&b
        .ws
        .request("chat.mark_read", json!({"channel": channel, "id": 2}))
        .await);
    assert_eq!(
        b2.recv().await,
        json!(["chat.read_pointers", { channel.clone(): 4 }])
    );
    ok(&b
        .ws
        .request("chat.mark_read", json!({"channel": channel, "id": 999}))
        .await);
    assert_eq!(b2.recv().await[0], "chat.notification_counts");
    assert_eq!(
        b2.recv().await,
        json!(["chat.read_pointers", { channel.clone(): 5 }])
    );
    assert_eq!(b2.recv().await, json!(["chat.notification_counts", {}]));
    let (_b4, body) = app.client("sample", "b").await;
    assert_eq!(body["chat.read_pointers"], json!({ channel.clone(): 5 }));
    assert_eq!(body["chat.notification_counts"], json!({}));

    for (body, expected) in [
        (json!({"channel": channel}), "chat.invalid_body"),
        (json!({"channel": channel, "id": null}), "chat.invalid_body"),
        (json!({"channel": channel, "id": 0}), "chat.invalid_body"),
        (json!({"channel": channel, "id": "5"}), "protocol.invalid_message"),
        (json!({"id": 5}), "protocol.invalid_message"),
        (json!({"channel": "nope", "id": 5}), "room.unknown"),
    ] {
        let r = b.ws.request("chat.mark_read", body.clone()).await;
        assert_eq!(code(&r), expected, "for {body}");
    }
    let r =
        c.ws.request("chat.mark_read", json!({"channel": channel, "id": 5}))
            .await;
    assert_eq!(code(&r), "chat.denied", "no pointers for non-members (fix)");
}

#[actix_web::test]
async fn subscribe_fetch_and_user_fetch_answer_what_the_webapp_reads() {
    let app = spawn_app().await;
    let mut a = person(&app, "a", "Ann").await;
    let b = person(&app, "b", "Ben").await;
    let mut c = person(&app, "c", "Cat").await;
    let (_far, far) = app.token_user("closed", "far", &["ticket"]).await;
    let channel = create(&mut a, &[&b.id]).await["id"].as_str().unwrap().to_string();
    ok(&a.ws.request("chat.send", text(&channel, "hi")).await);

    let r =
        a.ws.request("chat.subscribe", json!({ "channel": channel }))
            .await;
    let sub = ok(&r).clone();
    assert_eq!(sub["state"], Value::Null);
    assert_eq!(
        (sub["next_event_id"].clone(), sub["unread_pointer"].clone()),
        (json!(4), json!(3))
    );
    let members: Vec<&str> = sub["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(members.contains(&b.id.as_str()), "hidden members are listed");
    assert_eq!(
        keys(&sub["members"][0]),
        [
            "badges",
            "client_state",
            "deleted",
            "id",
            "inactive",
            "pretalx_id",
            "profile"
        ]
    );

    let r =
        a.ws.request(
            "chat.fetch",
            json!({"channel": channel, "count": 25, "before_id": 4}),
        )
        .await;
    let page = ok(&r).clone();
    assert_eq!(keys(&page), ["results", "users"]);
    let results = page["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    for (event, member) in results[..2].iter().zip([&members[0], &members[1]]) {
        assert_eq!(event["event_type"], "channel.member");
        assert_eq!(event["sender"], *member);
        assert_eq!(event["content"]["membership"], "join");
        assert_eq!(event["content"]["user"]["id"], *member);
    }
    assert_eq!(keys(&page["users"]), {
        let mut k = vec![a.id.clone(), b.id.clone()];
        k.sort();
        k
    });
    assert_eq!(page["users"][&b.id]["profile"]["display_name"], "Ben");

    let unknown = "00000000-0000-4000-8000-000000000000";
    let far_id = far["user.config"]["id"].as_str().unwrap();
    let r =
        a.ws.request("user.fetch", json!({"ids": [b.id, unknown, far_id, c.id]}))
            .await;
    let users = ok(&r).clone();
    assert_eq!(keys(&users), {
        let mut k = vec![b.id.clone(), c.id.clone()];
        k.sort();
        k
    });
    assert_eq!(users[&c.id]["profile"]["display_name"], "Cat");
    let mut many: Vec<String> = (0..100).map(|_| unknown.to_string()).collect();
    many.push(b.id.clone());
    let r = a.ws.request("user.fetch", json!({ "ids": many })).await;
    assert_eq!(ok(&r), &json!({}), "only the first 100 ids are looked at");
    let r = a.ws.request("user.fetch", json!({"ids": [1]})).await;
    assert_eq!(code(&r), "protocol.invalid_message");

    // Errors of subscribe; unsubscribe needs no membership.
    for (body, expected) in [
        (json!({"channel": "nope"}), "room.unknown"),
        (json!({ "channel": channel }), "chat.denied"),
        (json!({}), "protocol.invalid_message"),
    ] {
        let r = c.ws.request("chat.subscribe", body.clone()).await;
        assert_eq!(code(&r), expected, "for {body}");
    }
    let r =
        c.ws.request("chat.unsubscribe", json!({ "channel": channel }))
            .await;
    assert_eq!(ok(&r), &json!({}));
    let r = c.ws.request("chat.unsubscribe", json!({"channel": "nope"})).await;
    assert_eq!(code(&r), "room.unknown");
}

#[actix_web::test]
async fn edits_and_deletes_are_refused_and_nothing_is_stored() {
    let app = spawn_app().await;
    let mut a = person(&app, "a", "Ann").await;
    let mut b = person(&app, "b", "Ben").await;
    let channel = create(&mut a, &[&b.id]).await["id"].as_str().unwrap().to_string();
    let sent = ok(&a.ws.request("chat.send", text(&channel, "typo")).await)["event"]["event_id"].clone();
    for content in [
        json!({"type": "text", "body": "fixed"}),
        json!({"type": "deleted"}),
    ] {
        let r = a
            .ws
            .request(
                "chat.send",
                json!({"channel": channel, "event_type": "channel.message", "replaces": sent, "content": content}),
            )
            .await;
        assert_eq!(code(&r), "chat.unsupported_content_type");
    }
    let r =
        a.ws.request("chat.fetch", json!({"channel": channel, "count": 25}))
            .await;
    assert_eq!(ok(&r)["results"].as_array().unwrap().len(), 3);
    let got = frames(&mut b.ws, 4).await;
    assert_eq!(got.last().unwrap()[0], "chat.notification");
    b.ws.expect_silence(SILENCE).await;
}

#[actix_web::test]
async fn online_status_follows_open_sockets() {
    let app = spawn_app().await;
    let mut a = person(&app, "a", "Ann").await;
    let b = person(&app, "b", "Ben").await;
    let (_far, far) = app.token_user("closed", "far", &["ticket"]).await;
    let far_id = far["user.config"]["id"].as_str().unwrap().to_string();
    let unknown = "00000000-0000-4000-8000-000000000000";
    let r =
        a.ws.request(
            "user.online_status",
            json!({"ids": [b.id, unknown, b.id, far_id]}),
        )
        .await;
    assert_eq!(
        ok(&r),
        &json!({ b.id.clone(): true, unknown: false, far_id.clone(): false })
    );
    let b_id = b.id.clone();
    drop(b);
    // A closed socket stops counting once its close is seen.
    let mut online = true;
    for _ in 0..100 {
        let r =
            a.ws.request("user.online_status", json!({"ids": [b_id, a.id]}))
                .await;
        assert_eq!(ok(&r)[&a.id], true);
        online = ok(&r)[&b_id].as_bool().unwrap();
        if !online {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!online, "a user without sockets is offline");
    let many: Vec<String> = (0..101).map(|i| i.to_string()).collect();
    let r = a.ws.request("user.online_status", json!({ "ids": many })).await;
    assert_eq!(code(&r), "protocol.invalid_message");
    let r = a.ws.request("user.online_status", json!({"ids": "x"})).await;
    assert_eq!(code(&r), "protocol.invalid_message");
}

#[actix_web::test]
async fn room_enter_needs_a_viewable_room_and_leave_a_known_one() {
    let app = spawn_app().await;
    let (mut ws, _) = app.client("sample", "visitor").await;
    for room in ["stage", "lounge"] {
        let r = ws.request("room.enter", json!({ "room": room })).await;
        assert_eq!(r[2], json!({}), "{room}: {r}");
        let r = ws.request("room.leave", json!({ "room": room })).await;
        assert_eq!(r[2], json!({}));
    }
    let r = ws.request("room.enter", json!({"room": "secret-room"})).await;
    assert_eq!(code(&r), "protocol.denied");
    let r = ws.request("room.leave", json!({"room": "secret-room"})).await;
    assert_eq!(ok(&r), &json!({}), "leaving needs no permission");
    for action in ["room.enter", "room.leave"] {
        let r = ws.request(action, json!({"room": "nowhere"})).await;
        assert_eq!(code(&r), "room.unknown");
        let r = ws.request(action, json!({"room": 7})).await;
        assert_eq!(code(&r), "protocol.invalid_message");
    }
}

#[actix_web::test]
async fn a_call_made_while_offline_is_waiting_after_a_restart() {
    let app = spawn_app().await;
    let mut b = person(&app, "b", "Ben").await;
    let a = person(&app, "a", "Ann").await;
    let c = person(&app, "c", "Cat").await;
    let (a_id, c_id) = (a.id.clone(), c.id.clone());
    drop((a, c));
    // B opens a conversation with A (hidden for A) and one with C (stays hidden).
    let channel = create(&mut b, &[&a_id]).await["id"].as_str().unwrap().to_string();
    let quiet = create(&mut b, &[&c_id]).await["id"].clone();
    let r = b.ws.request("chat.send", call(&channel)).await;
    let event = ok(&r)["event"].clone();
    let call_id = event["content"]["body"]["id"].as_str().unwrap().to_string();
    ok(&b
        .ws
        .request("chat.mark_read", json!({"channel": channel, "id": 3}))
        .await);
    drop(b);

    let app = app.restart().await;
    let (mut a, body) = app.client("sample", "a").await;
    assert_eq!(body["chat.notification_counts"], json!({ channel.clone(): 1 }));
    assert_eq!(body["chat.read_pointers"], json!({}));
    let listed = body["chat.channels"].as_array().unwrap();
    assert_eq!(channel_ids(&body["chat.channels"]), [channel.as_str()]);
    assert_eq!(listed[0]["unread_pointer"], event["event_id"]);
    let (_b, body) = app.client("sample", "b").await;
    assert_eq!(body["chat.read_pointers"], json!({ channel.clone(): 3 }));
    assert!(channel_ids(&body["chat.channels"]).contains(&quiet.as_str().unwrap().to_string()));
    let (_c, body) = app.client("sample", "c").await;
    assert_eq!(
        body["chat.channels"],
        json!([]),
        "hidden flags survive the restart"
    );

    let r = a.request("chat.subscribe", json!({ "channel": channel })).await;
    assert_eq!(ok(&r)["unread_pointer"], event["event_id"]);
    let r = a
        .request(
            "chat.fetch",
            json!({"channel": channel, "count": 25, "before_id": ok(&r)["next_event_id"]}),
        )
        .await;
    assert_eq!(ok(&r)["results"].as_array().unwrap().last().unwrap(), &event);
    a.set_name("Ann").await;
    let r = a.request("bbb.call_url", json!({ "call": call_id })).await;
    let url = ok(&r)["url"].as_str().unwrap().to_string();
    assert_eq!(http_get(&url).await.0, 200);
    ok(&a
        .request("chat.mark_read", json!({"channel": channel, "id": 4}))
        .await);
    let app = app.restart().await;
    let (_a, body) = app.client("sample", "a").await;
    assert_eq!(
        body["chat.read_pointers"],
        json!({ channel.clone(): event["event_id"] }),
        "capped at the channel's end"
    );
    assert_eq!(body["chat.notification_counts"], json!({}));
}

#[actix_web::test]
async fn the_login_lists_the_100_most_recently_active_conversations_with_cut_profiles() {
    let app = spawn_app_with(|s| s.replace("requests_per_second = 50", "requests_per_second = 0")).await;
    let mut a = person(&app, "a", "Ann").await;
    let r = a
        .ws
        .request(
            "user.update",
            json!({"profile": {"display_name": "Ann", "bio": "x".repeat(2000), "avatar": {"url": "https://example.org/a.png"}}}),
        )
        .await;
    ok(&r);
    let mut channels = Vec::new();
    for i in 0..101 {
        let (_ws, body) = app.client("sample", &format!("u{i}")).await;
        let id = body["user.config"]["id"].as_str().unwrap().to_string();
        channels.push(create(&mut a, &[&id]).await["id"].as_str().unwrap().to_string());
    }
    // The oldest becomes the most recent; the second oldest drops off the list.
    ok(&a.ws.request("chat.send", text(&channels[0], "bump")).await);
    let (_a2, body) = app.client("sample", "a").await;
    let listed = channel_ids(&body["chat.channels"]);
    assert_eq!(listed.len(), 100);
    assert!(listed.contains(&channels[0]));
    assert!(!listed.contains(&channels[1]));
    let me = body["chat.channels"][0]["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == a.id)
        .unwrap()
        .clone();
    assert_eq!(
        me["profile"],
        json!({"display_name": "Ann", "avatar": {"url": "https://example.org/a.png"}})
    );
}
