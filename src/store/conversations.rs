//! The per-user side of direct conversations: which memberships are visible, read pointers,
//! notifications, the conversation list of `authenticated`/`chat.channels`, and lookups of
//! users by id and by name for `user.fetch`/`user.list.search`.

use std::collections::BTreeMap;

use rusqlite::{params, Connection, OptionalExtension};

use super::chat::{channel_world, check_member, info, info_listed, ChannelInfo, ChatRefusal};
use super::users::{self, UserRecord};
use crate::ids::{ChannelId, UserId, WorldId};

/// A user's conversation list with the pointers and counts over exactly the listed channels.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConversationList {
    /// Visible memberships, most recently active first.
    pub channels: Vec<ChannelInfo>,
    /// POINTERS: channel → read pointer (channels with a stored pointer only).
    pub pointers: BTreeMap<ChannelId, i64>,
    /// COUNTS: channel → number of notifications (only counts ≥ 1).
    pub counts: BTreeMap<ChannelId, i64>,
}

/// The `limit` most recently active channels in which `user` has a visible membership.
pub fn list(
    conn: &Connection,
    world: &WorldId,
    user: &UserId,
    limit: usize,
) -> rusqlite::Result<ConversationList> {
    let ids = listed_ids(conn, world, user, limit)?;
    let mut out = pointers_and_counts(conn, user, &ids)?;
    for id in &ids {
        out.channels.push(info_listed(conn, world, id)?);
    }
    Ok(out)
}

/// POINTERS and COUNTS over the same channels as [`list`], without the channels themselves
/// (what `chat.mark_read` pushes; cheaper than the whole list).
pub fn pointers_and_counts_of(
    conn: &Connection,
    world: &WorldId,
    user: &UserId,
    limit: usize,
) -> rusqlite::Result<ConversationList> {
    let ids = listed_ids(conn, world, user, limit)?;
    pointers_and_counts(conn, user, &ids)
}

fn listed_ids(
    conn: &Connection,
    world: &WorldId,
    user: &UserId,
    limit: usize,
) -> rusqlite::Result<Vec<String>> {
    conn.prepare_cached(
        "SELECT c.id FROM channels c JOIN channel_members m ON m.channel_id = c.id
             WHERE m.user_id = ?1 AND c.world = ?2 AND m.hidden = 0
             ORDER BY c.last_activity DESC, c.id LIMIT ?3",
    )?
    .query_map(params![user.as_str(), world.as_str(), limit as i64], |r| r.get(0))?
    .collect()
}

fn pointers_and_counts(
    conn: &Connection,
    user: &UserId,
    ids: &[String],
) -> rusqlite::Result<ConversationList> {
    let mut out = ConversationList::default();
    let listed = |c: &String| ids.contains(c);
    let mut stmt =
        conn.prepare_cached("SELECT channel_id, event_id FROM read_pointers WHERE user_id = ?1")?;
    for row in stmt.query_map([user.as_str()], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    })? {
        let (channel, pointer) = row?;
        if listed(&channel) {
            out.pointers.insert(ChannelId(channel), pointer);
        }
    }
    let mut stmt = conn.prepare_cached(
        "SELECT channel_id, COUNT(*) FROM notifications WHERE user_id = ?1 GROUP BY channel_id",
    )?;
    for row in stmt.query_map([user.as_str()], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    })? {
        let (channel, count) = row?;
        if count > 0 && listed(&channel) {
            out.counts.insert(ChannelId(channel), count);
        }
    }
    Ok(out)
}

/// Records a successful authenticate and returns the user's conversation list.
pub fn login(
    conn: &Connection,
    world: &WorldId,
    user: &UserId,
    now_ms: i64,
    limit: usize,
) -> rusqlite::Result<ConversationList> {
    users::record_login(conn, user, now_ms)?;
    list(conn, world, user, limit)
}

/// `chat.subscribe`: the channel with every member, for members only.
pub fn subscribe(
    conn: &Connection,
    world: &WorldId,
    channel: &str,
    user: &UserId,
) -> rusqlite::Result<Result<ChannelInfo, ChatRefusal>> {
    if let Err(refusal) = check_member(conn, world, channel, user)? {
        return Ok(Err(refusal));
    }
    Ok(Ok(info(conn, world, channel)?))
}

/// Whether `channel` is a direct channel of `world`.
pub fn exists(conn: &Connection, world: &WorldId, channel: &str) -> rusqlite::Result<bool> {
    Ok(channel_world(conn, channel)?.as_deref() == Some(world.as_str()))
}

/// `chat.leave`: the member's membership becomes hidden (history, invites stay).
pub fn hide(
    conn: &Connection,
    world: &WorldId,
    channel: &str,
    user: &UserId,
) -> rusqlite::Result<Result<(), ChatRefusal>> {
    if let Err(refusal) = check_member(conn, world, channel, user)? {
        return Ok(Err(refusal));
    }
    conn.prepare_cached("UPDATE channel_members SET hidden = 1 WHERE channel_id = ?1 AND user_id = ?2")?
        .execute(params![channel, user.as_str()])?;
    Ok(Ok(()))
}

/// The rule for a new read pointer: (old pointer, requested id, highest event id) → pointer.
pub type PointerRule = fn(Option<i64>, i64, i64) -> i64;

/// `chat.mark_read`, in one transaction: the read pointer becomes
/// `rule(old, requested, highest event id)`, notifications up to `requested` are deleted.
pub fn mark_read(
    conn: &mut Connection,
    world: &WorldId,
    channel: &str,
    user: &UserId,
    requested: i64,
    rule: PointerRule,
) -> rusqlite::Result<Result<(), ChatRefusal>> {
    let tx = super::write_transaction(conn)?;
    if let Err(refusal) = check_member(&tx, world, channel, user)? {
        return Ok(Err(refusal));
    }
    let highest: i64 = tx
        .prepare_cached("SELECT COALESCE(MAX(event_id), 0) FROM chat_events WHERE channel_id = ?1")?
        .query_row([channel], |r| r.get(0))?;
    let old: Option<i64> = tx
        .prepare_cached("SELECT event_id FROM read_pointers WHERE user_id = ?1 AND channel_id = ?2")?
        .query_row(params![user.as_str(), channel], |r| r.get(0))
        .optional()?;
    let pointer = rule(old, requested, highest);
    tx.prepare_cached(
        "INSERT INTO read_pointers (user_id, channel_id, event_id) VALUES (?1, ?2, ?3)
         ON CONFLICT (user_id, channel_id) DO UPDATE SET event_id = excluded.event_id",
    )?
    .execute(params![user.as_str(), channel, pointer])?;
    tx.prepare_cached("DELETE FROM notifications WHERE user_id = ?1 AND channel_id = ?2 AND event_id <= ?3")?
        .execute(params![user.as_str(), channel, requested])?;
    tx.commit()?;
    Ok(Ok(()))
}

/// The users of `world` among `ids` (unknown ids left out), in the order asked.
pub fn users_by_ids(conn: &Connection, world: &WorldId, ids: &[UserId]) -> rusqlite::Result<Vec<UserRecord>> {
    let mut found = Vec::new();
    for id in ids {
        if let Some(user) = users::find_by_id(conn, world, id.as_str())? {
            found.push(user);
        }
    }
    Ok(found)
}
