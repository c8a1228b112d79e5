#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::*;

fn id(s: &str) -> ServerId {
    ServerId::new(s)
}

fn want(key: &str) -> Want<'_> {
    Want {
        key,
        voice_bridge: None,
        guest_policy: "ALWAYS_ACCEPT",
    }
}

const REUSE: Duration = Duration::from_secs(60);

type Table = MeetingTable<u32>;

fn all_usable(_: &ServerId) -> bool {
    true
}

/// A join placing on `on` when placement is needed.
fn join(t: &mut Table, key: &str, waiter: u32, on: &str, now: Instant) -> Decision {
    t.join(want(key), now, waiter, all_usable, |_| Some(id(on)))
}

#[test]
fn the_first_join_creates_and_later_joins_wait_for_it() {
    let mut t = Table::default();
    let now = Instant::now();
    let Decision::Create {
        on,
        record,
        save,
        placed,
    } = join(&mut t, "room/w/r", 1, "a", now)
    else {
        panic!("expected a create");
    };
    assert_eq!(on, id("a"));
    assert!(placed);
    assert_eq!(record.server, Some(id("a")));
    assert!(save, "a new record is saved first");
    assert_eq!(join(&mut t, "room/w/r", 2, "b", now), Decision::Wait);
    assert_eq!(join(&mut t, "room/w/r", 3, "b", now), Decision::Wait);
    let waiters = t.create_finished("room/w/r", true, true, REUSE, now);
    assert_eq!(waiters, vec![1, 2, 3]);
    assert!(!t.get("room/w/r").unwrap().dirty);
}

#[test]
fn a_confirmed_meeting_is_ready_until_reuse_runs_out() {
    let mut t = Table::default();
    let now = Instant::now();
    join(&mut t, "k", 1, "a", now);
    t.create_finished("k", true, true, REUSE, now);
    let Decision::Ready { server, secrets } = join(&mut t, "k", 2, "b", now) else {
        panic!("expected ready");
    };
    assert_eq!(server, id("a"));
    assert_eq!(secrets, t.get("k").unwrap().record.secrets);
    let later = now + REUSE + Duration::from_millis(1);
    let Decision::Create { on, save, placed, .. } = join(&mut t, "k", 3, "b", later) else {
        panic!("expected a create after reuse ran out");
    };
    assert_eq!(on, id("a"), "stays on its usable server");
    assert!(!placed);
    assert!(!save, "an unchanged record is not saved again");
}

#[test]
fn zero_reuse_never_skips_create() {
    let mut t = Table::default();
    let now = Instant::now();
    join(&mut t, "k", 1, "a", now);
    t.create_finished("k", true, true, Duration::ZERO, now);
    assert!(matches!(join(&mut t, "k", 2, "a", now), Decision::Create { .. }));
}

#[test]
fn a_failed_create_answers_waiters_and_the_next_join_creates_again() {
    let mut t = Table::default();
    let now = Instant::now();
    join(&mut t, "k", 1, "a", now);
    join(&mut t, "k", 2, "a", now);
    assert_eq!(t.create_finished("k", false, true, REUSE, now), vec![1, 2]);
    assert!(matches!(join(&mut t, "k", 3, "a", now), Decision::Create { .. }));
}

#[test]
fn a_store_failure_leaves_the_record_dirty_so_it_is_saved_again() {
    let mut t = Table::default();
    let now = Instant::now();
    join(&mut t, "k", 1, "a", now);
    t.create_finished("k", false, false, REUSE, now);
    assert!(t.get("k").unwrap().dirty);
    let Decision::Create { save, .. } = join(&mut t, "k", 2, "a", now) else {
        panic!("expected a create");
    };
    assert!(save);
}

#[test]
fn a_meeting_on_an_unusable_server_is_moved_and_keeps_its_identity() {
    let mut t = Table::default();
    let now = Instant::now();
    join(&mut t, "k", 1, "a", now);
    t.create_finished("k", true, true, REUSE, now);
    let before = t.get("k").unwrap().record.secrets.clone();
    let mut was = None;
    let d = t.join(
        want("k"),
        now,
        2,
        |s| s != &id("a"),
        |current| {
            was = current.cloned();
            Some(id("b"))
        },
    );
    let Decision::Create {
        on,
        record,
        save,
        placed,
    } = d
    else {
        panic!("expected a create on the new server");
    };
    assert_eq!(was, Some(id("a")), "placement is told where the meeting was");
    assert_eq!((on, placed), (id("b"), true));
    assert_eq!(record.secrets, before);
    assert!(save);
}

#[test]
fn no_usable_server_is_reported() {
    let mut t = Table::default();
    let d = t.join(want("k"), Instant::now(), 1, |_| false, |_| None);
    assert_eq!(d, Decision::NoServer);
    assert!(t.get("k").is_some_and(|m| !m.creating()));
}

#[test]
fn changed_voice_bridge_or_guest_policy_is_saved() {
    let mut t = Table::default();
    let now = Instant::now();
    join(&mut t, "k", 1, "a", now);
    t.create_finished("k", true, true, Duration::ZERO, now);
    let changed = Want {
        key: "k",
        voice_bridge: Some("12345".into()),
        guest_policy: "ASK_MODERATOR",
    };
    let Decision::Create { record, save, .. } = t.join(changed, now, 2, all_usable, |_| None) else {
        panic!("expected a create");
    };
    assert_eq!(record.voice_bridge.as_deref(), Some("12345"));
    assert_eq!(record.guest_policy, "ASK_MODERATOR");
    assert!(save);
}

#[test]
fn polls_confirm_listed_meetings_with_participants_and_drop_unlisted_ones() {
    let mut t = Table::default();
    let now = Instant::now();
    join(&mut t, "k", 1, "a", now);
    t.create_finished("k", true, true, Duration::ZERO, now);
    let meeting_id = t.get("k").unwrap().record.secrets.meeting_id.clone();
    let listed = HashMap::from([(meeting_id.as_str(), 0u64)]);
    t.polled(&id("a"), &listed, REUSE, now);
    assert_eq!(
        t.get("k").unwrap().state,
        MeetingState::Unconfirmed,
        "no participants"
    );
    let listed = HashMap::from([(meeting_id.as_str(), 3u64)]);
    t.polled(&id("b"), &listed, REUSE, now);
    assert_eq!(
        t.get("k").unwrap().state,
        MeetingState::Unconfirmed,
        "other server"
    );
    t.polled(&id("a"), &listed, REUSE, now);
    assert_eq!(
        t.get("k").unwrap().state,
        MeetingState::ConfirmedUntil(now + REUSE)
    );
    t.polled(&id("a"), &HashMap::new(), REUSE, now);
    assert_eq!(t.get("k").unwrap().state, MeetingState::Unconfirmed);
}

#[test]
fn polls_leave_a_meeting_with_a_create_in_flight_alone() {
    let mut t = Table::default();
    let now = Instant::now();
    join(&mut t, "k", 1, "a", now);
    let meeting_id = t.get("k").unwrap().record.secrets.meeting_id.clone();
    let listed = HashMap::from([(meeting_id.as_str(), 3u64)]);
    t.polled(&id("a"), &listed, REUSE, now);
    assert_eq!(t.get("k").unwrap().state, MeetingState::Unconfirmed);
}

#[test]
fn an_end_callback_of_the_current_incarnation_ends_it_and_starts_a_new_one() {
    let mut t = Table::default();
    let now = Instant::now();
    join(&mut t, "k", 1, "a", now);
    t.create_finished("k", true, true, REUSE, now);
    let record = t.get("k").unwrap().record.clone();
    assert!(!record.incarnation.is_empty());
    // Not verified: forged, nothing changes.
    assert_eq!(
        t.ended(&record.secrets.meeting_id, None),
        (Verdict::Forged, Some("k".into()))
    );
    assert!(matches!(
        t.get("k").unwrap().state,
        MeetingState::ConfirmedUntil(_)
    ));
    // Verified, but another incarnation or an unknown meeting: stale, nothing changes.
    assert_eq!(t.ended(&record.secrets.meeting_id, Some("old")).0, Verdict::Stale);
    assert_eq!(
        t.ended("unknown", Some(&record.incarnation)),
        (Verdict::Stale, None)
    );
    assert!(matches!(
        t.get("k").unwrap().state,
        MeetingState::ConfirmedUntil(_)
    ));
    // The current incarnation: ended, and the record moves on to a new incarnation.
    assert_eq!(
        t.ended(&record.secrets.meeting_id, Some(&record.incarnation)),
        (Verdict::Ended, Some("k".into()))
    );
    let after = t.get("k").unwrap();
    assert_eq!(after.state, MeetingState::Unconfirmed);
    assert!(after.dirty);
    assert_ne!(after.record.incarnation, record.incarnation);
    assert_eq!(after.record.secrets, record.secrets);
    // Its retry is stale now.
    assert_eq!(
        t.ended(&record.secrets.meeting_id, Some(&record.incarnation)).0,
        Verdict::Stale
    );
}

#[test]
fn moving_or_placing_elsewhere_starts_a_new_incarnation() {
    let mut t = Table::default();
    let now = Instant::now();
    join(&mut t, "k", 1, "a", now);
    t.create_finished("k", true, true, REUSE, now);
    let first = t.get("k").unwrap().record.incarnation.clone();
    t.move_to("k", "ALWAYS_ACCEPT", &id("b"));
    let second = t.get("k").unwrap().record.incarnation.clone();
    assert_ne!(first, second);
    // Placed again because "b" became unusable.
    t.join(want("k"), now, 2, |s| s != &id("b"), |_| Some(id("c")));
    assert_ne!(t.get("k").unwrap().record.incarnation, second);
}

#[test]
fn a_call_is_placed_once() {
    let mut t = Table::default();
    let record = t.place_call("call/c", "ALWAYS_ACCEPT", || Some(id("a"))).unwrap();
    assert_eq!(record.server, Some(id("a")));
    assert!(t
        .place_call("call/c", "ALWAYS_ACCEPT", || Some(id("b")))
        .is_none());
    assert!(t.get("call/c").unwrap().dirty);
    t.saved("call/c");
    assert!(!t.get("call/c").unwrap().dirty);
}

#[test]
fn a_move_rehomes_the_meeting_and_drops_its_confirmation() {
    let mut t = Table::default();
    let now = Instant::now();
    join(&mut t, "k", 1, "a", now);
    t.create_finished("k", true, true, REUSE, now);
    let (previous, record) = t.move_to("k", "ALWAYS_ACCEPT", &id("b"));
    assert_eq!(previous, Some(id("a")));
    assert_eq!(record.server, Some(id("b")));
    let meeting = t.get("k").unwrap();
    assert_eq!(meeting.state, MeetingState::Unconfirmed);
    assert!(meeting.dirty);
    let (previous, record) = t.move_to("new", "ASK_MODERATOR", &id("b"));
    assert_eq!(previous, None);
    assert_eq!(record.guest_policy, "ASK_MODERATOR");
}

#[test]
fn records_from_the_store_start_unconfirmed_and_clean() {
    let mut record = new_record("k", "ALWAYS_ACCEPT");
    record.server = Some(id("a"));
    let t = Table::from_records(vec![record.clone()]);
    let meeting = t.get("k").unwrap();
    assert_eq!(meeting.record, record);
    assert!(!meeting.dirty);
    assert_eq!(meeting.state, MeetingState::Unconfirmed);
}

#[test]
fn new_records_have_distinct_32_character_secrets() {
    let r = new_record("k", "ALWAYS_ACCEPT");
    for s in [
        &r.secrets.meeting_id,
        &r.secrets.attendee_pw,
        &r.secrets.moderator_pw,
    ] {
        assert_eq!(s.len(), 32);
        assert!(s.chars().all(|c| c.is_ascii_alphanumeric()));
    }
    assert_ne!(r.secrets.meeting_id, r.secrets.moderator_pw);
}
