//! Direct-message channels (one per member set), their events, and the private calls started
//! in them with the invite list fixed at the start.

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde_json::{json, Value};

use super::users::{self, UserRecord};
use crate::ids::{new_uuid, CallId, ChannelId, UserId, WorldId};

/// Why a chat operation was refused (not a database failure).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChatRefusal {
    UnknownChannel,
    NotMember,
    UnknownUser,
    TooFewMembers,
}

/// A channel with its members, as the client sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelInfo {
    pub id: ChannelId,
    pub members: Vec<UserRecord>,
    pub next_event_id: i64,
}

/// One stored chat event.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatEvent {
    pub event_id: i64,
    pub channel: ChannelId,
    pub sender: UserId,
    pub timestamp: String,
    pub event_type: String,
    pub content: Value,
}

/// What a message carries before it is stored.
#[derive(Clone, Debug, PartialEq)]
pub enum NewContent {
    /// Stored as given.
    Message(Value),
    /// Starts a private call: the stored content names the new call.
    Call,
}

/// A stored event, its channel's members, and the call it started (if any).
#[derive(Clone, Debug, PartialEq)]
pub struct Appended {
    pub event: ChatEvent,
    pub members: Vec<UserId>,
    pub call: Option<CallId>,
}

/// A private call and who was invited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallRecord {
    pub id: CallId,
    pub world: WorldId,
    pub channel: ChannelId,
    pub invited: Vec<UserId>,
}

fn member_key(members: &[UserId]) -> String {
    let mut ids: Vec<&str> = members.iter().map(UserId::as_str).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.join(",")
}

fn members_of(conn: &Connection, channel: &str) -> rusqlite::Result<Vec<UserId>> {
    let mut stmt =
        conn.prepare_cached("SELECT user_id FROM channel_members WHERE channel_id = ?1 ORDER BY user_id")?;
    let rows = stmt.query_map([channel], |r| Ok(UserId(r.get(0)?)))?;
    rows.collect()
}

fn next_event_id(conn: &Connection, channel: &str) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT COALESCE(MAX(event_id), 0) + 1 FROM chat_events WHERE channel_id = ?1")?
        .query_row([channel], |r| r.get(0))
}

fn channel_world(conn: &Connection, channel: &str) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT world FROM channels WHERE id = ?1")?
        .query_row([channel], |r| r.get(0))
        .optional()
}

fn info(conn: &Connection, world: &WorldId, channel: &str) -> rusqlite::Result<ChannelInfo> {
    let mut members = Vec::new();
    for id in members_of(conn, channel)? {
        if let Some(user) = users::find_by_id(conn, world, id.as_str())? {
            members.push(user);
        }
    }
    Ok(ChannelInfo {
        id: ChannelId(channel.to_string()),
        members,
        next_event_id: next_event_id(conn, channel)?,
    })
}

/// The channel of exactly `members` (caller included), created on first use.
pub fn direct_channel(
    conn: &mut Connection,
    world: &WorldId,
    members: &[UserId],
) -> rusqlite::Result<Result<ChannelInfo, ChatRefusal>> {
    let key = member_key(members);
    if key.split(',').count() < 2 {
        return Ok(Err(ChatRefusal::TooFewMembers));
    }
    let tx = conn.transaction()?;
    for id in members {
        if users::find_by_id(&tx, world, id.as_str())?.is_none() {
            return Ok(Err(ChatRefusal::UnknownUser));
        }
    }
    let existing: Option<String> = tx
        .prepare_cached("SELECT id FROM channels WHERE world = ?1 AND member_key = ?2")?
        .query_row(params![world.as_str(), key], |r| r.get(0))
        .optional()?;
    let id = match existing {
        Some(id) => id,
        None => {
            let id = new_uuid();
            tx.prepare_cached(
                "INSERT INTO channels (id, world, member_key, created_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![id, world.as_str(), key, now()])?;
            for member in key.split(',') {
                tx.prepare_cached("INSERT INTO channel_members (channel_id, user_id) VALUES (?1, ?2)")?
                    .execute(params![id, member])?;
            }
            id
        }
    };
    let result = info(&tx, world, &id)?;
    tx.commit()?;
    Ok(Ok(result))
}

/// Every channel `user` is a member of, oldest first.
pub fn channels_of(conn: &Connection, world: &WorldId, user: &UserId) -> rusqlite::Result<Vec<ChannelInfo>> {
    let ids: Vec<String> = conn
        .prepare_cached(
            "SELECT c.id FROM channels c JOIN channel_members m ON m.channel_id = c.id
             WHERE m.user_id = ?1 AND c.world = ?2 ORDER BY c.created_at, c.id",
        )?
        .query_map(params![user.as_str(), world.as_str()], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    ids.iter().map(|id| info(conn, world, id)).collect()
}

fn check_member(
    conn: &Connection,
    world: &WorldId,
    channel: &str,
    user: &UserId,
) -> rusqlite::Result<Result<Vec<UserId>, ChatRefusal>> {
    if channel_world(conn, channel)?.as_deref() != Some(world.as_str()) {
        return Ok(Err(ChatRefusal::UnknownChannel));
    }
    let members = members_of(conn, channel)?;
    if !members.contains(user) {
        return Ok(Err(ChatRefusal::NotMember));
    }
    Ok(Ok(members))
}

/// Stores an event from `sender`; a call message also creates the call with the channel's
/// current members as its invite list, in the same transaction.
pub fn append(
    conn: &mut Connection,
    world: &WorldId,
    channel: &str,
    sender: &UserId,
    event_type: &str,
    content: NewContent,
) -> rusqlite::Result<Result<Appended, ChatRefusal>> {
    let tx = conn.transaction()?;
    let members = match check_member(&tx, world, channel, sender)? {
        Ok(m) => m,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let (content, call) = match content {
        NewContent::Message(content) => (content, None),
        NewContent::Call => {
            let call = CallId(new_uuid());
            create_call(&tx, world, channel, &call, sender, &members)?;
            (
                json!({"type": "call", "body": {"id": call, "type": "bbb"}}),
                Some(call),
            )
        }
    };
    let event = ChatEvent {
        event_id: next_event_id(&tx, channel)?,
        channel: ChannelId(channel.to_string()),
        sender: sender.clone(),
        timestamp: now(),
        event_type: event_type.to_string(),
        content,
    };
    tx.prepare_cached(
        "INSERT INTO chat_events (channel_id, event_id, sender, timestamp, event_type, content)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        channel,
        event.event_id,
        sender.as_str(),
        event.timestamp,
        event.event_type,
        event.content.to_string()
    ])?;
    tx.commit()?;
    Ok(Ok(Appended { event, members, call }))
}

fn create_call(
    tx: &Transaction<'_>,
    world: &WorldId,
    channel: &str,
    call: &CallId,
    by: &UserId,
    invited: &[UserId],
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO calls (id, world, channel_id, created_by, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        call.as_str(),
        world.as_str(),
        channel,
        by.as_str(),
        now()
    ])?;
    for user in invited {
        tx.prepare_cached("INSERT INTO call_invites (call_id, user_id) VALUES (?1, ?2)")?
            .execute(params![call.as_str(), user.as_str()])?;
    }
    Ok(())
}

/// Up to `count` events before `before_id` (or the newest), oldest first.
pub fn fetch(
    conn: &Connection,
    world: &WorldId,
    channel: &str,
    user: &UserId,
    count: u32,
    before_id: Option<i64>,
) -> rusqlite::Result<Result<Vec<ChatEvent>, ChatRefusal>> {
    if let Err(refusal) = check_member(conn, world, channel, user)? {
        return Ok(Err(refusal));
    }
    let mut stmt = conn.prepare_cached(
        "SELECT event_id, sender, timestamp, event_type, content FROM chat_events
         WHERE channel_id = ?1 AND event_id < ?2 ORDER BY event_id DESC LIMIT ?3",
    )?;
    let mut events = stmt
        .query_map(params![channel, before_id.unwrap_or(i64::MAX), count], |r| {
            let content: String = r.get(4)?;
            Ok(ChatEvent {
                event_id: r.get(0)?,
                channel: ChannelId(channel.to_string()),
                sender: UserId(r.get(1)?),
                timestamp: r.get(2)?,
                event_type: r.get(3)?,
                content: serde_json::from_str(&content).unwrap_or(Value::Null),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    events.reverse();
    Ok(Ok(events))
}

/// A call of `world` with its invite list.
pub fn call(conn: &Connection, world: &WorldId, call: &str) -> rusqlite::Result<Option<CallRecord>> {
    let channel: Option<String> = conn
        .prepare_cached("SELECT channel_id FROM calls WHERE id = ?1 AND world = ?2")?
        .query_row(params![call, world.as_str()], |r| r.get(0))
        .optional()?;
    let Some(channel) = channel else { return Ok(None) };
    let invited = conn
        .prepare_cached("SELECT user_id FROM call_invites WHERE call_id = ?1 ORDER BY user_id")?
        .query_map([call], |r| Ok(UserId(r.get(0)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Some(CallRecord {
        id: CallId(call.to_string()),
        world: world.clone(),
        channel: ChannelId(channel),
        invited,
    }))
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
