//! The SQLite store: a `SyncArbiter` actor on its own thread, so blocking database work never
//! runs on an event loop. Every other actor reaches the database only through its messages.

pub mod chat;
pub mod meetings;
pub mod schema;
pub mod users;

use std::path::Path;
use std::sync::{Arc, Mutex};

use actix::prelude::*;
use rusqlite::Connection;
use serde_json::Value;

use crate::ids::{ServerId, UserId, WorldId};

use crate::permissions::rules::Moderation;
pub use chat::{Appended, CallRecord, ChannelInfo, ChatEvent, ChatRefusal, NewContent};
pub use meetings::MeetingRecord;
pub use users::{LoginKey, StoredGrant, UserRecord};

/// A failed database operation; the text is for logs (it holds no secrets).
#[derive(Debug, Clone)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "store: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(e.to_string())
    }
}

impl From<StoreError> for crate::error::Error {
    fn from(e: StoreError) -> Self {
        log::error!("{e}");
        crate::error::Error::Fatal
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Opens (creating parent directories and the file) and migrates the database.
/// Blocking: call it from a blocking context (startup uses `spawn_blocking`).
pub fn open(path: &Path) -> StoreResult<Connection> {
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent)
                .map_err(|e| StoreError(format!("cannot create {}: {e}", parent.display())))?;
        }
    }
    let mut conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    schema::migrate(&mut conn)?;
    Ok(conn)
}

/// Owns the one SQLite connection.
pub struct StoreActor {
    conn: Connection,
}

impl Actor for StoreActor {
    type Context = SyncContext<Self>;
}

impl StoreActor {
    /// Starts the store on its own thread with an opened connection.
    pub fn start(conn: Connection) -> Addr<StoreActor> {
        let slot = Arc::new(Mutex::new(Some(conn)));
        SyncArbiter::start(1, move || {
            let conn = slot
                .lock()
                .ok()
                .and_then(|mut c| c.take())
                .or_else(|| Connection::open_in_memory().ok());
            match conn {
                Some(conn) => StoreActor { conn },
                // Only reachable if SQLite cannot even open an in-memory database.
                None => panic!("store: no database connection"),
            }
        })
    }
}

macro_rules! store_message {
    ($(#[$meta:meta])* $name:ident { $($field:ident : $ty:ty),* $(,)? } -> $ret:ty, |$this:ident, $msg:ident| $body:expr) => {
        $(#[$meta])*
        #[derive(Debug)]
        pub struct $name { $(pub $field: $ty),* }

        impl Message for $name {
            type Result = StoreResult<$ret>;
        }

        impl Handler<$name> for StoreActor {
            type Result = StoreResult<$ret>;

            fn handle(&mut self, $msg: $name, _: &mut SyncContext<Self>) -> Self::Result {
                let $this = self;
                $body
            }
        }
    };
}

store_message!(
    /// Sent by a session on `authenticate`: find (and maybe create) the user. `None` when the
    /// user does not exist and `may_create` is false.
    LoginUser { world: WorldId, key: LoginKey, traits: Option<Vec<String>>, profile: Option<Value>, may_create: bool }
        -> Option<UserRecord>,
    |this, msg| Ok(users::login(&mut this.conn, &msg.world, &msg.key, msg.traits.as_deref(), msg.profile.as_ref(), msg.may_create)?)
);

store_message!(
    /// Sent by a session (`user.fetch`) and the admin API: one user of a world by id.
    GetUser { world: WorldId, id: String } -> Option<UserRecord>,
    |this, msg| Ok(users::find_by_id(&this.conn, &msg.world, &msg.id)?)
);

store_message!(
    /// Sent by a session on `user.update`: replaces the profile; returns the updated user.
    UpdateProfile { world: WorldId, id: UserId, profile: Value } -> Option<UserRecord>,
    |this, msg| Ok(users::update_profile(&this.conn, &msg.world, &msg.id, &msg.profile)?)
);

store_message!(
    /// Sent by `PermissionActor` when an operator changes a user's moderation state.
    SetModeration { world: WorldId, id: String, state: Moderation } -> Option<UserRecord>,
    |this, msg| Ok(users::set_moderation(&this.conn, &msg.world, &msg.id, msg.state)?)
);

store_message!(
    /// Sent by `PermissionActor` at start: every moderated user.
    LoadModeration {} -> Vec<(WorldId, UserId, Moderation)>,
    |this, _msg| Ok(users::moderated(&this.conn)?)
);

store_message!(
    /// Sent by `PermissionActor` at start: explicit role grants stored in the database.
    LoadRoleGrants {} -> Vec<StoredGrant>,
    |this, _msg| Ok(users::role_grants(&this.conn)?)
);

store_message!(
    /// Sent by `BbbBalancer` when a meeting record is created or moves to another server.
    SaveMeeting { record: MeetingRecord } -> (),
    |this, msg| Ok(meetings::save(&this.conn, &msg.record)?)
);

store_message!(
    /// Sent by `BbbBalancer` at start: every meeting record.
    LoadMeetings {} -> Vec<MeetingRecord>,
    |this, _msg| Ok(meetings::all(&this.conn)?)
);

store_message!(
    /// Sent by `BbbBalancer` when an operator disables or enables a server.
    SaveServerOverride { server: ServerId, active: bool } -> (),
    |this, msg| Ok(meetings::set_server_override(&this.conn, &msg.server, msg.active)?)
);

store_message!(
    /// Sent by `BbbBalancer` at start: runtime enable/disable overrides.
    LoadServerOverrides {} -> Vec<(ServerId, bool)>,
    |this, _msg| Ok(meetings::server_overrides(&this.conn)?)
);

store_message!(
    /// Sent by a session on `chat.direct.create`: the channel of exactly these members.
    DirectChannel { world: WorldId, members: Vec<UserId> } -> Result<ChannelInfo, ChatRefusal>,
    |this, msg| Ok(chat::direct_channel(&mut this.conn, &msg.world, &msg.members)?)
);

store_message!(
    /// Sent by a session after login: the user's channels for `chat.channels`.
    ChannelsOf { world: WorldId, user: UserId } -> Vec<ChannelInfo>,
    |this, msg| Ok(chat::channels_of(&this.conn, &msg.world, &msg.user)?)
);

store_message!(
    /// Sent by a session on `chat.send`: store the event (and the call it starts).
    AppendEvent { world: WorldId, channel: String, sender: UserId, event_type: String, content: NewContent }
        -> Result<Appended, ChatRefusal>,
    |this, msg| Ok(chat::append(&mut this.conn, &msg.world, &msg.channel, &msg.sender, &msg.event_type, msg.content)?)
);

store_message!(
    /// Sent by a session on `chat.fetch`.
    FetchEvents { world: WorldId, channel: String, user: UserId, count: u32, before_id: Option<i64> }
        -> Result<Vec<ChatEvent>, ChatRefusal>,
    |this, msg| Ok(chat::fetch(&this.conn, &msg.world, &msg.channel, &msg.user, msg.count, msg.before_id)?)
);

store_message!(
    /// Sent by a session on `bbb.call_url`: the call and its invite list.
    GetCall { world: WorldId, call: String } -> Option<CallRecord>,
    |this, msg| Ok(chat::call(&this.conn, &msg.world, &msg.call)?)
);

store_message!(
    /// Sent by the readiness probe: proves the database answers.
    Ping {} -> (),
    |this, _msg| Ok(this.conn.query_row("SELECT 1", [], |_| Ok(()))?)
);

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("nested/dir/test.sqlite3")).unwrap();
        (dir, conn)
    }

    #[test]
    fn migrations_reach_the_latest_version_and_are_idempotent() {
        let (dir, conn) = db();
        drop(conn);
        let conn = open(&dir.path().join("nested/dir/test.sqlite3")).unwrap();
        let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(v as usize, schema::latest_version());
    }

    #[test]
    fn login_creates_once_and_replaces_traits_only_when_given() {
        let (_dir, mut conn) = db();
        let w = WorldId::new("w");
        let key = LoginKey::Token("u1".into());
        let profile = serde_json::json!({"display_name": "Ann"});
        let traits = vec!["a".to_string()];
        assert!(
            users::login(&mut conn, &w, &key, Some(&traits), Some(&profile), false)
                .unwrap()
                .is_none()
        );
        let created = users::login(&mut conn, &w, &key, Some(&traits), Some(&profile), true)
            .unwrap()
            .unwrap();
        let other = serde_json::json!({"display_name": "Bob"});
        let again = users::login(&mut conn, &w, &key, None, Some(&other), true)
            .unwrap()
            .unwrap();
        assert_eq!(created.id, again.id);
        assert_eq!(again.traits, traits);
        assert_eq!(again.profile, profile, "profile is stored only on creation");
        let new_traits = vec!["b".to_string()];
        let third = users::login(&mut conn, &w, &key, Some(&new_traits), None, true)
            .unwrap()
            .unwrap();
        assert_eq!(third.traits, new_traits);
    }

    #[test]
    fn client_ids_and_token_uids_are_separate_per_world() {
        let (_dir, mut conn) = db();
        let a = users::login(
            &mut conn,
            &WorldId::new("w"),
            &LoginKey::Client("x".into()),
            None,
            None,
            true,
        )
        .unwrap()
        .unwrap();
        let b = users::login(
            &mut conn,
            &WorldId::new("w"),
            &LoginKey::Token("x".into()),
            None,
            None,
            true,
        )
        .unwrap()
        .unwrap();
        let c = users::login(
            &mut conn,
            &WorldId::new("v"),
            &LoginKey::Client("x".into()),
            None,
            None,
            true,
        )
        .unwrap()
        .unwrap();
        assert_ne!(a.id, b.id);
        assert_ne!(a.id, c.id);
    }

    #[test]
    fn moderation_round_trips() {
        let (_dir, mut conn) = db();
        let w = WorldId::new("w");
        let u = users::login(&mut conn, &w, &LoginKey::Client("x".into()), None, None, true)
            .unwrap()
            .unwrap();
        users::set_moderation(&conn, &w, u.id.as_str(), Moderation::Banned)
            .unwrap()
            .unwrap();
        assert_eq!(
            users::moderated(&conn).unwrap(),
            vec![(w.clone(), u.id.clone(), Moderation::Banned)]
        );
        assert!(users::set_moderation(&conn, &w, "nobody", Moderation::Banned)
            .unwrap()
            .is_none());
    }
}
