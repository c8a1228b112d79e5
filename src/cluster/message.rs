//! What instances tell each other over `LISTEN/NOTIFY` (pure: encoding and decoding).
//! A notification carries an [`Envelope`]; one whose JSON would exceed
//! [`MAX_INLINE_BYTES`] is stored in `push_payloads` and the notification names its row.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::bbb::xml::MeetingLoad;
use crate::ids::{ServerId, UserId, WorldId};
use crate::store::Moderation;

/// PostgreSQL refuses NOTIFY payloads of 8000 bytes or more; stay well below.
pub const MAX_INLINE_BYTES: usize = 7000;

/// The one notification channel every instance listens on.
pub const CHANNEL: &str = "bbb_gateway";

/// A push as it crosses instances (the registry converts its `Push` to and from this).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum WirePush {
    Frame { frame: String },
    ProfileChanged { profile: Value, frame: String },
    Reload,
}

/// A polled meeting's load as it crosses instances.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WireMeetingLoad {
    pub meeting_id: String,
    pub running: bool,
    pub participants: u64,
    pub voice: u64,
    pub video: u64,
    pub listeners: u64,
    pub moderators: u64,
    pub breakout: bool,
}

impl From<&MeetingLoad> for WireMeetingLoad {
    fn from(m: &MeetingLoad) -> Self {
        Self {
            meeting_id: m.meeting_id.clone(),
            running: m.running,
            participants: m.participant_count,
            voice: m.voice_participant_count,
            video: m.video_count,
            listeners: m.listener_count,
            moderators: m.moderator_count,
            breakout: m.is_breakout,
        }
    }
}

impl From<WireMeetingLoad> for MeetingLoad {
    fn from(m: WireMeetingLoad) -> Self {
        Self {
            meeting_id: m.meeting_id,
            running: m.running,
            participant_count: m.participants,
            voice_participant_count: m.voice,
            video_count: m.video,
            listener_count: m.listeners,
            moderator_count: m.moderators,
            is_breakout: m.breakout,
        }
    }
}

/// One delivery of a publish as it crosses instances.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WireDelivery {
    pub user: UserId,
    pub push: WirePush,
}

/// One thing an instance tells the others.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ClusterMessage {
    /// A bus publish (`bus::Publish::for_other_instances`): deliver each push to every socket
    /// of its user, in this order.
    Publish { deliveries: Vec<WireDelivery> },
    /// `connection_limit`: the socket `conn` of `instance` is replaced (`connection.replaced`).
    Replace {
        instance: String,
        user: UserId,
        conn: u64,
    },
    /// An operator enabled or disabled a server.
    ServerActive { server: ServerId, active: bool },
    /// A meeting's shared record or running state changed (created, ended, moved): forget
    /// what is cached about it; the next join reads the database once.
    MeetingChanged { key: String },
    /// The instance holding a server's poll lease polled it: the same result for everyone.
    ServerPolled {
        server: ServerId,
        result: Result<Vec<WireMeetingLoad>, String>,
        /// The BBB version the server reports, when known.
        #[serde(default)]
        version: Option<String>,
    },
    /// A BBB API call to `server` failed on another instance (counts toward `unhealthy_after`).
    CallFailed { server: ServerId, error: String },
    /// Another instance placed a meeting on `server` (a placement charge).
    Charged { server: ServerId },
    /// An operator changed a user's moderation state.
    Moderation {
        world: WorldId,
        user: UserId,
        state: Moderation,
    },
}

/// A notification's payload: who sent it and either the message or the row holding it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub from: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg: Option<ClusterMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "ref")]
    pub payload_ref: Option<i64>,
}

/// How to send `msg` from `from`: inline JSON, or (too large) the JSON of the message alone,
/// to be stored in a row whose id the notification then carries.
#[derive(Debug, PartialEq)]
pub enum Encoded {
    Inline(String),
    Stored(String),
}

pub fn encode(from: &str, msg: &ClusterMessage) -> Result<Encoded, serde_json::Error> {
    let inline = serde_json::to_string(&Envelope {
        from: from.to_string(),
        msg: Some(msg.clone()),
        payload_ref: None,
    })?;
    if inline.len() <= MAX_INLINE_BYTES {
        Ok(Encoded::Inline(inline))
    } else {
        Ok(Encoded::Stored(serde_json::to_string(msg)?))
    }
}

/// The notification for a message stored in row `id`.
pub fn reference(from: &str, id: i64) -> Result<String, serde_json::Error> {
    serde_json::to_string(&Envelope {
        from: from.to_string(),
        msg: None,
        payload_ref: Some(id),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn small_messages_go_inline_and_round_trip() {
        let msg = ClusterMessage::Publish {
            deliveries: vec![WireDelivery {
                user: UserId::new("u"),
                push: WirePush::Frame {
                    frame: "[\"chat.event\",{}]".into(),
                },
            }],
        };
        let Encoded::Inline(text) = encode("a", &msg).unwrap() else {
            panic!("expected inline")
        };
        let back: Envelope = serde_json::from_str(&text).unwrap();
        assert_eq!(back.from, "a");
        assert_eq!(back.msg, Some(msg));
    }

    #[test]
    fn large_messages_are_stored_and_referenced() {
        let msg = ClusterMessage::Publish {
            deliveries: vec![WireDelivery {
                user: UserId::new("u"),
                push: WirePush::Frame {
                    frame: "x".repeat(MAX_INLINE_BYTES),
                },
            }],
        };
        let Encoded::Stored(text) = encode("a", &msg).unwrap() else {
            panic!("expected stored")
        };
        assert_eq!(serde_json::from_str::<ClusterMessage>(&text).unwrap(), msg);
        let note: Envelope = serde_json::from_str(&reference("a", 7).unwrap()).unwrap();
        assert_eq!(note.payload_ref, Some(7));
        assert!(note.msg.is_none());
    }
}
