//! The meeting table (pure): every room's and call's meeting record, whether BBB is known to
//! have it ([`MeetingState`]), and the joins waiting for the one create in flight. For a join
//! it answers [`Decision::Ready`] (sign now), [`Decision::Wait`] (a create is in flight) or
//! [`Decision::Create`] (create on this server). Generic over the waiter type `W` so it can be
//! tested without channels; the balancer uses oneshot senders.
//!
//! A meeting is known running from a successful create (SUCCESS or `duplicateWarning`) or a
//! poll that lists it, until BBB says it ended: its end callback, or a poll that no longer lists
//! it. Every state change takes a new number from the table's counter ([`MeetingTable::epoch`]);
//! a poll only speaks for meetings whose state has not changed since it was sent, so a poll
//! answered from before a create or an end cannot undo what that create or end said.

use std::collections::HashMap;

use rand::distributions::Alphanumeric;
use rand::Rng;

use crate::ids::ServerId;
use crate::store::{MeetingRecord, MeetingSecrets};

use super::callback::{self, Verdict};

/// Length of generated meeting ids and passwords (alphanumeric).
const SECRET_LEN: usize = 32;

/// What the gateway knows about a meeting on BBB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MeetingState {
    /// Not known to exist: the next join sends `create` (which BBB treats as idempotent).
    Unknown,
    /// BBB has it and has not said it ended: joins skip `create` (with end callbacks).
    Running,
}

/// One meeting of the table.
#[derive(Debug)]
pub struct Meeting<W> {
    pub record: MeetingRecord,
    /// Whether the record changed since it was last saved.
    pub dirty: bool,
    pub state: MeetingState,
    /// The table's [`MeetingTable::epoch`] at the last change of `state`.
    changed: u64,
    /// Joins waiting for the one in-flight create, if any.
    waiters: Option<Vec<W>>,
}

impl<W> Meeting<W> {
    fn new(record: MeetingRecord, dirty: bool) -> Self {
        Self {
            record,
            dirty,
            state: MeetingState::Unknown,
            changed: 0,
            waiters: None,
        }
    }

    /// Whether a create is in flight.
    pub fn creating(&self) -> bool {
        self.waiters.is_some()
    }
}

/// A join's view of the meeting it wants.
#[derive(Clone, Debug)]
pub struct Want<'a> {
    pub key: &'a str,
    pub voice_bridge: Option<String>,
    pub guest_policy: &'static str,
}

/// What a join should do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// BBB has the meeting: sign a join URL now.
    Ready {
        server: ServerId,
        secrets: MeetingSecrets,
    },
    /// A create is in flight; the waiter was queued for its outcome.
    Wait,
    /// This join starts the create on `on`; the waiter was queued. `save`: the record
    /// changed and must be persisted first; `placed`: the meeting was (re)placed on `on`.
    Create {
        on: ServerId,
        record: Box<MeetingRecord>,
        save: bool,
        placed: bool,
    },
    /// No usable server; the waiter was dropped.
    NoServer,
}

/// A fresh record with random meeting id and passwords.
pub fn new_record(key: &str, guest_policy: &str) -> MeetingRecord {
    MeetingRecord {
        key: key.to_string(),
        secrets: MeetingSecrets {
            meeting_id: random_secret(),
            attendee_pw: random_secret(),
            moderator_pw: random_secret(),
        },
        server: None,
        voice_bridge: None,
        guest_policy: guest_policy.to_string(),
        incarnation: callback::new_incarnation(),
    }
}

fn random_secret() -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(SECRET_LEN)
        .map(char::from)
        .collect()
}

/// Every meeting record by key (`room/{world}/{room}`, `call/{call}`).
#[derive(Debug)]
pub struct MeetingTable<W> {
    meetings: HashMap<String, Meeting<W>>,
    /// Counts state changes (see the module docs).
    epoch: u64,
}

impl<W> Default for MeetingTable<W> {
    fn default() -> Self {
        Self {
            meetings: HashMap::new(),
            epoch: 0,
        }
    }
}

/// Sets a meeting's state, stamping it with the next epoch.
fn set_state<W>(epoch: &mut u64, meeting: &mut Meeting<W>, state: MeetingState) {
    *epoch += 1;
    meeting.changed = *epoch;
    meeting.state = state;
}

impl<W> MeetingTable<W> {
    /// The table from the records saved in the store.
    pub fn from_records(records: Vec<MeetingRecord>) -> Self {
        Self {
            meetings: records
                .into_iter()
                .map(|record| (record.key.clone(), Meeting::new(record, false)))
                .collect(),
            epoch: 0,
        }
    }

    /// The current state counter: give it to a poll when it is sent ([`Self::polled`]).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn get(&self, key: &str) -> Option<&Meeting<W>> {
        self.meetings.get(key)
    }

    fn entry<'a>(
        meetings: &'a mut HashMap<String, Meeting<W>>,
        key: &str,
        guest_policy: &str,
    ) -> &'a mut Meeting<W> {
        meetings
            .entry(key.to_string())
            .or_insert_with(|| Meeting::new(new_record(key, guest_policy), true))
    }

    /// A join: ready, wait for the create in flight, or create — on the current server when
    /// `usable` says so, else where `place` puts it (`place` gets the current server). With
    /// `skip_running` (end callbacks on) a known-running meeting is ready without a create.
    pub fn join(
        &mut self,
        want: Want<'_>,
        skip_running: bool,
        waiter: W,
        usable: impl Fn(&ServerId) -> bool,
        place: impl FnOnce(Option<&ServerId>) -> Option<ServerId>,
    ) -> Decision {
        let meeting = Self::entry(&mut self.meetings, want.key, want.guest_policy);
        let current = meeting.record.server.clone().filter(|s| usable(s));
        if let Some(server) = &current {
            if skip_running && meeting.state == MeetingState::Running {
                return Decision::Ready {
                    server: server.clone(),
                    secrets: meeting.record.secrets.clone(),
                };
            }
        }
        if let Some(waiters) = meeting.waiters.as_mut() {
            waiters.push(waiter);
            return Decision::Wait;
        }
        let Some(on) = current.or_else(|| place(meeting.record.server.as_ref())) else {
            return Decision::NoServer;
        };
        let placed = meeting.record.server.as_ref() != Some(&on);
        if placed {
            meeting.record.server = Some(on.clone());
            meeting.record.incarnation = callback::new_incarnation();
            meeting.dirty = true;
            set_state(&mut self.epoch, meeting, MeetingState::Unknown);
        }
        if meeting.record.incarnation.is_empty() {
            meeting.record.incarnation = callback::new_incarnation();
            meeting.dirty = true;
        }
        if meeting.record.voice_bridge != want.voice_bridge
            || meeting.record.guest_policy != want.guest_policy
        {
            meeting.record.voice_bridge = want.voice_bridge;
            meeting.record.guest_policy = want.guest_policy.to_string();
            meeting.dirty = true;
        }
        meeting.waiters = Some(vec![waiter]);
        Decision::Create {
            on,
            record: Box::new(meeting.record.clone()),
            save: meeting.dirty,
            placed,
        }
    }

    /// A create finished: `created` (BBB has the meeting: SUCCESS or `duplicateWarning`),
    /// `saved` (the record was persisted or needed no save). Returns the waiters to answer.
    pub fn create_finished(&mut self, key: &str, created: bool, saved: bool) -> Vec<W> {
        let Some(meeting) = self.meetings.get_mut(key) else {
            return Vec::new();
        };
        if saved {
            meeting.dirty = false;
        }
        if created {
            set_state(&mut self.epoch, meeting, MeetingState::Running);
        }
        meeting.waiters.take().unwrap_or_default()
    }

    /// A call starting: a new record placed by `place` (None when the call has one already).
    pub fn place_call(
        &mut self,
        key: &str,
        guest_policy: &str,
        place: impl FnOnce() -> Option<ServerId>,
    ) -> Option<MeetingRecord> {
        if self.meetings.contains_key(key) {
            return None;
        }
        let mut record = new_record(key, guest_policy);
        record.server = place();
        self.meetings
            .insert(key.to_string(), Meeting::new(record.clone(), true));
        Some(record)
    }

    /// An operator's move: re-homes the meeting on `server` (creating the record if needed).
    /// Returns the previous server and the record to save.
    pub fn move_to(
        &mut self,
        key: &str,
        guest_policy: &str,
        server: &ServerId,
    ) -> (Option<ServerId>, MeetingRecord) {
        let meeting = Self::entry(&mut self.meetings, key, guest_policy);
        let previous = meeting.record.server.replace(server.clone());
        meeting.record.incarnation = callback::new_incarnation();
        set_state(&mut self.epoch, meeting, MeetingState::Unknown);
        meeting.dirty = true;
        (previous, meeting.record.clone())
    }

    /// Another instance changed what is known of `key` (created, ended, moved): its state here
    /// is unknown again, so the next join asks the cluster.
    pub fn forget(&mut self, key: &str) {
        if let Some(m) = self.meetings.get_mut(key) {
            if !m.creating() && m.state != MeetingState::Unknown {
                set_state(&mut self.epoch, m, MeetingState::Unknown);
            }
        }
    }

    /// After missed notifications: every meeting's state is unknown here.
    pub fn forget_all(&mut self) {
        for m in self.meetings.values_mut() {
            if !m.creating() && m.state != MeetingState::Unknown {
                set_state(&mut self.epoch, m, MeetingState::Unknown);
            }
        }
    }

    /// The cluster's record of `key` replaces this one (same meeting on BBB for every
    /// instance: its id, passwords and server come from the database).
    pub fn adopt(&mut self, record: MeetingRecord) {
        if let Some(m) = self.meetings.get_mut(&record.key) {
            m.record = record;
            m.dirty = false;
        }
    }

    /// A record another instance created, learned from the database (not running here).
    pub fn learn(&mut self, record: MeetingRecord) {
        self.meetings
            .entry(record.key.clone())
            .or_insert_with(|| Meeting::new(record, false));
    }

    /// Whether a meeting with this BBB meetingID is in the table.
    pub fn knows_meeting_id(&self, meeting_id: &str) -> bool {
        self.meetings
            .values()
            .any(|m| m.record.secrets.meeting_id == meeting_id)
    }

    /// The record was persisted.
    pub fn saved(&mut self, key: &str) {
        if let Some(m) = self.meetings.get_mut(key) {
            m.dirty = false;
        }
    }

    /// A poll of `server`, sent at epoch `sent` (see [`Self::epoch`]), listed these meetings
    /// (meeting id → participant count): the ones it lists are running, the ones it no longer
    /// lists have ended. Meetings with a create in flight, or whose state changed since the poll
    /// was sent, are left alone.
    pub fn polled(&mut self, server: &ServerId, listed: &HashMap<&str, u64>, sent: u64) {
        for meeting in self.meetings.values_mut() {
            if meeting.record.server.as_ref() != Some(server) || meeting.creating() || meeting.changed > sent
            {
                continue;
            }
            let state = if listed.contains_key(meeting.record.secrets.meeting_id.as_str()) {
                MeetingState::Running
            } else {
                MeetingState::Unknown
            };
            if meeting.state != state {
                set_state(&mut self.epoch, meeting, state);
            }
        }
    }

    /// How many meetings are known running.
    pub fn running(&self) -> usize {
        self.meetings
            .values()
            .filter(|m| m.state == MeetingState::Running)
            .count()
    }

    /// BBB's end callback for `meeting_id`, whose token verified for incarnation `verified`
    /// (`None`: it did not verify). For the meeting's current incarnation its confirmation is
    /// dropped and it gets a new incarnation (the next create makes a new meeting on BBB, so a
    /// late retry of this callback cannot end that one). Returns the verdict and the key.
    pub fn ended(&mut self, meeting_id: &str, verified: Option<&str>) -> (Verdict, Option<String>) {
        let meeting = self
            .meetings
            .values_mut()
            .find(|m| m.record.secrets.meeting_id == meeting_id);
        let current = meeting.as_ref().map(|m| m.record.incarnation.as_str());
        let verdict = callback::judge(verified, current);
        match (verdict, meeting) {
            (Verdict::Ended, Some(meeting)) => {
                set_state(&mut self.epoch, meeting, MeetingState::Unknown);
                meeting.record.incarnation = callback::new_incarnation();
                meeting.dirty = true;
                (verdict, Some(meeting.record.key.clone()))
            }
            (_, meeting) => (verdict, meeting.map(|m| m.record.key.clone())),
        }
    }
}

#[cfg(test)]
#[path = "meetings_tests.rs"]
mod tests;
