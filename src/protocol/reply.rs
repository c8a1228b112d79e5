//! Typed replies of commands: what the command modules (`users`, `rooms`, `chat`) answer.
//! The session alone turns them into `success` frames (`wire::reply`).

use std::collections::BTreeMap;

use crate::bbb::xml::Recording;
use crate::ids::UserId;
use crate::store::{ChannelInfo, ChatEvent, Searchable, UserRecord};

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
    /// `{"results": [EVENT…], "users": {uid: USER}}` (`chat.fetch`).
    Events {
        events: Vec<ChatEvent>,
        users: Vec<UserRecord>,
    },
    /// USER (`user.fetch`).
    User(UserRecord),
    /// `{uid: USER}` (`user.fetch` with `ids`).
    Users(Vec<UserRecord>),
    /// `{"results": [LISTED…], "isLastPage"}` (`user.list.search`); `now_ms` for `inactive`.
    Search {
        results: Vec<Searchable>,
        is_last: bool,
        now_ms: i64,
    },
    /// `{uid: bool}` (`user.online_status`).
    OnlineStatus(BTreeMap<UserId, bool>),
    /// `{"state", "next_event_id", "unread_pointer", "members"}` (`chat.subscribe`).
    Subscribed(ChannelInfo),
}
