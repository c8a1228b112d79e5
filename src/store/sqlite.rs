//! The SQLite backend: one connection owned by a dedicated thread; operations are closures
//! sent over a channel and answered through a oneshot, so no event loop ever blocks on it.

use std::path::Path;
use std::sync::mpsc;

use rusqlite::Connection;
use serde_json::Value;
use tokio::sync::oneshot;

use super::{
    chat, conversations, meetings, schema, users, Appended, CallRecord, ChannelInfo, ChatEvent, ChatRefusal,
    ConversationList, DirectChannelOutcome, LoginKey, MeetingRecord, Moderation, NewContent, PointerRule,
    Searchable, StoreBackend, StoreError, StoreFuture, StoreResult, StoredGrant, UserRecord,
};
use crate::ids::{CallId, ChannelId, ServerId, UserId, WorldId};

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
    schema::check_not_newer(&conn)?;
    schema::migrate(&mut conn)?;
    Ok(conn)
}

/// Starts a write transaction that takes the write lock at once (`BEGIN IMMEDIATE`): while
/// another connection holds the lock it waits up to the busy timeout. A deferred transaction
/// that reads first would instead fail with SQLITE_BUSY at its first write, without waiting.
pub fn write_transaction(conn: &mut Connection) -> rusqlite::Result<rusqlite::Transaction<'_>> {
    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
}

/// Size of the readiness probe's write: about the largest write a request makes.
pub const PROBE_BYTES: i64 = 64 * 1024;

/// Proves that a write works: rewrites the one row of `health_probe` with `PROBE_BYTES` of
/// data, so a disk too full for real requests fails the probe too (a tiny write can still fit
/// where a profile no longer does).
pub fn probe_write(conn: &Connection) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO health_probe (id, probed_at, payload) VALUES (1, ?1, zeroblob(?2))
         ON CONFLICT (id) DO UPDATE SET probed_at = excluded.probed_at, payload = excluded.payload",
    )?
    .execute(rusqlite::params![chrono::Utc::now().to_rfc3339(), PROBE_BYTES])?;
    Ok(())
}

/// Opens the database and proves it writable (migrations and one probe write), as startup
/// does before the port opens.
pub fn check_writable(path: &Path) -> StoreResult<()> {
    let conn = open(path)?;
    probe_write(&conn)?;
    Ok(())
}

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// The SQLite backend's handle: a channel to the thread that owns the connection.
pub struct SqliteStore {
    jobs: mpsc::Sender<Job>,
}

impl SqliteStore {
    /// Starts the store's thread with an opened connection. The thread ends when every
    /// handle is dropped.
    pub fn start(mut conn: Connection) -> Self {
        let (jobs, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("store-sqlite".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    job(&mut conn);
                }
            })
            .map(|_| ())
            .unwrap_or_else(|e| log::error!("store: cannot start the database thread: {e}"));
        Self { jobs }
    }

    /// Runs `f` on the database thread.
    fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> StoreFuture<T> {
        let (tx, rx) = oneshot::channel();
        let sent = self.jobs.send(Box::new(move |conn: &mut Connection| {
            let _ = tx.send(f(conn).map_err(StoreError::from));
        }));
        Box::pin(async move {
            sent.map_err(|_| StoreError("the database thread has stopped".into()))?;
            rx.await
                .map_err(|_| StoreError("the database thread has stopped".into()))?
        })
    }
}

impl StoreBackend for SqliteStore {
    fn login_user(
        &self,
        world: WorldId,
        key: LoginKey,
        traits: Option<Vec<String>>,
        profile: Option<Value>,
        may_create: bool,
    ) -> StoreFuture<Option<UserRecord>> {
        self.run(move |c| users::login(c, &world, &key, traits.as_deref(), profile.as_ref(), may_create))
    }

    fn get_user(&self, world: WorldId, id: UserId) -> StoreFuture<Option<UserRecord>> {
        self.run(move |c| users::find_by_id(c, &world, id.as_str()))
    }

    fn update_profile(&self, world: WorldId, id: UserId, profile: Value) -> StoreFuture<Option<UserRecord>> {
        self.run(move |c| users::update_profile(c, &world, &id, &profile))
    }

    fn set_moderation(
        &self,
        world: WorldId,
        id: String,
        state: Moderation,
    ) -> StoreFuture<Option<UserRecord>> {
        self.run(move |c| users::set_moderation(c, &world, &id, state))
    }

    fn load_moderation(&self) -> StoreFuture<Vec<(WorldId, UserId, Moderation)>> {
        self.run(|c| users::moderated(c))
    }

    fn load_role_grants(&self) -> StoreFuture<Vec<StoredGrant>> {
        self.run(|c| users::role_grants(c))
    }

    fn save_meeting(&self, record: MeetingRecord) -> StoreFuture<()> {
        self.run(move |c| meetings::save(c, &record))
    }

    fn load_meetings(&self) -> StoreFuture<Vec<MeetingRecord>> {
        self.run(|c| meetings::all(c))
    }

    fn save_server_override(&self, server: ServerId, active: bool) -> StoreFuture<()> {
        self.run(move |c| meetings::set_server_override(c, &server, active))
    }

    fn load_server_overrides(&self) -> StoreFuture<Vec<(ServerId, bool)>> {
        self.run(|c| meetings::server_overrides(c))
    }

    fn direct_channel(
        &self,
        world: WorldId,
        members: Vec<UserId>,
        caller: UserId,
        hide: bool,
        member_content: fn(&UserRecord) -> Value,
    ) -> StoreFuture<Result<DirectChannelOutcome, ChatRefusal>> {
        self.run(move |c| chat::direct_channel(c, &world, &members, &caller, hide, member_content))
    }

    fn append_event(
        &self,
        world: WorldId,
        channel: ChannelId,
        sender: UserId,
        event_type: String,
        content: NewContent,
    ) -> StoreFuture<Result<Appended, ChatRefusal>> {
        self.run(move |c| chat::append(c, &world, channel.as_str(), &sender, &event_type, content))
    }

    fn fetch_events(
        &self,
        world: WorldId,
        channel: ChannelId,
        user: UserId,
        count: u32,
        before_id: Option<i64>,
    ) -> StoreFuture<Result<Vec<ChatEvent>, ChatRefusal>> {
        self.run(move |c| chat::fetch(c, &world, channel.as_str(), &user, count, before_id))
    }

    fn get_call(&self, world: WorldId, call: CallId) -> StoreFuture<Option<CallRecord>> {
        self.run(move |c| chat::call(c, &world, call.as_str()))
    }

    fn login_conversations(
        &self,
        world: WorldId,
        user: UserId,
        now_ms: i64,
        limit: usize,
    ) -> StoreFuture<ConversationList> {
        self.run(move |c| conversations::login(c, &world, &user, now_ms, limit))
    }

    fn conversation_list(&self, world: WorldId, user: UserId, limit: usize) -> StoreFuture<ConversationList> {
        self.run(move |c| conversations::list(c, &world, &user, limit))
    }

    fn pointers_and_counts(
        &self,
        world: WorldId,
        user: UserId,
        limit: usize,
    ) -> StoreFuture<ConversationList> {
        self.run(move |c| conversations::pointers_and_counts_of(c, &world, &user, limit))
    }

    fn subscribe_channel(
        &self,
        world: WorldId,
        channel: ChannelId,
        user: UserId,
    ) -> StoreFuture<Result<ChannelInfo, ChatRefusal>> {
        self.run(move |c| conversations::subscribe(c, &world, channel.as_str(), &user))
    }

    fn channel_exists(&self, world: WorldId, channel: ChannelId) -> StoreFuture<bool> {
        self.run(move |c| conversations::exists(c, &world, channel.as_str()))
    }

    fn hide_channel(
        &self,
        world: WorldId,
        channel: ChannelId,
        user: UserId,
    ) -> StoreFuture<Result<(), ChatRefusal>> {
        self.run(move |c| conversations::hide(c, &world, channel.as_str(), &user))
    }

    fn mark_read(
        &self,
        world: WorldId,
        channel: ChannelId,
        user: UserId,
        id: i64,
        rule: PointerRule,
    ) -> StoreFuture<Result<(), ChatRefusal>> {
        self.run(move |c| conversations::mark_read(c, &world, channel.as_str(), &user, id, rule))
    }

    fn users_by_ids(&self, world: WorldId, ids: Vec<UserId>) -> StoreFuture<Vec<UserRecord>> {
        self.run(move |c| conversations::users_by_ids(c, &world, &ids))
    }

    fn searchable_users(&self, world: WorldId) -> StoreFuture<Vec<Searchable>> {
        self.run(move |c| users::searchable(c, &world))
    }

    fn ping(&self) -> StoreFuture<()> {
        self.run(|c| probe_write(c))
    }
}
