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

type Table = MeetingTable<u32>;

fn all_usable(_: &ServerId) -> bool {
    true
}

/// A join (end callbacks on) placing on `on` when placement is needed.
fn join(t: &mut Table, key: &str, waiter: u32, on: &str) -> Decision {
    t.join(want(key), true, waiter, all_usable, |_| Some(id(on)))
}

fn meeting_id(t: &Table, key: &str) -> String {
    t.get(key).unwrap().record.secrets.meeting_id.clone()
}

#[test]
fn the_first_join_creates_and_later_joins_wait_for_it() {
    let mut t = Table::default();
    let Decision::Create {
        on,
        record,
        save,
        placed,
    } = join(&mut t, "room/w/r", 1, "a")
    else {
        panic!("expected a create");
    };
    assert_eq!(on, id("a"));
    assert!(placed);
    assert_eq!(record.server, Some(id("a")));
    assert!(save, "a new record is saved first");
    assert_eq!(join(&mut t, "room/w/r", 2, "b"), Decision::Wait);
    assert_eq!(join(&mut t, "room/w/r", 3, "b"), Decision::Wait);
    let waiters = t.create_finished("room/w/r", true, true);
    assert_eq!(waiters, vec![1, 2, 3]);
    assert!(!t.get("room/w/r").unwrap().dirty);
}

#[test]
fn a_created_meeting_is_ready_without_a_create_until_bbb_says_it_ended() {
    let mut t = Table::default();
    join(&mut t, "k", 1, "a");
    t.create_finished("k", true, true);
    assert_eq!(t.get("k").unwrap().state, MeetingState::Running);
    for waiter in 2..100 {
        let Decision::Ready { server, secrets } = join(&mut t, "k", waiter, "b") else {
            panic!("expected ready");
        };
        assert_eq!(server, id("a"));
        assert_eq!(secrets, t.get("k").unwrap().record.secrets);
    }
    let incarnation = t.get("k").unwrap().record.incarnation.clone();
    t.ended(&meeting_id(&t, "k"), Some(&incarnation));
    let Decision::Create { on, placed, .. } = join(&mut t, "k", 100, "b") else {
        panic!("expected a create after the end");
    };
    assert_eq!(on, id("a"), "stays on its usable server");
    assert!(!placed);
}

#[test]
fn without_end_callbacks_every_join_creates_but_shares_the_create_in_flight() {
    let mut t = Table::default();
    let no_callbacks =
        |t: &mut Table, waiter| t.join(want("k"), false, waiter, all_usable, |_| Some(id("a")));
    assert!(matches!(no_callbacks(&mut t, 1), Decision::Create { .. }));
    assert_eq!(no_callbacks(&mut t, 2), Decision::Wait);
    assert_eq!(t.create_finished("k", true, true), vec![1, 2]);
    assert_eq!(t.get("k").unwrap().state, MeetingState::Running);
    let Decision::Create { save, .. } = no_callbacks(&mut t, 3) else {
        panic!("expected a create");
    };
    assert!(!save, "an unchanged record is not saved again");
    assert_eq!(no_callbacks(&mut t, 4), Decision::Wait);
}

#[test]
fn a_failed_create_answers_waiters_and_the_next_join_creates_again() {
    let mut t = Table::default();
    join(&mut t, "k", 1, "a");
    join(&mut t, "k", 2, "a");
    assert_eq!(t.create_finished("k", false, true), vec![1, 2]);
    assert!(matches!(join(&mut t, "k", 3, "a"), Decision::Create { .. }));
}

#[test]
fn a_store_failure_leaves_the_record_dirty_so_it_is_saved_again() {
    let mut t = Table::default();
    join(&mut t, "k", 1, "a");
    t.create_finished("k", false, false);
    assert!(t.get("k").unwrap().dirty);
    let Decision::Create { save, .. } = join(&mut t, "k", 2, "a") else {
        panic!("expected a create");
    };
    assert!(save);
}

#[test]
fn a_meeting_on_an_unusable_server_is_moved_and_keeps_its_identity() {
    let mut t = Table::default();
    join(&mut t, "k", 1, "a");
    t.create_finished("k", true, true);
    let before = t.get("k").unwrap().record.secrets.clone();
    let mut was = None;
    let d = t.join(
        want("k"),
        true,
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
    let d = t.join(want("k"), true, 1, |_| false, |_| None);
    assert_eq!(d, Decision::NoServer);
    assert!(t.get("k").is_some_and(|m| !m.creating()));
}

#[test]
fn changed_voice_bridge_or_guest_policy_is_saved() {
    let mut t = Table::default();
    join(&mut t, "k", 1, "a");
    t.create_finished("k", true, true);
    let changed = Want {
        key: "k",
        voice_bridge: Some("12345".into()),
        guest_policy: "ASK_MODERATOR",
    };
    let Decision::Create { record, save, .. } = t.join(changed, false, 2, all_usable, |_| None) else {
        panic!("expected a create");
    };
    assert_eq!(record.voice_bridge.as_deref(), Some("12345"));
    assert_eq!(record.guest_policy, "ASK_MODERATOR");
    assert!(save);
}

#[test]
fn polls_mark_listed_meetings_running_and_unlisted_ones_ended() {
    // A record from the store, as after a restart: not known to run.
    let mut record = new_record("k", "ALWAYS_ACCEPT");
    record.server = Some(id("a"));
    let mut t = Table::from_records(vec![record]);
    let mid = meeting_id(&t, "k");
    let listed = HashMap::from([(mid.as_str(), 0u64)]);
    // Another server listing it says nothing about it.
    let sent = t.epoch();
    t.polled(&id("b"), &listed, sent);
    assert_eq!(t.get("k").unwrap().state, MeetingState::Unknown);
    // Listed, even without participants: running (it exists, joins work).
    let sent = t.epoch();
    t.polled(&id("a"), &listed, sent);
    assert_eq!(t.get("k").unwrap().state, MeetingState::Running);
    assert!(matches!(join(&mut t, "k", 1, "a"), Decision::Ready { .. }));
    assert_eq!(t.running(), 1);
    // No longer listed: ended.
    let sent = t.epoch();
    t.polled(&id("a"), &HashMap::new(), sent);
    assert_eq!(t.get("k").unwrap().state, MeetingState::Unknown);
    assert!(matches!(join(&mut t, "k", 2, "a"), Decision::Create { .. }));
}

#[test]
fn a_poll_sent_before_a_create_or_an_end_does_not_undo_it() {
    let mut t = Table::default();
    join(&mut t, "k", 1, "a");
    let mid = meeting_id(&t, "k");
    // A poll leaves for BBB before the create answers, and comes back without the meeting.
    let sent = t.epoch();
    t.create_finished("k", true, true);
    t.polled(&id("a"), &HashMap::new(), sent);
    assert_eq!(
        t.get("k").unwrap().state,
        MeetingState::Running,
        "the create is newer"
    );
    // A poll leaves, the meeting ends (callback), the poll comes back still listing it.
    let sent = t.epoch();
    let incarnation = t.get("k").unwrap().record.incarnation.clone();
    t.ended(&mid, Some(&incarnation));
    t.polled(&id("a"), &HashMap::from([(mid.as_str(), 2u64)]), sent);
    assert_eq!(
        t.get("k").unwrap().state,
        MeetingState::Unknown,
        "the end is newer"
    );
    // A poll sent after the end speaks again.
    let sent = t.epoch();
    t.polled(&id("a"), &HashMap::from([(mid.as_str(), 2u64)]), sent);
    assert_eq!(t.get("k").unwrap().state, MeetingState::Running);
}

#[test]
fn polls_leave_a_meeting_with_a_create_in_flight_alone() {
    let mut t = Table::default();
    join(&mut t, "k", 1, "a");
    let mid = meeting_id(&t, "k");
    let listed = HashMap::from([(mid.as_str(), 3u64)]);
    let sent = t.epoch();
    t.polled(&id("a"), &listed, sent);
    assert_eq!(t.get("k").unwrap().state, MeetingState::Unknown);
    assert_eq!(join(&mut t, "k", 2, "a"), Decision::Wait);
}

#[test]
fn an_end_callback_of_the_current_incarnation_ends_it_and_starts_a_new_one() {
    let mut t = Table::default();
    join(&mut t, "k", 1, "a");
    t.create_finished("k", true, true);
    let record = t.get("k").unwrap().record.clone();
    assert!(!record.incarnation.is_empty());
    // Not verified: forged, nothing changes.
    assert_eq!(
        t.ended(&record.secrets.meeting_id, None),
        (Verdict::Forged, Some("k".into()))
    );
    assert_eq!(t.get("k").unwrap().state, MeetingState::Running);
    // Verified, but another incarnation or an unknown meeting: stale, nothing changes.
    assert_eq!(t.ended(&record.secrets.meeting_id, Some("old")).0, Verdict::Stale);
    assert_eq!(
        t.ended("unknown", Some(&record.incarnation)),
        (Verdict::Stale, None)
    );
    assert_eq!(t.get("k").unwrap().state, MeetingState::Running);
    // The current incarnation: ended, and the record moves on to a new incarnation.
    assert_eq!(
        t.ended(&record.secrets.meeting_id, Some(&record.incarnation)),
        (Verdict::Ended, Some("k".into()))
    );
    let after = t.get("k").unwrap();
    assert_eq!(after.state, MeetingState::Unknown);
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
    join(&mut t, "k", 1, "a");
    t.create_finished("k", true, true);
    let first = t.get("k").unwrap().record.incarnation.clone();
    t.move_to("k", "ALWAYS_ACCEPT", &id("b"));
    let second = t.get("k").unwrap().record.incarnation.clone();
    assert_ne!(first, second);
    // Placed again because "b" became unusable.
    t.join(want("k"), true, 2, |s| s != &id("b"), |_| Some(id("c")));
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
fn a_move_rehomes_the_meeting_and_forgets_that_it_runs() {
    let mut t = Table::default();
    join(&mut t, "k", 1, "a");
    t.create_finished("k", true, true);
    let (previous, record) = t.move_to("k", "ALWAYS_ACCEPT", &id("b"));
    assert_eq!(previous, Some(id("a")));
    assert_eq!(record.server, Some(id("b")));
    let meeting = t.get("k").unwrap();
    assert_eq!(meeting.state, MeetingState::Unknown);
    assert!(meeting.dirty);
    let (previous, record) = t.move_to("new", "ASK_MODERATOR", &id("b"));
    assert_eq!(previous, None);
    assert_eq!(record.guest_policy, "ASK_MODERATOR");
}

#[test]
fn records_from_the_store_start_unknown_and_clean() {
    let mut record = new_record("k", "ALWAYS_ACCEPT");
    record.server = Some(id("a"));
    let t = Table::from_records(vec![record.clone()]);
    let meeting = t.get("k").unwrap();
    assert_eq!(meeting.record, record);
    assert!(!meeting.dirty);
    assert_eq!(meeting.state, MeetingState::Unknown);
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
