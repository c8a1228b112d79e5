//! The JSON shapes of users, worlds and rooms as venueless clients expect them.
//! Only what a client may see goes in: no secrets, roles, trait grants or BBB settings.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use chrono::TimeZone;

use crate::bbb::xml::Recording;
use crate::config::{RoomSettings, WorldSettings, BBB_MODULE};
use crate::store::{ChannelInfo, ChatEvent, UserRecord};

/// USER: `{"id", "profile", "pretalx_id", "deleted", "badges", "inactive", "client_state"}`.
pub fn user(user: &UserRecord) -> Value {
    json!({
        "id": user.id,
        "profile": user.profile,
        "pretalx_id": null,
        "deleted": false,
        "badges": [],
        "inactive": false,
        "client_state": {},
    })
}

/// ROOM with the user's permissions in it. BBB module configs are shown as `{}`.
pub fn room(room: &RoomSettings, permissions: &BTreeSet<String>) -> Value {
    let modules: Vec<Value> = room
        .modules
        .iter()
        .map(|m| {
            let config = if m.kind == BBB_MODULE {
                json!({})
            } else {
                serde_json::to_value(&m.config).unwrap_or_else(|_| json!({}))
            };
            json!({ "type": m.kind, "config": config })
        })
        .collect();
    json!({
        "id": room.id,
        "name": room.name,
        "description": room.description,
        "picture": null,
        "import_id": null,
        "pretalx_id": 0,
        "permissions": permissions,
        "force_join": false,
        "modules": modules,
        "schedule_data": null,
    })
}

/// WORLD: the world's public face, the user's world permissions, and the rooms they may view.
pub fn world_config(world: &WorldSettings, permissions: &BTreeSet<String>, rooms: Vec<Value>) -> Value {
    json!({
        "world": {
            "id": world.id,
            "title": world.title,
            "pretalx": {},
            "profile_fields": [],
            "social_logins": [],
            "iframe_blockers": {"default": {"enabled": false, "policy_url": null}},
            "onsite_traits": [],
        },
        "permissions": permissions,
        "rooms": rooms,
    })
}

/// The whole `authenticated` frame: exactly seven keys. `world_config` is JSON text (shared
/// between users with the same view), spliced in without parsing it again.
pub fn authenticated_frame(user_config: &Value, world_config: &str, channels: Vec<Value>) -> String {
    format!(
        "[\"authenticated\",{{\"user.config\":{user_config},\"world.config\":{world_config},\"chat.channels\":{},\
         \"chat.read_pointers\":{{}},\"chat.notification_counts\":{{}},\
         \"exhibition\":{{\"exhibitors\":[],\"contact_requests\":[]}},\"announcements\":[]}}]",
        Value::Array(channels)
    )
}

/// REC: one recording with start and end in the world's time zone (ISO-8601 with offset) and
/// the URL of each playback format the client knows.
pub fn recording(rec: &Recording, tz: chrono_tz::Tz) -> Value {
    let time = |ms: i64| {
        tz.timestamp_millis_opt(ms)
            .single()
            .map(|t| t.to_rfc3339())
            .map_or(Value::Null, Value::String)
    };
    let url = |kind: &str| {
        rec.formats
            .iter()
            .find(|f| f.kind == kind)
            .map_or(Value::Null, |f| Value::String(f.url.clone()))
    };
    json!({
        "start": time(rec.start_time_ms),
        "end": time(rec.end_time_ms),
        "participants": rec.participants,
        "state": rec.state,
        "url": url("presentation"),
        "url_video": url("video"),
        "url_screenshare": url("screenshare"),
        "url_notes": url("notes"),
    })
}

/// A DM channel: `{"id", "state", "members", "unread_pointer", "next_event_id"}`.
pub fn channel(info: &ChannelInfo) -> Value {
    json!({
        "id": info.id,
        "state": null,
        "members": info.members.iter().map(user).collect::<Vec<_>>(),
        "unread_pointer": 0,
        "next_event_id": info.next_event_id,
    })
}

/// EVENT: one chat event.
pub fn chat_event(event: &ChatEvent) -> Value {
    json!({
        "event_id": event.event_id,
        "channel": event.channel,
        "sender": event.sender,
        "timestamp": event.timestamp,
        "event_type": event.event_type,
        "content": event.content,
        "edited": null,
        "replaces": null,
        "reactions": {},
    })
}
