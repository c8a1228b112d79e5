//! User rows: find-or-create on login, profiles, traits, moderation, explicit role grants.

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::Value;

use crate::ids::{new_uuid, RoomId, UserId, WorldId};
use serde::{Deserialize, Serialize};

/// A user's moderation state, set by an operator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Moderation {
    #[default]
    None,
    Silenced,
    Banned,
}

impl Moderation {
    pub fn as_str(self) -> &'static str {
        match self {
            Moderation::None => "none",
            Moderation::Silenced => "silenced",
            Moderation::Banned => "banned",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Moderation::None),
            "silenced" => Some(Moderation::Silenced),
            "banned" => Some(Moderation::Banned),
            _ => None,
        }
    }
}

/// How a login identifies its user inside a world.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoginKey {
    /// The JWT `uid` claim.
    Token(String),
    /// An anonymous browser's client id.
    Client(String),
}

/// A stored user.
#[derive(Clone, Debug, PartialEq)]
pub struct UserRecord {
    pub id: UserId,
    pub world: WorldId,
    pub token_uid: Option<String>,
    pub traits: Vec<String>,
    pub profile: Value,
    pub moderation: Moderation,
    /// When the user last authenticated (Unix ms); `None` before the first recorded login.
    pub last_login_ms: Option<i64>,
}

const COLUMNS: &str = "id, world, token_uid, traits, profile, moderation, last_login_ms";

fn from_row(row: &Row<'_>) -> rusqlite::Result<UserRecord> {
    let traits: String = row.get(3)?;
    let profile: String = row.get(4)?;
    let moderation: String = row.get(5)?;
    Ok(UserRecord {
        id: UserId(row.get(0)?),
        world: WorldId(row.get(1)?),
        token_uid: row.get(2)?,
        traits: serde_json::from_str(&traits).unwrap_or_default(),
        profile: serde_json::from_str(&profile).unwrap_or_else(|_| Value::Object(Default::default())),
        moderation: Moderation::parse(&moderation).unwrap_or_default(),
        last_login_ms: row.get(6)?,
    })
}

pub fn find_by_key(
    conn: &Connection,
    world: &WorldId,
    key: &LoginKey,
) -> rusqlite::Result<Option<UserRecord>> {
    let (sql, value) = match key {
        LoginKey::Token(uid) => ("token_uid", uid),
        LoginKey::Client(cid) => ("client_id", cid),
    };
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM users WHERE world = ?1 AND {sql} = ?2"
    ))?
    .query_row(params![world.as_str(), value], from_row)
    .optional()
}

pub fn find_by_id(conn: &Connection, world: &WorldId, id: &str) -> rusqlite::Result<Option<UserRecord>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM users WHERE world = ?1 AND id = ?2"
    ))?
    .query_row(params![world.as_str(), id], from_row)
    .optional()
}

/// Finds the user for `key`; replaces its traits when the login carries traits. Creates it
/// (with `profile`) when missing and `may_create`. Returns `None` when missing and not created.
pub fn login(
    conn: &mut Connection,
    world: &WorldId,
    key: &LoginKey,
    traits: Option<&[String]>,
    profile: Option<&Value>,
    may_create: bool,
) -> rusqlite::Result<Option<UserRecord>> {
    let tx = super::write_transaction(conn)?;
    let existing = find_by_key(&tx, world, key)?;
    let user = match existing {
        Some(mut user) => {
            if let Some(traits) = traits {
                if user.traits != traits {
                    tx.prepare_cached("UPDATE users SET traits = ?1 WHERE id = ?2")?
                        .execute(params![json(traits), user.id.as_str()])?;
                    user.traits = traits.to_vec();
                }
            }
            Some(user)
        }
        None if may_create => {
            let (token_uid, client_id) = match key {
                LoginKey::Token(uid) => (Some(uid.as_str()), None),
                LoginKey::Client(cid) => (None, Some(cid.as_str())),
            };
            let id = new_uuid();
            let traits = traits.map(<[String]>::to_vec).unwrap_or_default();
            let profile = profile
                .cloned()
                .unwrap_or_else(|| Value::Object(Default::default()));
            tx.prepare_cached(
                "INSERT INTO users (id, world, token_uid, client_id, traits, profile, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                id,
                world.as_str(),
                token_uid,
                client_id,
                json(&traits),
                profile.to_string(),
                chrono::Utc::now().to_rfc3339()
            ])?;
            Some(UserRecord {
                id: UserId(id),
                world: world.clone(),
                token_uid: token_uid.map(str::to_string),
                traits,
                profile,
                moderation: Moderation::None,
                last_login_ms: None,
            })
        }
        None => None,
    };
    tx.commit()?;
    Ok(user)
}

pub fn update_profile(
    conn: &Connection,
    world: &WorldId,
    id: &UserId,
    profile: &Value,
) -> rusqlite::Result<Option<UserRecord>> {
    let changed = conn
        .prepare_cached("UPDATE users SET profile = ?1 WHERE world = ?2 AND id = ?3")?
        .execute(params![profile.to_string(), world.as_str(), id.as_str()])?;
    if changed == 0 {
        return Ok(None);
    }
    find_by_id(conn, world, id.as_str())
}

pub fn set_moderation(
    conn: &Connection,
    world: &WorldId,
    id: &str,
    state: Moderation,
) -> rusqlite::Result<Option<UserRecord>> {
    let changed = conn
        .prepare_cached("UPDATE users SET moderation = ?1 WHERE world = ?2 AND id = ?3")?
        .execute(params![state.as_str(), world.as_str(), id])?;
    if changed == 0 {
        return Ok(None);
    }
    find_by_id(conn, world, id)
}

/// A user whose last authenticate is older than this is `inactive` (venueless rule, SPEC 4.6.1).
pub const INACTIVE_AFTER_MS: i64 = 36 * 60 * 60 * 1000;

/// Whether a user who last authenticated at `last_login_ms` counts as inactive at `now_ms`
/// (no recorded login: inactive, as venueless does).
pub fn is_inactive(last_login_ms: Option<i64>, now_ms: i64) -> bool {
    match last_login_ms {
        Some(at) => at < now_ms.saturating_sub(INACTIVE_AFTER_MS),
        None => true,
    }
}

/// Records a successful authenticate at `now_ms` (the inactive rule reads it).
pub fn record_login(conn: &Connection, id: &UserId, now_ms: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE users SET last_login_ms = ?1 WHERE id = ?2")?
        .execute(params![now_ms, id.as_str()])?;
    Ok(())
}

/// A person `user.list.search` may list: only what a search shows, so a search never parses
/// whole profiles.
#[derive(Clone, Debug, PartialEq)]
pub struct Searchable {
    pub id: UserId,
    /// Non-empty.
    pub display_name: String,
    /// The profile's `avatar` when it has that key.
    pub avatar: Option<Value>,
    pub last_login_ms: Option<i64>,
}

/// Every user of `world` who is not banned and has a non-empty display name.
pub fn searchable(conn: &Connection, world: &WorldId) -> rusqlite::Result<Vec<Searchable>> {
    conn.prepare_cached(
        "SELECT id, json_extract(profile, '$.display_name'), json_type(profile, '$.avatar'),
                json_extract(profile, '$.avatar'), last_login_ms
         FROM users
         WHERE world = ?1 AND moderation != 'banned' AND json_valid(profile)
           AND json_type(profile, '$.display_name') = 'text'
           AND json_extract(profile, '$.display_name') != ''",
    )?
    .query_map(params![world.as_str()], |row| {
        let avatar_type: Option<String> = row.get(2)?;
        let avatar = match avatar_type.as_deref() {
            None => None,
            Some("null") => Some(Value::Null),
            Some("text") => Some(Value::String(row.get(3)?)),
            Some(_) => {
                let text: String = row.get(3)?;
                Some(serde_json::from_str(&text).unwrap_or(Value::Null))
            }
        };
        Ok(Searchable {
            id: UserId(row.get(0)?),
            display_name: row.get(1)?,
            avatar,
            last_login_ms: row.get(4)?,
        })
    })?
    .collect()
}

/// Every user whose moderation state is not `none`.
pub fn moderated(conn: &Connection) -> rusqlite::Result<Vec<(WorldId, UserId, Moderation)>> {
    let mut stmt =
        conn.prepare_cached("SELECT world, id, moderation FROM users WHERE moderation != 'none'")?;
    let rows = stmt.query_map([], |row| {
        let m: String = row.get(2)?;
        Ok((
            WorldId(row.get(0)?),
            UserId(row.get(1)?),
            Moderation::parse(&m).unwrap_or_default(),
        ))
    })?;
    rows.collect()
}

/// One explicit role grant stored in the database (`room` None = world-wide).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredGrant {
    pub world: WorldId,
    pub user: UserId,
    pub role: String,
    pub room: Option<RoomId>,
}

pub fn role_grants(conn: &Connection) -> rusqlite::Result<Vec<StoredGrant>> {
    let mut stmt = conn.prepare_cached("SELECT world, user_id, role, room FROM role_grants")?;
    let rows = stmt.query_map([], |row| {
        let room: String = row.get(3)?;
        Ok(StoredGrant {
            world: WorldId(row.get(0)?),
            user: UserId(row.get(1)?),
            role: row.get(2)?,
            room: (!room.is_empty()).then_some(RoomId(room)),
        })
    })?;
    rows.collect()
}

pub fn add_role_grant(conn: &Connection, grant: &StoredGrant) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO role_grants (world, user_id, role, room) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        grant.world.as_str(),
        grant.user.as_str(),
        grant.role,
        grant.room.as_ref().map(RoomId::as_str).unwrap_or("")
    ])?;
    Ok(())
}

fn json(traits: &[String]) -> String {
    serde_json::to_string(traits).unwrap_or_else(|_| "[]".into())
}
