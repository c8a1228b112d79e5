//! The store: one interface ([`StoreBackend`], reached through the cloneable [`Store`]
//! handle) taking and returning the store's own types; SQLite ([`sqlite::SqliteStore`]) is
//! the first backend. Every operation is async (a boxed `Send` future), so a backend with an
//! async pool fits as well as SQLite, which runs on its own thread so blocking database work
//! never runs on an event loop.
//!
//! Adding an operation: declare it on [`StoreBackend`] (returning `StoreFuture<T>`),
//! implement it in every backend (for SQLite: `self.run(move |conn| ...)` around a function
//! of `users`, `chat` or `meetings`), and add it to the shared test suite (`suite.rs`).

pub mod chat;
pub mod conversations;
pub mod meetings;
pub mod pg_chat;
pub mod pg_client;
pub mod pg_schema;
pub mod postgres;
pub mod schema;
pub mod sqlite;
pub mod transfer;
pub mod users;

use std::future::Future;
use std::ops::Deref;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::Value;

use crate::ids::{CallId, ChannelId, ServerId, UserId, WorldId};

pub use chat::{
    Appended, CallRecord, ChannelInfo, ChatEvent, ChatRefusal, DirectChannelOutcome, NewContent, MEMBER_EVENT,
};
pub use conversations::{ConversationList, PointerRule};
pub use meetings::{MeetingRecord, MeetingSecrets};
pub use sqlite::{check_writable, open, probe_write, write_transaction};
pub use users::{is_inactive, LoginKey, Moderation, Searchable, StoredGrant, UserRecord, INACTIVE_AFTER_MS};

/// A failed database operation; the text is for logs (it holds no secrets).
#[derive(Debug, Clone, thiserror::Error)]
#[error("store: {0}")]
pub struct StoreError(pub String);

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(e.to_string())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What every store operation returns.
pub type StoreFuture<T> = Pin<Box<dyn Future<Output = StoreResult<T>> + Send + 'static>>;

/// The store's operations; one implementation per database.
pub trait StoreBackend: Send + Sync + 'static {
    /// On `authenticate`: find (and maybe create) the user. `None` when the user does not
    /// exist and `may_create` is false. Given traits replace the stored ones; a profile is
    /// stored only on creation.
    fn login_user(
        &self,
        world: WorldId,
        key: LoginKey,
        traits: Option<Vec<String>>,
        profile: Option<Value>,
        may_create: bool,
    ) -> StoreFuture<Option<UserRecord>>;
    /// One user of a world by id (`user.fetch`, admin API).
    fn get_user(&self, world: WorldId, id: UserId) -> StoreFuture<Option<UserRecord>>;
    /// `user.update`: replaces the profile; returns the updated user.
    fn update_profile(&self, world: WorldId, id: UserId, profile: Value) -> StoreFuture<Option<UserRecord>>;
    /// An operator changes a user's moderation state.
    fn set_moderation(
        &self,
        world: WorldId,
        id: String,
        state: Moderation,
    ) -> StoreFuture<Option<UserRecord>>;
    /// At start: every moderated user.
    fn load_moderation(&self) -> StoreFuture<Vec<(WorldId, UserId, Moderation)>>;
    /// At start: explicit role grants stored in the database.
    fn load_role_grants(&self) -> StoreFuture<Vec<StoredGrant>>;
    /// A meeting record is created or moves to another server.
    fn save_meeting(&self, record: MeetingRecord) -> StoreFuture<()>;
    /// At start: every meeting record.
    fn load_meetings(&self) -> StoreFuture<Vec<MeetingRecord>>;
    /// An operator disables or enables a server.
    fn save_server_override(&self, server: ServerId, active: bool) -> StoreFuture<()>;
    /// At start: runtime enable/disable overrides.
    fn load_server_overrides(&self) -> StoreFuture<Vec<(ServerId, bool)>>;
    /// `chat.direct.create`: the channel of exactly these members (caller included), created
    /// with one member event per member (content from `member_content`) and, when `hide`,
    /// hidden memberships for the others; the caller's membership is visible afterwards.
    fn direct_channel(
        &self,
        world: WorldId,
        members: Vec<UserId>,
        caller: UserId,
        hide: bool,
        member_content: fn(&UserRecord) -> Value,
    ) -> StoreFuture<Result<DirectChannelOutcome, ChatRefusal>>;
    /// `chat.send`: store the event (and the call it starts); in the same transaction hidden
    /// memberships become visible and every other member gets a notification.
    fn append_event(
        &self,
        world: WorldId,
        channel: ChannelId,
        sender: UserId,
        event_type: String,
        content: NewContent,
    ) -> StoreFuture<Result<Appended, ChatRefusal>>;
    /// `chat.fetch`.
    fn fetch_events(
        &self,
        world: WorldId,
        channel: ChannelId,
        user: UserId,
        count: u32,
        before_id: Option<i64>,
    ) -> StoreFuture<Result<Vec<ChatEvent>, ChatRefusal>>;
    /// `bbb.call_url`: the call and its invite list.
    fn get_call(&self, world: WorldId, call: CallId) -> StoreFuture<Option<CallRecord>>;
    /// A successful authenticate: records its time, answers the conversation list (the
    /// `limit` most recently active visible memberships, with POINTERS and COUNTS).
    fn login_conversations(
        &self,
        world: WorldId,
        user: UserId,
        now_ms: i64,
        limit: usize,
    ) -> StoreFuture<ConversationList>;
    /// The user's conversation list (`chat.channels` pushes).
    fn conversation_list(&self, world: WorldId, user: UserId, limit: usize) -> StoreFuture<ConversationList>;
    /// POINTERS and COUNTS of the conversation list, without the channels.
    fn pointers_and_counts(
        &self,
        world: WorldId,
        user: UserId,
        limit: usize,
    ) -> StoreFuture<ConversationList>;
    /// `chat.subscribe`: the channel with every member, for members.
    fn subscribe_channel(
        &self,
        world: WorldId,
        channel: ChannelId,
        user: UserId,
    ) -> StoreFuture<Result<ChannelInfo, ChatRefusal>>;
    /// `chat.unsubscribe`: whether the channel is a direct channel of the world.
    fn channel_exists(&self, world: WorldId, channel: ChannelId) -> StoreFuture<bool>;
    /// `chat.leave`: hides the member's membership.
    fn hide_channel(
        &self,
        world: WorldId,
        channel: ChannelId,
        user: UserId,
    ) -> StoreFuture<Result<(), ChatRefusal>>;
    /// `chat.mark_read`, one transaction: the read pointer moves by `rule`, the notifications
    /// up to `id` are deleted.
    fn mark_read(
        &self,
        world: WorldId,
        channel: ChannelId,
        user: UserId,
        id: i64,
        rule: PointerRule,
    ) -> StoreFuture<Result<(), ChatRefusal>>;
    /// `user.fetch` with `ids`, `chat.fetch`'s `users`: the world's users among `ids`.
    fn users_by_ids(&self, world: WorldId, ids: Vec<UserId>) -> StoreFuture<Vec<UserRecord>>;
    /// `user.list.search`: the world's users who are not banned and have a display name.
    fn searchable_users(&self, world: WorldId) -> StoreFuture<Vec<Searchable>>;
    /// The readiness probe: proves a write works (a read says nothing about a full disk or a
    /// read-only file).
    fn ping(&self) -> StoreFuture<()>;
}

/// The store handle every actor and route holds: cheap to clone, derefs to the backend.
#[derive(Clone)]
pub struct Store(Arc<dyn StoreBackend>);

impl Store {
    pub fn new(backend: impl StoreBackend) -> Self {
        Self(Arc::new(backend))
    }

    /// Opens (creating parent directories and the file) and migrates the SQLite database,
    /// then starts its thread. Blocking: call it from a blocking context.
    pub fn open_sqlite(path: &Path) -> StoreResult<Self> {
        Ok(Self::new(sqlite::SqliteStore::start(open(path)?)))
    }

    /// Connects to PostgreSQL and migrates (under an advisory lock).
    pub async fn open_postgres(url: &str) -> Result<Self, postgres::OpenError> {
        Ok(Self::new(postgres::PgStore::open(url).await?))
    }
}

impl Deref for Store {
    type Target = dyn StoreBackend;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

#[cfg(test)]
mod suite;
