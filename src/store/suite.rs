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
                    let (_guard, store) = $make();
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
        );
    };
}

fn sqlite() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("nested/dir/test.sqlite3")).unwrap();
    (dir, store)
}

all_cases!(sqlite_backend, super::sqlite);

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
    };
    store.save_meeting(record.clone()).await.unwrap();
    let moved = MeetingRecord {
        server: Some(ServerId::new("s2")),
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

#[test]
fn sqlite_migrations_reach_the_latest_version_and_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/test.sqlite3");
    drop(open(&path).unwrap());
    let conn = open(&path).unwrap();
    let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(v as usize, schema::latest_version());
}
