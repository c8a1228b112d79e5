//! In-memory state of one simulated BBB server: meetings, attendees, recordings and call counters.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use rand::distributions::{Alphanumeric, DistString};
use rand::Rng;
use sha1::{Digest, Sha1};

/// Join records kept per meeting; older ones are dropped so benchmarks cannot exhaust memory.
pub(crate) const MAX_JOIN_RECORDS: usize = 1000;

/// Query parameters of one call, decoded, in the order received.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Params(pub(crate) Vec<(String, String)>);

impl Params {
    pub(crate) fn parse(query: &str) -> Self {
        Self(
            url::form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// First value of a parameter, like BBB's servlet `getParameter`.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// First value, only if non-empty after trimming.
    pub(crate) fn non_empty(&self, key: &str) -> Option<&str> {
        self.get(key).map(str::trim).filter(|v| !v.is_empty())
    }

    pub(crate) fn flag(&self, key: &str) -> bool {
        self.get(key).is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    pub(crate) fn to_json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        for (k, v) in &self.0 {
            // Keep the first value, as the simulator's own logic does.
            map.entry(k.clone())
                .or_insert_with(|| serde_json::Value::String(v.clone()));
        }
        serde_json::Value::Object(map)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Moderator,
    Viewer,
}

impl Role {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Moderator => "MODERATOR",
            Self::Viewer => "VIEWER",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        if text.eq_ignore_ascii_case("MODERATOR") {
            Some(Self::Moderator)
        } else if text.eq_ignore_ascii_case("VIEWER") {
            Some(Self::Viewer)
        } else {
            None
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Attendee {
    pub(crate) user_id: String,
    pub(crate) full_name: String,
    pub(crate) role: Role,
    pub(crate) guest_waiting: bool,
}

/// Everything one `create` call received.
#[derive(Clone, Debug)]
pub(crate) struct CreateCall {
    pub(crate) method: String,
    pub(crate) params: Params,
    pub(crate) presentation_urls: Vec<String>,
}

/// Everything one `join` call received, and what the simulator made of it.
#[derive(Clone, Debug)]
pub(crate) struct JoinCall {
    pub(crate) method: String,
    pub(crate) params: Params,
    pub(crate) user_id: String,
    pub(crate) role: Role,
    pub(crate) guest_waiting: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct Meeting {
    pub(crate) meeting_id: String,
    pub(crate) internal_id: String,
    pub(crate) name: String,
    pub(crate) create_time_ms: i64,
    pub(crate) voice_bridge: String,
    pub(crate) attendee_pw: String,
    pub(crate) moderator_pw: String,
    pub(crate) record: bool,
    pub(crate) duration_min: u64,
    pub(crate) guest_policy: String,
    /// `meta_*` parameters, key lowercased without the prefix (as BBB stores them).
    pub(crate) metadata: Vec<(String, String)>,
    pub(crate) attendees: Vec<Attendee>,
    pub(crate) joined_users: HashSet<String>,
    pub(crate) first_create: CreateCall,
    pub(crate) last_create: CreateCall,
    pub(crate) joins: VecDeque<JoinCall>,
}

impl Meeting {
    pub(crate) fn participant_count(&self) -> usize {
        self.attendees.len()
    }

    pub(crate) fn moderator_count(&self) -> usize {
        self.attendees
            .iter()
            .filter(|a| a.role == Role::Moderator)
            .count()
    }

    pub(crate) fn running(&self) -> bool {
        !self.attendees.is_empty()
    }

    pub(crate) fn has_user_joined(&self) -> bool {
        !self.joined_users.is_empty()
    }
}

#[derive(Clone, Debug)]
pub(crate) struct SimRecording {
    pub(crate) record_id: String,
    pub(crate) meeting_id: String,
    pub(crate) name: String,
    pub(crate) start_time_ms: i64,
    pub(crate) end_time_ms: i64,
    pub(crate) participants: usize,
    pub(crate) metadata: Vec<(String, String)>,
    /// (type, url)
    pub(crate) formats: Vec<(String, String)>,
}

/// One simulated server's data; always accessed under its instance's mutex.
#[derive(Debug, Default)]
pub(crate) struct InstanceData {
    pub(crate) meetings: BTreeMap<String, Meeting>,
    pub(crate) recordings: Vec<SimRecording>,
    pub(crate) creates: BTreeMap<String, u64>,
    pub(crate) in_flight_creates: HashMap<String, u64>,
    pub(crate) max_concurrent_creates: BTreeMap<String, u64>,
    pub(crate) creates_total: u64,
    pub(crate) joins_total: u64,
    pub(crate) ends_total: u64,
}

/// What a `create` call did.
pub(crate) enum CreateOutcome {
    Created(Box<Meeting>),
    Duplicate(Box<Meeting>),
    /// Same meetingID with other passwords: BBB refuses with idNotUnique.
    NotUnique,
}

/// What a `join` call did.
pub(crate) enum JoinOutcome {
    Joined {
        meeting_name: String,
        user_id: String,
        role: Role,
        guest_waiting: bool,
    },
    UnknownMeeting,
    MissingFullName,
    InvalidPassword,
}

pub(crate) fn sha1_hex(text: &str) -> String {
    hex::encode(Sha1::digest(text.as_bytes()))
}

fn random_password() -> String {
    Alphanumeric.sample_string(&mut rand::thread_rng(), 12)
}

fn metadata_of(params: &Params) -> Vec<(String, String)> {
    params
        .0
        .iter()
        .filter_map(|(k, v)| {
            let name = k.strip_prefix("meta_")?.to_ascii_lowercase();
            // Only names that are safe XML element names are echoed in responses.
            let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            valid.then(|| (name, v.clone()))
        })
        .collect()
}

impl InstanceData {
    /// Counts a create call on entry (before the artificial delay), for the stats.
    pub(crate) fn enter_create(&mut self, meeting_id: &str) {
        self.creates_total += 1;
        *self.creates.entry(meeting_id.to_string()).or_insert(0) += 1;
        let in_flight = self.in_flight_creates.entry(meeting_id.to_string()).or_insert(0);
        *in_flight += 1;
        let now = *in_flight;
        let max = self
            .max_concurrent_creates
            .entry(meeting_id.to_string())
            .or_insert(0);
        *max = (*max).max(now);
    }

    pub(crate) fn leave_create(&mut self, meeting_id: &str) {
        if let Some(n) = self.in_flight_creates.get_mut(meeting_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.in_flight_creates.remove(meeting_id);
            }
        }
    }

    pub(crate) fn create(&mut self, meeting_id: &str, call: CreateCall, now_ms: i64) -> CreateOutcome {
        let params = &call.params;
        if let Some(existing) = self.meetings.get_mut(meeting_id) {
            let same_pw = |given: Option<&str>, stored: &str| given.is_none_or(|g| g == stored);
            if !same_pw(params.get("attendeePW"), &existing.attendee_pw)
                || !same_pw(params.get("moderatorPW"), &existing.moderator_pw)
            {
                return CreateOutcome::NotUnique;
            }
            existing.last_create = call;
            return CreateOutcome::Duplicate(Box::new(existing.clone()));
        }
        let voice_bridge = params
            .non_empty("voiceBridge")
            .map(str::to_string)
            .unwrap_or_else(|| rand::thread_rng().gen_range(70000..80000).to_string());
        let meeting = Meeting {
            meeting_id: meeting_id.to_string(),
            internal_id: format!("{}-{now_ms}", sha1_hex(meeting_id)),
            name: params.non_empty("name").unwrap_or(meeting_id).to_string(),
            create_time_ms: now_ms,
            voice_bridge,
            attendee_pw: params
                .non_empty("attendeePW")
                .map(str::to_string)
                .unwrap_or_else(random_password),
            moderator_pw: params
                .non_empty("moderatorPW")
                .map(str::to_string)
                .unwrap_or_else(random_password),
            record: params.flag("record"),
            duration_min: params
                .get("duration")
                .and_then(|d| d.trim().parse().ok())
                .unwrap_or(0),
            guest_policy: params
                .non_empty("guestPolicy")
                .unwrap_or("ALWAYS_ACCEPT")
                .to_string(),
            metadata: metadata_of(params),
            attendees: Vec::new(),
            joined_users: HashSet::new(),
            first_create: call.clone(),
            last_create: call,
            joins: VecDeque::new(),
        };
        self.meetings.insert(meeting_id.to_string(), meeting.clone());
        CreateOutcome::Created(Box::new(meeting))
    }

    pub(crate) fn join(&mut self, params: &Params, method: &str) -> JoinOutcome {
        let Some(meeting) = params
            .non_empty("meetingID")
            .and_then(|id| self.meetings.get_mut(id))
        else {
            return JoinOutcome::UnknownMeeting;
        };
        let Some(full_name) = params.non_empty("fullName") else {
            return JoinOutcome::MissingFullName;
        };
        // BBB 2.6+: an explicit role wins over the password.
        let role = match params.get("role").and_then(Role::parse) {
            Some(role) => role,
            None => match params.get("password") {
                Some(pw) if pw == meeting.moderator_pw => Role::Moderator,
                Some(pw) if pw == meeting.attendee_pw => Role::Viewer,
                _ => return JoinOutcome::InvalidPassword,
            },
        };
        let guest_waiting = params.flag("guest") && meeting.guest_policy == "ASK_MODERATOR";
        let user_id = params.non_empty("userID").map(str::to_string).unwrap_or_else(|| {
            format!(
                "w_{}",
                Alphanumeric
                    .sample_string(&mut rand::thread_rng(), 12)
                    .to_ascii_lowercase()
            )
        });
        let attendee = Attendee {
            user_id: user_id.clone(),
            full_name: full_name.to_string(),
            role,
            guest_waiting,
        };
        match meeting.attendees.iter_mut().find(|a| a.user_id == user_id) {
            Some(existing) => *existing = attendee,
            None => meeting.attendees.push(attendee),
        }
        meeting.joined_users.insert(user_id.clone());
        if meeting.joins.len() >= MAX_JOIN_RECORDS {
            meeting.joins.pop_front();
        }
        meeting.joins.push_back(JoinCall {
            method: method.to_string(),
            params: params.clone(),
            user_id: user_id.clone(),
            role,
            guest_waiting,
        });
        let meeting_name = meeting.name.clone();
        self.joins_total += 1;
        JoinOutcome::Joined {
            meeting_name,
            user_id,
            role,
            guest_waiting,
        }
    }

    /// Removes a meeting; a recorded meeting that anyone joined leaves a published recording.
    /// Ends a meeting: `None` when there is none, else its end callback URL (if it has one).
    pub(crate) fn end(&mut self, meeting_id: &str, now_ms: i64, public_url: &str) -> Option<Option<String>> {
        let meeting = self.meetings.remove(meeting_id)?;
        let callback = meeting
            .metadata
            .iter()
            .find(|(k, _)| k == "endcallbackurl")
            .map(|(_, v)| v.clone());
        self.ends_total += 1;
        if meeting.record && meeting.has_user_joined() {
            let record_id = meeting.internal_id.clone();
            let mut metadata = vec![
                ("isBreakout".to_string(), "false".to_string()),
                ("meetingId".to_string(), meeting.meeting_id.clone()),
                ("meetingName".to_string(), meeting.name.clone()),
            ];
            metadata.extend(meeting.metadata.iter().cloned());
            self.recordings.push(SimRecording {
                formats: vec![
                    (
                        "presentation".to_string(),
                        format!("{public_url}/simulator/playback/presentation/2.3/{record_id}"),
                    ),
                    (
                        "video".to_string(),
                        format!("{public_url}/simulator/playback/video/{record_id}/video-0.m4v"),
                    ),
                ],
                record_id,
                meeting_id: meeting.meeting_id,
                name: meeting.name,
                start_time_ms: meeting.create_time_ms,
                end_time_ms: now_ms.max(meeting.create_time_ms),
                participants: meeting.joined_users.len(),
                metadata,
            });
        }
        Some(callback)
    }

    /// Recordings of the given meetings (all when `None`), filtered by state (`any` = all).
    pub(crate) fn recordings_for(
        &self,
        meeting_ids: Option<&[&str]>,
        record_ids: Option<&[&str]>,
        states: &[&str],
    ) -> Vec<SimRecording> {
        let any_state = states.iter().any(|s| s.eq_ignore_ascii_case("any"));
        self.recordings
            .iter()
            .filter(|r| meeting_ids.is_none_or(|ids| ids.contains(&r.meeting_id.as_str())))
            .filter(|r| record_ids.is_none_or(|ids| ids.contains(&r.record_id.as_str())))
            // Simulated recordings are always published.
            .filter(|_| any_state || states.iter().any(|s| s.eq_ignore_ascii_case("published")))
            .cloned()
            .collect()
    }
}
