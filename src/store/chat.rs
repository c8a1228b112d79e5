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

/// The event type of the stored member events (never counted for U, notifications or pushes).
pub const MEMBER_EVENT: &str = "channel.member";

/// A channel with its members, as the client sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelInfo {
    pub id: ChannelId,
    /// Every member (hidden ones included), in member order (by id).
    pub members: Vec<UserRecord>,
    pub next_event_id: i64,
    /// U: the highest event id that is not a member event; 0 when there is none.
    pub unread_pointer: i64,
}

/// What `chat.direct.create` did.
#[derive(Clone, Debug, PartialEq)]
pub struct DirectChannelOutcome {
    pub info: ChannelInfo,
    /// The channel did not exist before.
    pub created: bool,
    /// The channel existed and the caller had hidden it (now visible again).
    pub caller_was_hidden: bool,
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
    /// Members whose hidden membership this event made visible.
    pub unhidden: Vec<UserId>,
    /// For every member other than the sender (each now holds a notification for the event):
    /// their read pointer for the channel after the event was stored.
    pub recipients: Vec<(UserId, Option<i64>)>,
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

pub(super) fn members_of(conn: &Connection, channel: &str) -> rusqlite::Result<Vec<UserId>> {
    let mut stmt =
        conn.prepare_cached("SELECT user_id FROM channel_members WHERE channel_id = ?1 ORDER BY user_id")?;
    let rows = stmt.query_map([channel], |r| Ok(UserId(r.get(0)?)))?;
    rows.collect()
}

fn next_event_id(conn: &Connection, channel: &str) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT COALESCE(MAX(event_id), 0) + 1 FROM chat_events WHERE channel_id = ?1")?
        .query_row([channel], |r| r.get(0))
}

pub(super) fn unread_pointer(conn: &Connection, channel: &str) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "SELECT COALESCE(MAX(event_id), 0) FROM chat_events WHERE channel_id = ?1 AND event_type != ?2",
    )?
    .query_row(params![channel, MEMBER_EVENT], |r| r.get(0))
}

pub(super) fn channel_world(conn: &Connection, channel: &str) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT world FROM channels WHERE id = ?1")?
        .query_row([channel], |r| r.get(0))
        .optional()
}

pub(super) fn info(conn: &Connection, world: &WorldId, channel: &str) -> rusqlite::Result<ChannelInfo> {
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
        unread_pointer: unread_pointer(conn, channel)?,
    })
}

/// Like [`info`], with the members' profiles cut to `display_name` and `avatar` in SQL, so a
/// conversation list never loads whole profiles (100 channels × 50 members × 16 KiB would be
/// 80 MB per login).
pub(super) fn info_listed(
    conn: &Connection,
    world: &WorldId,
    channel: &str,
) -> rusqlite::Result<ChannelInfo> {
    let mut stmt = conn.prepare_cached(
        "SELECT u.id, u.profile -> '$.display_name', u.profile -> '$.avatar', u.last_login_ms
         FROM channel_members m JOIN users u ON u.id = m.user_id
         WHERE m.channel_id = ?1 AND u.world = ?2 ORDER BY m.user_id",
    )?;
    let members = stmt
        .query_map(params![channel, world.as_str()], |r| {
            let mut profile = serde_json::Map::new();
            for (index, key) in [(1, "display_name"), (2, "avatar")] {
                let text: Option<String> = r.get(index)?;
                if let Some(value) = text.and_then(|t| serde_json::from_str(&t).ok()) {
                    profile.insert(key.to_string(), value);
                }
            }
            Ok(UserRecord {
                id: UserId(r.get(0)?),
                world: world.clone(),
                token_uid: None,
                traits: Vec::new(),
                profile: Value::Object(profile),
                moderation: Default::default(),
                last_login_ms: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(ChannelInfo {
        id: ChannelId(channel.to_string()),
        members,
        next_event_id: next_event_id(conn, channel)?,
        unread_pointer: unread_pointer(conn, channel)?,
    })
}

/// The channel of exactly `members` (caller included), created on first use. A new channel's
/// members other than the caller get a hidden membership when `hide`; every member gets one
/// stored member event (content from `member_content`), in member order. The caller's
/// membership is visible afterwards in every case.
pub fn direct_channel(
    conn: &mut Connection,
    world: &WorldId,
    members: &[UserId],
    caller: &UserId,
    hide: bool,
    member_content: fn(&UserRecord) -> Value,
) -> rusqlite::Result<Result<DirectChannelOutcome, ChatRefusal>> {
    let key = member_key(members);
    if key.split(',').count() < 2 {
        return Ok(Err(ChatRefusal::TooFewMembers));
    }
    let tx = super::write_transaction(conn)?;
    let mut records = Vec::new();
    for id in key.split(',') {
        match users::find_by_id(&tx, world, id)? {
            Some(user) => records.push(user),
            None => return Ok(Err(ChatRefusal::UnknownUser)),
        }
    }
    let existing: Option<String> = tx
        .prepare_cached("SELECT id FROM channels WHERE world = ?1 AND member_key = ?2")?
        .query_row(params![world.as_str(), key], |r| r.get(0))
        .optional()?;
    let (id, created, caller_was_hidden) = match existing {
        Some(id) => {
            let unhidden = tx
                .prepare_cached(
                    "UPDATE channel_members SET hidden = 0
                     WHERE channel_id = ?1 AND user_id = ?2 AND hidden = 1",
                )?
                .execute(params![id, caller.as_str()])?;
            (id, false, unhidden > 0)
        }
        None => {
            let id = new_uuid();
            let at = now();
            tx.prepare_cached(
                "INSERT INTO channels (id, world, member_key, created_at, last_activity)
                 VALUES (?1, ?2, ?3, ?4, ?4)",
            )?
            .execute(params![id, world.as_str(), key, at])?;
            for (event_id, member) in (1..).zip(&records) {
                let hidden = hide && &member.id != caller;
                tx.prepare_cached(
                    "INSERT INTO channel_members (channel_id, user_id, hidden) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![id, member.id.as_str(), hidden])?;
                insert_event(
                    &tx,
                    &ChatEvent {
                        event_id,
                        channel: ChannelId(id.clone()),
                        sender: member.id.clone(),
                        timestamp: at.clone(),
                        event_type: MEMBER_EVENT.into(),
                        content: json!({"membership": "join", "user": member_content(member)}),
                    },
                )?;
            }
            (id, true, false)
        }
    };
    let info = info(&tx, world, &id)?;
    tx.commit()?;
    Ok(Ok(DirectChannelOutcome {
        info,
        created,
        caller_was_hidden,
    }))
}

fn insert_event(conn: &Connection, event: &ChatEvent) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO chat_events (channel_id, event_id, sender, timestamp, event_type, content)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        event.channel.as_str(),
        event.event_id,
        event.sender.as_str(),
        event.timestamp,
        event.event_type,
        event.content.to_string()
    ])?;
    Ok(())
}

pub(super) fn check_member(
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
/// current members as its invite list, in the same transaction. In that transaction too: hidden
/// memberships become visible, and every other member gets a notification for the event.
pub fn append(
    conn: &mut Connection,
    world: &WorldId,
    channel: &str,
    sender: &UserId,
    event_type: &str,
    content: NewContent,
) -> rusqlite::Result<Result<Appended, ChatRefusal>> {
    let tx = super::write_transaction(conn)?;
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
    insert_event(&tx, &event)?;
    tx.prepare_cached("UPDATE channels SET last_activity = ?1 WHERE id = ?2")?
        .execute(params![event.timestamp, channel])?;
    let unhidden = tx
        .prepare_cached(
            "UPDATE channel_members SET hidden = 0 WHERE channel_id = ?1 AND hidden = 1 RETURNING user_id",
        )?
        .query_map([channel], |r| Ok(UserId(r.get(0)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut recipients = Vec::new();
    for member in members.iter().filter(|m| *m != sender) {
        tx.prepare_cached(
            "INSERT OR IGNORE INTO notifications (user_id, channel_id, event_id) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![member.as_str(), channel, event.event_id])?;
        let pointer: Option<i64> = tx
            .prepare_cached("SELECT event_id FROM read_pointers WHERE user_id = ?1 AND channel_id = ?2")?
            .query_row(params![member.as_str(), channel], |r| r.get(0))
            .optional()?;
        recipients.push((member.clone(), pointer));
    }
    tx.commit()?;
    Ok(Ok(Appended {
        event,
        members,
        call,
        unhidden,
        recipients,
    }))
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
