//! The store's test suite, written against [`Store`] only so every backend runs the same
//! cases: a backend adds one `backend_suite!` line with a function returning
//! `(guard, Store)` (the guard keeps temporary resources alive).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::*;

macro_rules! backend_suite {
    ($backend:ident, $make:path; $($case:ident),* $(,)?) => {
        mod $backend {
            $(
                #[actix_rt::test]
                async fn $case() {
                    let (_guard, store) = $make().await;
                    super::$case(store).await;
                }
            )*
        }
    };
}

macro_rules! all_cases {
    ($backend:ident, $make:path) => {
        backend_suite!($backend, $make;
            login_creates_once_and_replaces_traits_only_when_given,
            client_ids_and_token_uids_are_separate_per_world,
            moderation_round_trips,
            meetings_and_overrides_round_trip,
            ping_answers,
            new_channels_have_member_events_and_stay_hidden_from_the_others_until_a_message,
            mark_read_moves_by_the_rule_and_deletes_notifications_up_to_the_id,
            the_list_holds_the_most_recently_active_visible_channels,
            search_candidates_login_times_and_lookups,
            chat_channels_events_and_calls_round_trip,
            concurrent_appends_get_distinct_ids,
        );
    };
}

async fn sqlite() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("nested/dir/test.sqlite3")).unwrap();
    (dir, store)
}

all_cases!(sqlite_backend, super::sqlite);

/// A fresh database on the test binary's shared PostgreSQL server.
async fn postgres() -> ((), Store) {
    let server = crate::pgserver::shared().unwrap();
    let url = server.fresh_database().unwrap();
    ((), Store::open_postgres(&url).await.unwrap())
}

all_cases!(postgres_backend, super::postgres);

async fn login_creates_once_and_replaces_traits_only_when_given(store: Store) {
    let w = WorldId::new("w");
    let key = LoginKey::Token("u1".into());
    let profile = serde_json::json!({"display_name": "Ann"});
    let traits = vec!["a".to_string()];
    let none = store
        .login_user(
            w.clone(),
            key.clone(),
            Some(traits.clone()),
            Some(profile.clone()),
            false,
        )
        .await
        .unwrap();
    assert!(none.is_none());
    let created = store
        .login_user(
            w.clone(),
            key.clone(),
            Some(traits.clone()),
            Some(profile.clone()),
            true,
        )
        .await
        .unwrap()
        .unwrap();
    let other = serde_json::json!({"display_name": "Bob"});
    let again = store
        .login_user(w.clone(), key.clone(), None, Some(other), true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(created.id, again.id);
    assert_eq!(again.traits, traits);
    assert_eq!(again.profile, profile, "profile is stored only on creation");
    let new_traits = vec!["b".to_string()];
    let third = store
        .login_user(w, key, Some(new_traits.clone()), None, true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(third.traits, new_traits);
}

async fn client_ids_and_token_uids_are_separate_per_world(store: Store) {
    let login = |world: &str, key: LoginKey| {
        let store = store.clone();
        let world = WorldId::new(world);
        async move {
            store
                .login_user(world, key, None, None, true)
                .await
                .unwrap()
                .unwrap()
        }
    };
    let a = login("w", LoginKey::Client("x".into())).await;
    let b = login("w", LoginKey::Token("x".into())).await;
    let c = login("v", LoginKey::Client("x".into())).await;
    assert_ne!(a.id, b.id);
    assert_ne!(a.id, c.id);
}

async fn moderation_round_trips(store: Store) {
    let w = WorldId::new("w");
    let u = store
        .login_user(w.clone(), LoginKey::Client("x".into()), None, None, true)
        .await
        .unwrap()
        .unwrap();
    store
        .set_moderation(w.clone(), u.id.as_str().to_string(), Moderation::Banned)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store.load_moderation().await.unwrap(),
        vec![(w.clone(), u.id.clone(), Moderation::Banned)]
    );
    assert!(store
        .set_moderation(w, "nobody".into(), Moderation::Banned)
        .await
        .unwrap()
        .is_none());
}

async fn meetings_and_overrides_round_trip(store: Store) {
    let record = MeetingRecord {
        key: "room/w/r".into(),
        secrets: MeetingSecrets {
            meeting_id: "m".into(),
            attendee_pw: "a".into(),
            moderator_pw: "p".into(),
        },
        server: Some(ServerId::new("s1")),
        voice_bridge: Some("12345".into()),
        guest_policy: "ALWAYS_ACCEPT".into(),
        incarnation: "inc1".into(),
    };
    store.save_meeting(record.clone()).await.unwrap();
    let moved = MeetingRecord {
        server: Some(ServerId::new("s2")),
        incarnation: "inc2".into(),
        ..record
    };
    store.save_meeting(moved.clone()).await.unwrap();
    assert_eq!(store.load_meetings().await.unwrap(), vec![moved]);
    store
        .save_server_override(ServerId::new("s1"), false)
        .await
        .unwrap();
    assert_eq!(
        store.load_server_overrides().await.unwrap(),
        vec![(ServerId::new("s1"), false)]
    );
}

async fn ping_answers(store: Store) {
    store.ping().await.unwrap();
}

async fn chat_channels_events_and_calls_round_trip(store: Store) {
    let w = WorldId::new("w");
    let mut ids = Vec::new();
    for name in ["a", "b", "c"] {
        let u = store
            .login_user(w.clone(), LoginKey::Token(name.into()), None, None, true)
            .await
            .unwrap()
            .unwrap();
        ids.push(u.id);
    }
    let (a, b, c) = (ids[0].clone(), ids[1].clone(), ids[2].clone());
    assert_eq!(
        store
            .direct_channel(w.clone(), vec![a.clone()], a.clone(), false, no_content)
            .await
            .unwrap()
            .map(|o| o.info),
        Err(ChatRefusal::TooFewMembers)
    );
    assert_eq!(
        store
            .direct_channel(
                w.clone(),
                vec![a.clone(), UserId::new("ghost")],
                a.clone(),
                false,
                no_content
            )
            .await
            .unwrap()
            .map(|o| o.info),
        Err(ChatRefusal::UnknownUser)
    );
    let ch = store
        .direct_channel(
            w.clone(),
            vec![a.clone(), b.clone()],
            a.clone(),
            false,
            no_content,
        )
        .await
        .unwrap()
        .unwrap()
        .info;
    let same = store
        .direct_channel(
            w.clone(),
            vec![b.clone(), a.clone(), a.clone()],
            b.clone(),
            false,
            no_content,
        )
        .await
        .unwrap()
        .unwrap()
        .info;
    assert_eq!(ch.id, same.id, "one channel per member set");
    assert_eq!(ch.members.len(), 2);
    // Two member events come first.
    assert_eq!(ch.next_event_id, 3);
    let first = store
        .append_event(
            w.clone(),
            ch.id.clone(),
            a.clone(),
            "channel.message".into(),
            NewContent::Message(serde_json::json!({"type": "text", "body": "hi"})),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.event.event_id, 3);
    assert_eq!(first.members.len(), 2);
    let call = store
        .append_event(
            w.clone(),
            ch.id.clone(),
            b.clone(),
            "channel.message".into(),
            NewContent::Call,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(call.event.event_id, 4);
    let call_id = call.call.clone().unwrap();
    let record = store.get_call(w.clone(), call_id.clone()).await.unwrap().unwrap();
    assert_eq!(record.channel, ch.id);
    let mut invited = vec![a.clone(), b.clone()];
    invited.sort();
    assert_eq!(record.invited, invited);
    assert!(store
        .get_call(WorldId::new("v"), call_id)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        store
            .append_event(
                w.clone(),
                ch.id.clone(),
                c.clone(),
                "channel.message".into(),
                NewContent::Message(serde_json::json!({})),
            )
            .await
            .unwrap(),
        Err(ChatRefusal::NotMember)
    );
    let events = store
        .fetch_events(w.clone(), ch.id.clone(), a.clone(), 10, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        events.iter().map(|e| e.event_id).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert_eq!(events[2].content["body"], "hi");
    let older = store
        .fetch_events(w.clone(), ch.id.clone(), b.clone(), 10, Some(4))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(older.len(), 3);
    assert_eq!(
        store
            .fetch_events(w.clone(), ChannelId::new("nope"), a.clone(), 10, None)
            .await
            .unwrap(),
        Err(ChatRefusal::UnknownChannel)
    );
    let listed = store.conversation_list(w.clone(), a, 100).await.unwrap();
    assert_eq!(listed.channels.len(), 1);
    assert_eq!(listed.channels[0].next_event_id, 5);
    assert!(store
        .conversation_list(w, c, 100)
        .await
        .unwrap()
        .channels
        .is_empty());
}

async fn concurrent_appends_get_distinct_ids(store: Store) {
    let w = WorldId::new("w");
    let mut ids = Vec::new();
    for name in ["a", "b"] {
        ids.push(
            store
                .login_user(w.clone(), LoginKey::Token(name.into()), None, None, true)
                .await
                .unwrap()
                .unwrap()
                .id,
        );
    }
    let ch = store
        .direct_channel(w.clone(), ids.clone(), ids[0].clone(), false, no_content)
        .await
        .unwrap()
        .unwrap()
        .info;
    let sends = (0..20).map(|i| {
        store.append_event(
            w.clone(),
            ch.id.clone(),
            ids[i % 2].clone(),
            "channel.message".into(),
            NewContent::Message(serde_json::json!({"n": i})),
        )
    });
    let mut got: Vec<i64> = futures_util::future::join_all(sends)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap().event.event_id)
        .collect();
    got.sort();
    assert_eq!(got, (3..=22).collect::<Vec<_>>(), "after the two member events");
}

fn no_content(_: &UserRecord) -> serde_json::Value {
    serde_json::json!({})
}

#[test]
fn sqlite_refuses_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite3");
    let conn = open(&path).unwrap();
    conn.pragma_update(None, "user_version", schema::latest_version() as i64 + 1)
        .unwrap();
    drop(conn);
    let e = open(&path).err().unwrap().to_string();
    assert!(e.contains("newer than this build"), "{e}");
}

#[actix_rt::test]
async fn postgres_instances_starting_together_migrate_once_and_refuse_a_newer_schema() {
    let server = crate::pgserver::shared().unwrap();
    let url = server.fresh_database().unwrap();
    let opens = (0..4).map(|_| Store::open_postgres(&url));
    for opened in futures_util::future::join_all(opens).await {
        opened.unwrap();
    }
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    actix_rt::spawn(conn);
    let versions: Vec<i64> = client
        .query("SELECT version FROM schema_version ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let expected: Vec<i64> = (1..=pg_schema::latest_version() as i64).collect();
    assert_eq!(versions, expected, "every migration applied exactly once");
    client
        .execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&(pg_schema::latest_version() as i64 + 1)],
        )
        .await
        .unwrap();
    let e = Store::open_postgres(&url).await.err().unwrap().to_string();
    assert!(e.contains("newer than this build"), "{e}");
}

#[test]
fn sqlite_migrations_reach_the_latest_version_and_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/test.sqlite3");
    drop(open(&path).unwrap());
    let conn = open(&path).unwrap();
    let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(v as usize, schema::latest_version());
}

// ---- conversations (SPEC 4.6) ----------------------------------------------------------------

async fn three_users(store: &Store) -> (WorldId, UserId, UserId, UserId) {
    let w = WorldId::new("w");
    let mut ids = Vec::new();
    for (key, name) in [("a", "Ann"), ("b", "Ben"), ("c", "")] {
        let profile = serde_json::json!({ "display_name": name });
        let user = store
            .login_user(w.clone(), LoginKey::Client(key.into()), None, Some(profile), true)
            .await
            .unwrap()
            .unwrap();
        ids.push(user.id);
    }
    let c = ids.pop().unwrap();
    let b = ids.pop().unwrap();
    let a = ids.pop().unwrap();
    (w, a, b, c)
}

fn member_content(u: &UserRecord) -> Value {
    serde_json::json!({ "id": u.id })
}

fn max_rule(old: Option<i64>, requested: i64, highest: i64) -> i64 {
    old.unwrap_or(0).max(requested.min(highest))
}

async fn channel(
    store: &Store,
    w: &WorldId,
    caller: &UserId,
    other: &UserId,
    hide: bool,
) -> DirectChannelOutcome {
    store
        .direct_channel(
            w.clone(),
            vec![other.clone(), caller.clone()],
            caller.clone(),
            hide,
            member_content,
        )
        .await
        .unwrap()
        .unwrap()
}

async fn message(store: &Store, w: &WorldId, channel: &ChannelId, from: &UserId) -> Appended {
    store
        .append_event(
            w.clone(),
            channel.clone(),
            from.clone(),
            "channel.message".into(),
            NewContent::Message(serde_json::json!({"type": "text", "body": "x"})),
        )
        .await
        .unwrap()
        .unwrap()
}

async fn listed(store: &Store, w: &WorldId, user: &UserId, limit: usize) -> Vec<ChannelId> {
    store
        .conversation_list(w.clone(), user.clone(), limit)
        .await
        .unwrap()
        .channels
        .into_iter()
        .map(|c| c.id)
        .collect()
}

async fn new_channels_have_member_events_and_stay_hidden_from_the_others_until_a_message(store: Store) {
    let (w, a, b, _) = three_users(&store).await;
    let made = channel(&store, &w, &a, &b, true).await;
    assert!(made.created);
    let c = made.info.id.clone();
    assert_eq!((made.info.next_event_id, made.info.unread_pointer), (3, 0));
    let events = store
        .fetch_events(w.clone(), c.clone(), a.clone(), 10, None)
        .await
        .unwrap()
        .unwrap();
    assert!(events.iter().all(|e| e.event_type == MEMBER_EVENT));
    let senders: Vec<&UserId> = events.iter().map(|e| &e.sender).collect();
    let members: Vec<&UserId> = made.info.members.iter().map(|m| &m.id).collect();
    assert_eq!(senders, members, "one member event per member, in member order");
    assert_eq!(listed(&store, &w, &a, 100).await, vec![c.clone()]);
    assert!(listed(&store, &w, &b, 100).await.is_empty());

    let appended = message(&store, &w, &c, &a).await;
    assert_eq!(appended.unhidden, vec![b.clone()]);
    assert_eq!(appended.recipients, vec![(b.clone(), None)]);
    let seen = store.conversation_list(w.clone(), b.clone(), 100).await.unwrap();
    assert_eq!(seen.channels[0].unread_pointer, 3);
    assert_eq!(seen.counts.get(&c), Some(&1));
}

async fn mark_read_moves_by_the_rule_and_deletes_notifications_up_to_the_id(store: Store) {
    let (w, a, b, c) = three_users(&store).await;
    let ch = channel(&store, &w, &a, &b, false).await.info.id;
    for _ in 0..3 {
        message(&store, &w, &ch, &a).await; // events 3, 4, 5
    }
    let mark = |user: &UserId, channel: &ChannelId, id: i64| {
        store.mark_read(w.clone(), channel.clone(), user.clone(), id, max_rule)
    };
    mark(&b, &ch, 4).await.unwrap().unwrap();
    let l = store
        .pointers_and_counts(w.clone(), b.clone(), 100)
        .await
        .unwrap();
    assert!(l.channels.is_empty());
    assert_eq!((l.pointers.get(&ch), l.counts.get(&ch)), (Some(&4), Some(&1)));
    mark(&b, &ch, 99).await.unwrap().unwrap();
    let l = store
        .pointers_and_counts(w.clone(), b.clone(), 100)
        .await
        .unwrap();
    assert_eq!((l.pointers.get(&ch), l.counts.get(&ch)), (Some(&5), None));
    assert_eq!(mark(&c, &ch, 1).await.unwrap(), Err(ChatRefusal::NotMember));
    assert_eq!(
        mark(&b, &ChannelId::new("nope"), 1).await.unwrap(),
        Err(ChatRefusal::UnknownChannel)
    );
}

async fn the_list_holds_the_most_recently_active_visible_channels(store: Store) {
    let (w, a, b, c) = three_users(&store).await;
    let ab = channel(&store, &w, &a, &b, false).await.info.id;
    let ac = channel(&store, &w, &a, &c, false).await.info.id;
    std::thread::sleep(std::time::Duration::from_millis(5));
    message(&store, &w, &ab, &b).await;
    assert_eq!(listed(&store, &w, &a, 100).await, vec![ab.clone(), ac.clone()]);
    assert_eq!(listed(&store, &w, &a, 1).await, vec![ab.clone()]);
    store
        .hide_channel(w.clone(), ab.clone(), a.clone())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(listed(&store, &w, &a, 100).await, vec![ac.clone()]);
    let again = channel(&store, &w, &a, &b, true).await;
    assert!(!again.created && again.caller_was_hidden);
    assert_eq!(listed(&store, &w, &a, 100).await.len(), 2);
    assert_eq!(
        store
            .hide_channel(w.clone(), ab.clone(), UserId::new("stranger"))
            .await
            .unwrap(),
        Err(ChatRefusal::NotMember)
    );
}

async fn search_candidates_login_times_and_lookups(store: Store) {
    let (w, a, b, c) = three_users(&store).await;
    store
        .set_moderation(w.clone(), b.to_string(), Moderation::Banned)
        .await
        .unwrap();
    let names: Vec<String> = store
        .searchable_users(w.clone())
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.display_name)
        .collect();
    assert_eq!(names, ["Ann"], "banned and nameless users are not searchable");
    store
        .login_conversations(w.clone(), a.clone(), 1234, 100)
        .await
        .unwrap();
    let ann = store.get_user(w.clone(), a.clone()).await.unwrap().unwrap();
    assert_eq!(ann.last_login_ms, Some(1234));
    let found = store
        .users_by_ids(w.clone(), vec![c.clone(), UserId::new("nobody"), a.clone()])
        .await
        .unwrap();
    let ids: Vec<UserId> = found.into_iter().map(|u| u.id).collect();
    assert_eq!(ids, vec![c.clone(), a.clone()]);
    let ch = channel(&store, &w, &a, &c, true).await.info.id;
    assert!(store.channel_exists(w.clone(), ch.clone()).await.unwrap());
    assert!(!store
        .channel_exists(WorldId::new("other"), ch.clone())
        .await
        .unwrap());
    let sub = store
        .subscribe_channel(w.clone(), ch.clone(), c.clone())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sub.members.len(), 2, "hidden members are members");
    assert_eq!(
        store.subscribe_channel(w, ch, b).await.unwrap(),
        Err(ChatRefusal::NotMember)
    );
}
