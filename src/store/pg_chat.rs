//! PostgreSQL side of direct channels, events, calls and conversations: the same semantics
//! as `chat.rs` and `conversations.rs` for SQLite. Writers on other instances are serialised
//! per channel by locking the channel row (`FOR UPDATE`) where ids are assigned.

use deadpool_postgres::GenericClient;
use serde_json::{json, Value};

use super::chat::MEMBER_EVENT;
use super::postgres::{find_user, now, Cached};
use super::{
    Appended, CallRecord, ChannelInfo, ChatEvent, ChatRefusal, ConversationList, DirectChannelOutcome,
    NewContent, PointerRule, StoreResult, UserRecord,
};
use crate::ids::{new_uuid, CallId, ChannelId, UserId, WorldId};

async fn members_of(c: &impl GenericClient, channel: &str) -> StoreResult<Vec<UserId>> {
    Ok(c.cquery(
        "SELECT user_id FROM channel_members WHERE channel_id = $1 ORDER BY user_id",
        &[&channel],
    )
    .await?
    .iter()
    .map(|r| UserId(r.get(0)))
    .collect())
}

async fn next_event_id(c: &impl GenericClient, channel: &str) -> StoreResult<i64> {
    Ok(c.cquery_one(
        "SELECT COALESCE(MAX(event_id), 0) + 1 FROM chat_events WHERE channel_id = $1",
        &[&channel],
    )
    .await?
    .get(0))
}

async fn unread_pointer(c: &impl GenericClient, channel: &str) -> StoreResult<i64> {
    Ok(c.cquery_one(
        "SELECT COALESCE(MAX(event_id), 0) FROM chat_events WHERE channel_id = $1 AND event_type != $2",
        &[&channel, &MEMBER_EVENT],
    )
    .await?
    .get(0))
}

async fn channel_world(c: &impl GenericClient, channel: &str, lock: bool) -> StoreResult<Option<String>> {
    let sql = if lock {
        "SELECT world FROM channels WHERE id = $1 FOR UPDATE"
    } else {
        "SELECT world FROM channels WHERE id = $1"
    };
    Ok(c.cquery_opt(sql, &[&channel]).await?.map(|r| r.get(0)))
}

pub(super) async fn info(c: &impl GenericClient, world: &WorldId, channel: &str) -> StoreResult<ChannelInfo> {
    let mut members = Vec::new();
    for id in members_of(c, channel).await? {
        if let Some(user) = find_user(c, world.as_str(), id.as_str()).await? {
            members.push(user);
        }
    }
    Ok(ChannelInfo {
        id: ChannelId(channel.to_string()),
        members,
        next_event_id: next_event_id(c, channel).await?,
        unread_pointer: unread_pointer(c, channel).await?,
    })
}

fn member_key(members: &[UserId]) -> String {
    let mut ids: Vec<&str> = members.iter().map(UserId::as_str).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.join(",")
}

async fn insert_event(c: &impl GenericClient, event: &ChatEvent) -> StoreResult<()> {
    c.cexecute(
        "INSERT INTO chat_events (channel_id, event_id, sender, timestamp, event_type, content)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &event.channel.as_str(),
            &event.event_id,
            &event.sender.as_str(),
            &event.timestamp,
            &event.event_type,
            &event.content.to_string(),
        ],
    )
    .await?;
    Ok(())
}

/// See `chat::direct_channel`. Two instances creating the same channel at once: the unique
/// (world, member_key) decides; the loser reads the winner's channel.
pub(super) async fn direct_channel(
    c: &mut deadpool_postgres::Object,
    world: &WorldId,
    members: &[UserId],
    caller: &UserId,
    hide: bool,
    member_content: fn(&UserRecord) -> Value,
) -> StoreResult<Result<DirectChannelOutcome, ChatRefusal>> {
    let key = member_key(members);
    if key.split(',').count() < 2 {
        return Ok(Err(ChatRefusal::TooFewMembers));
    }
    let tx = c.transaction().await?;
    let mut records = Vec::new();
    for id in key.split(',') {
        match find_user(&tx, world.as_str(), id).await? {
            Some(user) => records.push(user),
            None => return Ok(Err(ChatRefusal::UnknownUser)),
        }
    }
    let id = new_uuid();
    let at = now();
    let inserted = tx
        .cexecute(
            "INSERT INTO channels (id, world, member_key, created_at, last_activity)
             VALUES ($1, $2, $3, $4, $4) ON CONFLICT (world, member_key) DO NOTHING",
            &[&id, &world.as_str(), &key, &at],
        )
        .await?;
    let (id, created, caller_was_hidden) = if inserted == 1 {
        for (event_id, member) in (1..).zip(&records) {
            let hidden = hide && &member.id != caller;
            tx.cexecute(
                "INSERT INTO channel_members (channel_id, user_id, hidden) VALUES ($1, $2, $3)",
                &[&id, &member.id.as_str(), &hidden],
            )
            .await?;
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
            )
            .await?;
        }
        (id, true, false)
    } else {
        let existing: String = tx
            .cquery_one(
                "SELECT id FROM channels WHERE world = $1 AND member_key = $2",
                &[&world.as_str(), &key],
            )
            .await?
            .get(0);
        let unhidden = tx
            .cexecute(
                "UPDATE channel_members SET hidden = FALSE
                 WHERE channel_id = $1 AND user_id = $2 AND hidden",
                &[&existing, &caller.as_str()],
            )
            .await?;
        (existing, false, unhidden > 0)
    };
    let info = info(&tx, world, &id).await?;
    tx.commit().await?;
    Ok(Ok(DirectChannelOutcome {
        info,
        created,
        caller_was_hidden,
    }))
}

async fn check_member(
    c: &impl GenericClient,
    world: &WorldId,
    channel: &str,
    user: &UserId,
    lock: bool,
) -> StoreResult<Result<Vec<UserId>, ChatRefusal>> {
    if channel_world(c, channel, lock).await?.as_deref() != Some(world.as_str()) {
        return Ok(Err(ChatRefusal::UnknownChannel));
    }
    let members = members_of(c, channel).await?;
    if !members.contains(user) {
        return Ok(Err(ChatRefusal::NotMember));
    }
    Ok(Ok(members))
}

/// See `chat::append`; the channel row is locked so event ids are assigned one writer at a
/// time across instances.
pub(super) async fn append(
    c: &mut deadpool_postgres::Object,
    world: &WorldId,
    channel: &str,
    sender: &UserId,
    event_type: &str,
    content: NewContent,
) -> StoreResult<Result<Appended, ChatRefusal>> {
    let tx = c.transaction().await?;
    let members = match check_member(&tx, world, channel, sender, true).await? {
        Ok(m) => m,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let (content, call) = match content {
        NewContent::Message(content) => (content, None),
        NewContent::Call => {
            let call = CallId(new_uuid());
            tx.cexecute(
                "INSERT INTO calls (id, world, channel_id, created_by, created_at) VALUES ($1, $2, $3, $4, $5)",
                &[&call.as_str(), &world.as_str(), &channel, &sender.as_str(), &now()],
            )
            .await?;
            for user in &members {
                tx.cexecute(
                    "INSERT INTO call_invites (call_id, user_id) VALUES ($1, $2)",
                    &[&call.as_str(), &user.as_str()],
                )
                .await?;
            }
            (
                json!({"type": "call", "body": {"id": call, "type": "bbb"}}),
                Some(call),
            )
        }
    };
    let event = ChatEvent {
        event_id: next_event_id(&tx, channel).await?,
        channel: ChannelId(channel.to_string()),
        sender: sender.clone(),
        timestamp: now(),
        event_type: event_type.to_string(),
        content,
    };
    insert_event(&tx, &event).await?;
    tx.cexecute(
        "UPDATE channels SET last_activity = $1 WHERE id = $2",
        &[&event.timestamp, &channel],
    )
    .await?;
    let unhidden = tx
        .cquery(
            "UPDATE channel_members SET hidden = FALSE WHERE channel_id = $1 AND hidden RETURNING user_id",
            &[&channel],
        )
        .await?
        .iter()
        .map(|r| UserId(r.get(0)))
        .collect();
    let mut recipients = Vec::new();
    for member in members.iter().filter(|m| *m != sender) {
        tx.cexecute(
            "INSERT INTO notifications (user_id, channel_id, event_id) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
            &[&member.as_str(), &channel, &event.event_id],
        )
        .await?;
        let pointer: Option<i64> = tx
            .cquery_opt(
                "SELECT event_id FROM read_pointers WHERE user_id = $1 AND channel_id = $2",
                &[&member.as_str(), &channel],
            )
            .await?
            .map(|r| r.get(0));
        recipients.push((member.clone(), pointer));
    }
    tx.commit().await?;
    Ok(Ok(Appended {
        event,
        members,
        call,
        unhidden,
        recipients,
    }))
}

pub(super) async fn fetch(
    c: &impl GenericClient,
    world: &WorldId,
    channel: &str,
    user: &UserId,
    count: u32,
    before_id: Option<i64>,
) -> StoreResult<Result<Vec<ChatEvent>, ChatRefusal>> {
    if let Err(refusal) = check_member(c, world, channel, user, false).await? {
        return Ok(Err(refusal));
    }
    let mut events: Vec<ChatEvent> = c
        .cquery(
            "SELECT event_id, sender, timestamp, event_type, content FROM chat_events
             WHERE channel_id = $1 AND event_id < $2 ORDER BY event_id DESC LIMIT $3",
            &[&channel, &before_id.unwrap_or(i64::MAX), &i64::from(count)],
        )
        .await?
        .iter()
        .map(|r| {
            let content: String = r.get(4);
            ChatEvent {
                event_id: r.get(0),
                channel: ChannelId(channel.to_string()),
                sender: UserId(r.get(1)),
                timestamp: r.get(2),
                event_type: r.get(3),
                content: serde_json::from_str(&content).unwrap_or(Value::Null),
            }
        })
        .collect();
    events.reverse();
    Ok(Ok(events))
}

pub(super) async fn get_call(
    c: &impl GenericClient,
    world: &WorldId,
    call: &str,
) -> StoreResult<Option<CallRecord>> {
    let Some(row) = c
        .cquery_opt(
            "SELECT channel_id FROM calls WHERE id = $1 AND world = $2",
            &[&call, &world.as_str()],
        )
        .await?
    else {
        return Ok(None);
    };
    let invited = c
        .cquery(
            "SELECT user_id FROM call_invites WHERE call_id = $1 ORDER BY user_id",
            &[&call],
        )
        .await?
        .iter()
        .map(|r| UserId(r.get(0)))
        .collect();
    Ok(Some(CallRecord {
        id: CallId(call.to_string()),
        world: world.clone(),
        channel: ChannelId(row.get(0)),
        invited,
    }))
}

async fn listed_ids(
    c: &impl GenericClient,
    world: &WorldId,
    user: &UserId,
    limit: usize,
) -> StoreResult<Vec<String>> {
    Ok(c.cquery(
        "SELECT c.id FROM channels c JOIN channel_members m ON m.channel_id = c.id
             WHERE m.user_id = $1 AND c.world = $2 AND NOT m.hidden
             ORDER BY c.last_activity DESC, c.id LIMIT $3",
        &[&user.as_str(), &world.as_str(), &(limit as i64)],
    )
    .await?
    .iter()
    .map(|r| r.get(0))
    .collect())
}

async fn pointers_and_counts(
    c: &impl GenericClient,
    user: &UserId,
    ids: &[String],
) -> StoreResult<ConversationList> {
    let mut out = ConversationList::default();
    for row in c
        .cquery(
            "SELECT channel_id, event_id FROM read_pointers WHERE user_id = $1 AND channel_id = ANY($2)",
            &[&user.as_str(), &ids],
        )
        .await?
    {
        out.pointers.insert(ChannelId(row.get(0)), row.get(1));
    }
    for row in c
        .cquery(
            "SELECT channel_id, COUNT(*) FROM notifications WHERE user_id = $1 AND channel_id = ANY($2)
             GROUP BY channel_id",
            &[&user.as_str(), &ids],
        )
        .await?
    {
        let count: i64 = row.get(1);
        if count > 0 {
            out.counts.insert(ChannelId(row.get(0)), count);
        }
    }
    Ok(out)
}

pub(super) async fn list(
    c: &impl GenericClient,
    world: &WorldId,
    user: &UserId,
    limit: usize,
) -> StoreResult<ConversationList> {
    let ids = listed_ids(c, world, user, limit).await?;
    let mut out = pointers_and_counts(c, user, &ids).await?;
    for id in &ids {
        out.channels.push(info(c, world, id).await?);
    }
    Ok(out)
}

pub(super) async fn pointers_and_counts_of(
    c: &impl GenericClient,
    world: &WorldId,
    user: &UserId,
    limit: usize,
) -> StoreResult<ConversationList> {
    let ids = listed_ids(c, world, user, limit).await?;
    pointers_and_counts(c, user, &ids).await
}

pub(super) async fn login(
    c: &impl GenericClient,
    world: &WorldId,
    user: &UserId,
    now_ms: i64,
    limit: usize,
) -> StoreResult<ConversationList> {
    c.cexecute(
        "UPDATE users SET last_login_ms = $1 WHERE id = $2",
        &[&now_ms, &user.as_str()],
    )
    .await?;
    list(c, world, user, limit).await
}

pub(super) async fn subscribe(
    c: &impl GenericClient,
    world: &WorldId,
    channel: &str,
    user: &UserId,
) -> StoreResult<Result<ChannelInfo, ChatRefusal>> {
    if let Err(refusal) = check_member(c, world, channel, user, false).await? {
        return Ok(Err(refusal));
    }
    Ok(Ok(info(c, world, channel).await?))
}

pub(super) async fn exists(c: &impl GenericClient, world: &WorldId, channel: &str) -> StoreResult<bool> {
    Ok(channel_world(c, channel, false).await?.as_deref() == Some(world.as_str()))
}

pub(super) async fn hide(
    c: &impl GenericClient,
    world: &WorldId,
    channel: &str,
    user: &UserId,
) -> StoreResult<Result<(), ChatRefusal>> {
    if let Err(refusal) = check_member(c, world, channel, user, false).await? {
        return Ok(Err(refusal));
    }
    c.cexecute(
        "UPDATE channel_members SET hidden = TRUE WHERE channel_id = $1 AND user_id = $2",
        &[&channel, &user.as_str()],
    )
    .await?;
    Ok(Ok(()))
}

pub(super) async fn mark_read(
    c: &mut deadpool_postgres::Object,
    world: &WorldId,
    channel: &str,
    user: &UserId,
    requested: i64,
    rule: PointerRule,
) -> StoreResult<Result<(), ChatRefusal>> {
    let tx = c.transaction().await?;
    if let Err(refusal) = check_member(&tx, world, channel, user, false).await? {
        return Ok(Err(refusal));
    }
    let highest: i64 = tx
        .cquery_one(
            "SELECT COALESCE(MAX(event_id), 0) FROM chat_events WHERE channel_id = $1",
            &[&channel],
        )
        .await?
        .get(0);
    // The user's pointer row is locked so two sockets on two instances apply the rule in turn.
    let old: Option<i64> = tx
        .cquery_opt(
            "SELECT event_id FROM read_pointers WHERE user_id = $1 AND channel_id = $2 FOR UPDATE",
            &[&user.as_str(), &channel],
        )
        .await?
        .map(|r| r.get(0));
    let pointer = rule(old, requested, highest);
    tx.cexecute(
        "INSERT INTO read_pointers (user_id, channel_id, event_id) VALUES ($1, $2, $3)
         ON CONFLICT (user_id, channel_id) DO UPDATE SET event_id = excluded.event_id",
        &[&user.as_str(), &channel, &pointer],
    )
    .await?;
    tx.cexecute(
        "DELETE FROM notifications WHERE user_id = $1 AND channel_id = $2 AND event_id <= $3",
        &[&user.as_str(), &channel, &requested],
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(()))
}

pub(super) async fn users_by_ids(
    c: &impl GenericClient,
    world: &WorldId,
    ids: &[UserId],
) -> StoreResult<Vec<UserRecord>> {
    let mut found = Vec::new();
    for id in ids {
        if let Some(user) = find_user(c, world.as_str(), id.as_str()).await? {
            found.push(user);
        }
    }
    Ok(found)
}
