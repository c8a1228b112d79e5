//! Typed replies of commands: what the command modules (`users`, `rooms`, `chat`) answer.
//! The session alone turns them into `success` frames (`wire::reply`).

use crate::bbb::xml::Recording;
use crate::store::{ChannelInfo, ChatEvent, UserRecord};

/// The body of a `success` reply.
#[derive(Clone, Debug)]
pub enum Reply {
    /// `{}` (`user.update`).
    Empty,
    /// `{"url": URL}` (`bbb.room_url`, `bbb.call_url`).
    Url(String),
    /// `{"results": [REC…]}` with times in the world's time zone (`bbb.recordings`).
    Recordings {
        recordings: Vec<Recording>,
        timezone: chrono_tz::Tz,
    },
    /// CHANNEL (`chat.direct.create`).
    Channel(ChannelInfo),
    /// `{"event": EVENT}` (`chat.send`).
    Event(ChatEvent),
    /// `{"results": [EVENT…]}` (`chat.fetch`).
    Events(Vec<ChatEvent>),
    /// USER (`user.fetch`).
    User(UserRecord),
}
