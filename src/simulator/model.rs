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
    /// `meetingEndedURL` of the first create: called (GET, as given) when the meeting ends.
    pub(crate) ended_url: Option<String>,
    /// Since when nobody is in the meeting (from its creation, or since the last one left).
    pub(crate) empty_since_ms: Option<i64>,
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

/// The version a simulated server reports unless told otherwise.
pub(crate) const DEFAULT_BBB_VERSION: &str = "3.0.0-sim";

/// A version string's leading numbers: `2.7.10-rc1` is (2, 7, 10); missing parts are 0.
pub(crate) fn version_numbers(version: &str) -> (u32, u32, u32) {
    let mut parts = version.split('.').map(|p| {
        let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().unwrap_or(0)
    });
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

/// What differs between the BBB versions the simulator can pretend to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Behaviour {
    /// 2.6.18+ and 3.0: a request body needs a supported `Content-Type`.
    pub(crate) checks_content_type: bool,
    /// 3.0: paged `getRecordings` nest `totalElements` in `<pagination>` (2.6/2.7 put it
    /// directly in `<response>`).
    pub(crate) nested_pagination: bool,
}

impl Behaviour {
    pub(crate) fn of(version: &str) -> Self {
        let v = version_numbers(version);
        Self {
            checks_content_type: v >= (2, 6, 18),
            nested_pagination: v >= (3, 0, 0),
        }
    }
}

/// Request bodies BBB accepts on `create` (the MIME type, parameters ignored).
pub(crate) const CREATE_CONTENT_TYPES: [&str; 4] = [
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "application/xml",
    "text/xml",
];

/// Whether a request body with this `Content-Type` header may be sent to `create`.
pub(crate) fn content_type_accepted(header: Option<&str>) -> bool {
    let Some(header) = header else { return false };
    let mime = header.split(';').next().unwrap_or_default().trim();
    CREATE_CONTENT_TYPES.iter().any(|t| t.eq_ignore_ascii_case(mime))
}

/// What a `getRecordings` page holds: `offset` and `limit` as BBB 2.6+ reads them. `None`
/// when neither is given (the answer is not paged).
pub(crate) fn recordings_page(offset: Option<&str>, limit: Option<&str>) -> Option<(usize, usize)> {
    if offset.is_none() && limit.is_none() {
        return None;
    }
    let offset = offset.and_then(|o| o.trim().parse().ok()).unwrap_or(0);
    let limit = limit
        .and_then(|l| l.trim().parse::<usize>().ok())
        .unwrap_or(MAX_RECORDINGS_LIMIT)
        .clamp(1, MAX_RECORDINGS_LIMIT);
    Some((offset, limit))
}

/// BBB's largest `getRecordings` page.
pub(crate) const MAX_RECORDINGS_LIMIT: usize = 100;

/// One simulated server's data; always accessed under its instance's mutex.
#[derive(Debug, Default)]
pub(crate) struct InstanceData {
    /// The version the instance reports (`None`: [`DEFAULT_BBB_VERSION`]).
    pub(crate) bbb_version: Option<String>,
    /// A meeting nobody is in ends after this long (0: never), like BBB's
    /// `meetingExpireIfNoUserJoinedInMinutes` / `meetingExpireWhenLastUserLeftInMinutes`.
    pub(crate) empty_expiry_ms: u64,
    pub(crate) meetings: BTreeMap<String, Meeting>,
    pub(crate) recordings: Vec<SimRecording>,
    pub(crate) creates: BTreeMap<String, u64>,
    pub(crate) in_flight_creates: HashMap<String, u64>,
    pub(crate) max_concurrent_creates: BTreeMap<String, u64>,
    pub(crate) creates_total: u64,
    pub(crate) joins_total: u64,
    pub(crate) ends_total: u64,
    /// `getMeetings` calls answered (polls).
    pub(crate) get_meetings_total: u64,
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
    pub(crate) fn version(&self) -> &str {
        self.bbb_version.as_deref().unwrap_or(DEFAULT_BBB_VERSION)
    }

    pub(crate) fn behaviour(&self) -> Behaviour {
        Behaviour::of(self.version())
    }

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
            ended_url: params.non_empty("meetingEndedURL").map(str::to_string),
            empty_since_ms: Some(now_ms),
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
        meeting.empty_since_ms = None;
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

    /// Ends a meeting: `None` when there is none, else the URLs BBB calls about it (GET):
    /// its `meetingEndedURL` as given, and a `meta_endCallbackUrl` with `meetingID` and
    /// `recordingmarks` appended. A recorded meeting that anyone joined leaves a recording.
    pub(crate) fn end(&mut self, meeting_id: &str, now_ms: i64, public_url: &str) -> Option<Vec<String>> {
        let meeting = self.meetings.remove(meeting_id)?;
        let mut callbacks: Vec<String> = meeting.ended_url.iter().cloned().collect();
        if let Some(url) = meeting
            .metadata
            .iter()
            .find(|(k, _)| k == "endcallbackurl")
            .map(|(_, v)| v.clone())
        {
            let separator = if url.contains('?') { '&' } else { '?' };
            let query = crate::bbb::query::QueryBuilder::new()
                .text("meetingID", meeting_id)
                .flag("recordingmarks", false)
                .finish();
            callbacks.push(format!("{url}{separator}{query}"));
        }
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
                formats: playback_formats(public_url, &record_id),
                record_id,
                meeting_id: meeting.meeting_id,
                name: meeting.name,
                start_time_ms: meeting.create_time_ms,
                end_time_ms: now_ms.max(meeting.create_time_ms),
                participants: meeting.joined_users.len(),
                metadata,
            });
        }
        Some(callbacks)
    }

    /// Everyone leaves the meeting (it stays, empty, until it expires or ends); `false` when
    /// there is no such meeting.
    pub(crate) fn leave_all(&mut self, meeting_id: &str, now_ms: i64) -> bool {
        let Some(meeting) = self.meetings.get_mut(meeting_id) else {
            return false;
        };
        meeting.attendees.clear();
        meeting.empty_since_ms.get_or_insert(now_ms);
        true
    }

    /// Ends every meeting that has been empty for `empty_expiry_ms`: (meetingID, callbacks).
    pub(crate) fn expire(&mut self, now_ms: i64, public_url: &str) -> Vec<(String, Vec<String>)> {
        if self.empty_expiry_ms == 0 {
            return Vec::new();
        }
        let expiry = i64::try_from(self.empty_expiry_ms).unwrap_or(i64::MAX);
        let due: Vec<String> = self
            .meetings
            .values()
            .filter(|m| m.attendees.is_empty())
            .filter(|m| {
                m.empty_since_ms
                    .is_some_and(|t| now_ms.saturating_sub(t) >= expiry)
            })
            .map(|m| m.meeting_id.clone())
            .collect();
        due.into_iter()
            .filter_map(|id| {
                let callbacks = self.end(&id, now_ms, public_url)?;
                Some((id, callbacks))
            })
            .collect()
    }

    /// Adds `count` published recordings of `meeting_id` (test aid: many recordings of one
    /// room), one minute apart, after any it already has. Returns how many it has now.
    pub(crate) fn add_recordings(
        &mut self,
        meeting_id: &str,
        count: usize,
        now_ms: i64,
        public_url: &str,
    ) -> usize {
        let hash = sha1_hex(meeting_id);
        let existing = self
            .recordings
            .iter()
            .filter(|r| r.meeting_id == meeting_id)
            .count();
        let start = now_ms - 3_600_000;
        for i in existing..existing + count {
            let offset = i64::try_from(i).unwrap_or(i64::MAX / 2).saturating_mul(60_000);
            let start_time_ms = start.saturating_add(offset);
            let record_id = format!("{hash}-{start_time_ms}");
            self.recordings.push(SimRecording {
                formats: playback_formats(public_url, &record_id),
                record_id,
                meeting_id: meeting_id.to_string(),
                name: format!("Recording {}", i + 1),
                start_time_ms,
                end_time_ms: start_time_ms + 30_000,
                participants: 1,
                metadata: vec![("meetingId".to_string(), meeting_id.to_string())],
            });
        }
        existing + count
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

/// The playback formats of a simulated recording.
fn playback_formats(public_url: &str, record_id: &str) -> Vec<(String, String)> {
    vec![
        (
            "presentation".to_string(),
            format!("{public_url}/simulator/playback/presentation/2.3/{record_id}"),
        ),
        (
            "video".to_string(),
            format!("{public_url}/simulator/playback/video/{record_id}/video-0.m4v"),
        ),
    ]
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_their_leading_numbers() {
        assert_eq!(version_numbers("2.7.10-rc1"), (2, 7, 10));
        assert_eq!(version_numbers("3.0"), (3, 0, 0));
        assert_eq!(version_numbers("garbage"), (0, 0, 0));
        assert!(!Behaviour::of("2.6.17").checks_content_type);
        assert!(Behaviour::of("2.6.18").checks_content_type);
        assert!(Behaviour::of("2.7.1").checks_content_type);
        assert!(!Behaviour::of("2.7.1").nested_pagination);
        assert!(Behaviour::of(DEFAULT_BBB_VERSION).nested_pagination);
    }

    #[test]
    fn create_bodies_need_a_supported_content_type() {
        assert!(content_type_accepted(Some("application/xml")));
        assert!(content_type_accepted(Some("Text/XML; charset=utf-8")));
        assert!(content_type_accepted(Some("application/x-www-form-urlencoded")));
        assert!(!content_type_accepted(Some("text/plain")));
        assert!(!content_type_accepted(Some("")));
        assert!(!content_type_accepted(None));
    }

    #[test]
    fn recordings_pages_follow_bbb_2_6() {
        assert_eq!(recordings_page(None, None), None);
        assert_eq!(recordings_page(None, Some("10")), Some((0, 10)));
        assert_eq!(recordings_page(Some("20"), Some("10")), Some((20, 10)));
        assert_eq!(recordings_page(Some("5"), None), Some((5, 100)));
        assert_eq!(recordings_page(Some("x"), Some("1000")), Some((0, 100)));
        assert_eq!(recordings_page(Some("0"), Some("0")), Some((0, 1)));
    }
}
