#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::*;
use crate::bbb::checksum::ChecksumAlgorithm;
use crate::config::Secret;

fn config(id: &str) -> ServerConfig {
    ServerConfig {
        id: ServerId::new(id),
        url: format!("https://{id}.example/bigbluebutton/"),
        secret: Secret::new("s"),
        active: true,
        rooms_only: false,
        world_exclusive: None,
        checksum: ChecksumAlgorithm::Sha256,
        load_multiplier: 1.0,
    }
}

const HYST: Hysteresis = Hysteresis {
    unhealthy_after: 2,
    healthy_after: 3,
};

fn pool(ids: &[&str]) -> Pool {
    let configs: Vec<ServerConfig> = ids.iter().map(|i| config(i)).collect();
    Pool::new(&configs, &HashMap::new(), HYST)
}

fn id(s: &str) -> ServerId {
    ServerId::new(s)
}

fn load(meeting: &str, participants: u64) -> MeetingLoad {
    MeetingLoad {
        meeting_id: meeting.into(),
        running: true,
        participant_count: participants,
        ..MeetingLoad::default()
    }
}

#[test]
fn overrides_from_the_store_win_over_the_settings() {
    let overrides = HashMap::from([(id("a"), false)]);
    let pool = Pool::new(&[config("a"), config("b")], &overrides, HYST);
    assert!(!pool.get(&id("a")).unwrap().active());
    assert!(pool.get(&id("b")).unwrap().active());
    assert!(!pool.usable(&id("a"), &WorldId::new("w"), Purpose::Room));
}

#[test]
fn failures_make_a_server_unhealthy_only_after_the_streak() {
    let mut pool = pool(&["a"]);
    assert_eq!(pool.record_failure(&id("a"), "x".into()), None);
    assert!(pool.get(&id("a")).unwrap().health.healthy);
    assert_eq!(
        pool.record_failure(&id("a"), "y".into()),
        Some(HealthChange::BecameUnhealthy { failures: 2 })
    );
    let server = pool.get(&id("a")).unwrap();
    assert!(!server.health.healthy);
    assert_eq!(server.status().last_error.as_deref(), Some("y"));
    assert_eq!(pool.record_failure(&id("a"), "z".into()), None, "reported once");
}

#[test]
fn a_call_success_breaks_the_failure_streak() {
    let mut pool = pool(&["a"]);
    pool.record_failure(&id("a"), "x".into());
    pool.record_call_success(&id("a"));
    assert_eq!(pool.record_failure(&id("a"), "x".into()), None);
    assert!(pool.get(&id("a")).unwrap().health.healthy);
}

#[test]
fn healthy_again_only_after_enough_good_polls() {
    let mut pool = pool(&["a"]);
    pool.record_failure(&id("a"), "x".into());
    pool.record_failure(&id("a"), "x".into());
    let now = Utc::now();
    for _ in 0..2 {
        pool.start_polls();
        assert_eq!(pool.poll_succeeded(&id("a"), 0, &[], now), None);
        assert!(!pool.get(&id("a")).unwrap().health.healthy);
    }
    pool.start_polls();
    assert_eq!(
        pool.poll_succeeded(&id("a"), 0, &[], now),
        Some(HealthChange::BecameHealthy)
    );
    let server = pool.get(&id("a")).unwrap();
    assert!(server.health.healthy);
    assert_eq!(server.health.last_error, None);
}

#[test]
fn a_failed_poll_between_good_ones_restarts_the_healthy_streak() {
    let mut pool = pool(&["a"]);
    pool.record_failure(&id("a"), "x".into());
    pool.record_failure(&id("a"), "x".into());
    let now = Utc::now();
    pool.poll_succeeded(&id("a"), 0, &[], now);
    pool.poll_succeeded(&id("a"), 0, &[], now);
    pool.poll_failed(&id("a"), "down".into());
    pool.poll_succeeded(&id("a"), 0, &[], now);
    pool.poll_succeeded(&id("a"), 0, &[], now);
    assert!(!pool.get(&id("a")).unwrap().health.healthy);
    assert_eq!(
        pool.poll_succeeded(&id("a"), 0, &[], now),
        Some(HealthChange::BecameHealthy)
    );
}

#[test]
fn placement_charges_count_until_the_poll_that_sees_them() {
    let mut pool = pool(&["a"]);
    pool.charge(&id("a"));
    let jobs = pool.start_polls();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].placed_before, 1);
    pool.charge(&id("a"));
    let server = pool.get(&id("a")).unwrap();
    assert_eq!(server.meetings(), 2);
    assert_eq!(server.cost(), 2.0 * strategy::PLACEMENT_CHARGE);
    pool.poll_succeeded(&id("a"), 1, &[load("m1", 4)], Utc::now());
    let server = pool.get(&id("a")).unwrap();
    assert_eq!(
        server.load.placed_since_poll, 1,
        "the charge after the poll started stays"
    );
    assert_eq!(server.meetings(), 2);
    assert_eq!(server.load.polled_participants, 4);
    assert_eq!(
        server.cost(),
        strategy::meeting_cost(4, 0, 0) + strategy::PLACEMENT_CHARGE
    );
}

#[test]
fn at_most_one_poll_per_server_is_in_flight() {
    let mut pool = pool(&["a", "b"]);
    assert_eq!(pool.start_polls().len(), 2);
    assert!(pool.start_polls().is_empty());
    pool.poll_failed(&id("a"), "x".into());
    let again = pool.start_polls();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].server, id("a"));
}

#[test]
fn choose_skips_unhealthy_and_prefers_cheaper_servers() {
    let mut pool = pool(&["a", "b"]);
    let w = WorldId::new("w");
    let mut rng = rand::thread_rng();
    pool.charge(&id("a"));
    assert_eq!(pool.choose(&w, None, Purpose::Room, &mut rng), Some(id("b")));
    pool.record_failure(&id("b"), "x".into());
    pool.record_failure(&id("b"), "x".into());
    assert_eq!(pool.choose(&w, None, Purpose::Room, &mut rng), Some(id("a")));
    assert_eq!(
        pool.choose(&w, Some(&id("b")), Purpose::Room, &mut rng),
        Some(id("a"))
    );
}

#[test]
fn prefer_resolves_ids_and_urls() {
    let pool = pool(&["a", "b"]);
    assert_eq!(pool.resolve_prefer(Some("b")), Some(id("b")));
    assert_eq!(
        pool.resolve_prefer(Some("https://a.example/bigbluebutton")),
        Some(id("a"))
    );
    assert_eq!(pool.resolve_prefer(Some("nope")), None);
    assert_eq!(pool.resolve_prefer(None), None);
}

#[test]
fn replace_keeps_runtime_state_and_takes_new_settings() {
    let mut pool = pool(&["a", "b"]);
    pool.set_override(&id("a"), false);
    pool.record_failure(&id("a"), "x".into());
    pool.charge(&id("a"));
    let mut a = config("a");
    a.rooms_only = true;
    a.url = "https://new.example/".into();
    let added = pool.replace(&[a, config("c")], HYST);
    assert!(added);
    let ids: Vec<&str> = pool.servers().iter().map(|s| s.id().as_str()).collect();
    assert_eq!(ids, ["a", "c"]);
    let a = pool.get(&id("a")).unwrap();
    assert_eq!(a.override_active, Some(false));
    assert_eq!(a.health.fail_streak, 1);
    assert_eq!(a.load.placed_since_poll, 1);
    assert!(a.spec.rooms_only);
    assert_eq!(a.status().url, "https://new.example/");
    assert!(!pool.replace(&[config("a")], HYST), "nothing new");
}

#[test]
fn set_override_on_an_unknown_server_is_refused() {
    let mut pool = pool(&["a"]);
    assert!(!pool.set_override(&id("x"), true));
    assert!(pool.set_override(&id("a"), false));
    assert!(!pool.get(&id("a")).unwrap().status().active);
}

#[test]
fn recordings_are_asked_from_active_servers_the_world_may_use() {
    let mut other = config("other");
    other.world_exclusive = Some(WorldId::new("v"));
    let mut mine = config("mine");
    mine.world_exclusive = Some(WorldId::new("w"));
    let mut pool = Pool::new(&[config("a"), config("b"), other, mine], &HashMap::new(), HYST);
    pool.set_override(&id("b"), false);
    let ids: Vec<String> = pool
        .recording_endpoints(&WorldId::new("w"))
        .iter()
        .map(|e| e.id.to_string())
        .collect();
    assert_eq!(ids, ["a", "mine"]);
}

#[test]
fn a_stored_row_restores_health_load_and_charges_in_another_pool() {
    let mut a = pool(&["s1", "s2"]);
    a.poll_succeeded(&id("s1"), 0, &[load("m1", 4), load("m2", 2)], Utc::now());
    a.set_version(&id("s1"), "2.7.3".into());
    a.charge(&id("s1"));
    a.record_failure(&id("s1"), "HTTP 500".into());
    a.record_failure(&id("s1"), "HTTP 500".into());
    let row = a.row(&id("s1")).unwrap();
    assert!(!row.healthy);
    assert_eq!(
        (row.fail_streak, row.placed_since_poll, row.polled_meetings),
        (2, 1, 2)
    );
    // A later instance starts with defaults and takes the row.
    let mut b = pool(&["s1", "s2"]);
    assert!(b.restore(&row));
    b.set_version(&id("s1"), row.version.clone().unwrap());
    let (sa, sb) = (a.get(&id("s1")).unwrap(), b.get(&id("s1")).unwrap());
    assert_eq!(sa.status(), sb.status());
    assert_eq!(sa.cost(), sb.cost());
    assert_eq!(b.row(&id("s1")).unwrap(), row);
    // One more good poll is not enough to be healthy again there either (healthy_after = 3).
    b.poll_succeeded(&id("s1"), 1, &[], Utc::now());
    assert!(!b.get(&id("s1")).unwrap().health.healthy);
    // A row for a server this instance does not have changes nothing.
    assert!(!b.restore(&ServerRow {
        server: id("gone"),
        ..row
    }));
}
