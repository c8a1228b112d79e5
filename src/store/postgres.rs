//! The PostgreSQL backend (`server.database = "postgres://..."`): a deadpool of tokio-postgres
//! connections driven by the store's own small tokio runtime, so the store works the same
//! from any actix arbiter and no event loop owns its connections. Same operations and
//! semantics as SQLite; concurrent writers on other instances are handled with row locks
//! (`FOR UPDATE` on the channel when appending) and `ON CONFLICT` inserts.

use std::future::Future;
use std::sync::Arc;

use deadpool_postgres::GenericClient;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use serde_json::Value;
use tokio_postgres::{NoTls, Row};

use super::pg_chat;
pub use super::pg_client::{Cached, Runtime};
use super::pg_schema::{self, MigrateError};
use super::{
    Appended, CallRecord, ChannelInfo, ChatEvent, ChatRefusal, ConversationList, DirectChannelOutcome,
    LoginKey, MeetingRecord, MeetingSecrets, Moderation, NewContent, PointerRule, Searchable, StoreBackend,
    StoreError, StoreFuture, StoreResult, StoredGrant, UserRecord,
};
use crate::ids::{new_uuid, CallId, ChannelId, RoomId, ServerId, UserId, WorldId};

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        // The Display of a tokio-postgres error carries no password.
        match e.as_db_error() {
            Some(db) => StoreError(format!("postgres: {}", db.message())),
            None => StoreError(format!("postgres: {e}")),
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError(format!("postgres pool: {e}"))
    }
}

/// Is `database` a PostgreSQL URL (rather than an SQLite path)?
pub fn is_postgres_url(database: &str) -> bool {
    database.starts_with("postgres://") || database.starts_with("postgresql://")
}

/// The PostgreSQL backend's handle.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    runtime: Arc<Runtime>,
    url: Arc<str>,
}

/// Why the PostgreSQL store did not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0}")]
    Migrate(#[from] MigrateError),
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl PgStore {
    /// Connects, migrates (under the advisory lock) and returns the store. Fails when the
    /// database is unreachable or its schema is newer than this build.
    pub async fn open(url: &str) -> Result<Self, OpenError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError(format!("postgres: invalid database URL: {e}")))?;
        let runtime = Arc::new(Runtime::new()?);
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(16)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(std::time::Duration::from_secs(5)))
            .create_timeout(Some(std::time::Duration::from_secs(5)))
            .recycle_timeout(Some(std::time::Duration::from_secs(5)))
            .build()
            .map_err(|e| StoreError(format!("postgres pool: {e}")))?;
        let migrating = pool.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        match runtime.handle() {
            Some(h) => {
                h.spawn(async move {
                    let result = async {
                        let mut client = migrating.get().await.map_err(StoreError::from)?;
                        pg_schema::migrate(&mut client).await
                    }
                    .await;
                    let _ = tx.send(result);
                });
            }
            None => return Err(StoreError("the store runtime has stopped".into()).into()),
        }
        rx.await.map_err(|_| StoreError("store task failed".into()))??;
        Ok(Self {
            pool,
            runtime,
            url: Arc::from(url),
        })
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// The database URL (for the cluster's dedicated LISTEN connection). Never logged.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs `f` with a pooled connection on the store's runtime.
    fn run<T, F, Fut>(&self, f: F) -> StoreFuture<T>
    where
        T: Send + 'static,
        F: FnOnce(deadpool_postgres::Object) -> Fut + Send + 'static,
        Fut: Future<Output = StoreResult<T>> + Send + 'static,
    {
        let pool = self.pool.clone();
        self.runtime.spawn(async move {
            let client = pool.get().await?;
            f(client).await
        })
    }
}

pub(super) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

const USER_COLUMNS: &str = "id, world, token_uid, traits, profile, moderation, last_login_ms";

fn user_from_row(row: &Row) -> UserRecord {
    let traits: String = row.get(3);
    let profile: String = row.get(4);
    let moderation: String = row.get(5);
    UserRecord {
        id: UserId(row.get(0)),
        world: WorldId(row.get(1)),
        token_uid: row.get(2),
        traits: serde_json::from_str(&traits).unwrap_or_default(),
        profile: serde_json::from_str(&profile).unwrap_or_else(|_| Value::Object(Default::default())),
        moderation: Moderation::parse(&moderation).unwrap_or_default(),
        last_login_ms: row.get(6),
    }
}

pub(super) async fn find_user(
    c: &impl GenericClient,
    world: &str,
    id: &str,
) -> StoreResult<Option<UserRecord>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE world = $1 AND id = $2");
    Ok(c.cquery_opt(&sql, &[&world, &id])
        .await?
        .as_ref()
        .map(user_from_row))
}

async fn find_by_key(c: &impl GenericClient, world: &str, key: &LoginKey) -> StoreResult<Option<UserRecord>> {
    let (column, value) = match key {
        LoginKey::Token(uid) => ("token_uid", uid),
        LoginKey::Client(cid) => ("client_id", cid),
    };
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE world = $1 AND {column} = $2");
    Ok(c.cquery_opt(&sql, &[&world, value])
        .await?
        .as_ref()
        .map(user_from_row))
}

fn traits_json(traits: &[String]) -> String {
    serde_json::to_string(traits).unwrap_or_else(|_| "[]".into())
}

async fn login(
    c: &impl GenericClient,
    world: &WorldId,
    key: &LoginKey,
    traits: Option<Vec<String>>,
    profile: Option<Value>,
    may_create: bool,
) -> StoreResult<Option<UserRecord>> {
    if let Some(mut user) = find_by_key(c, world.as_str(), key).await? {
        if let Some(traits) = traits {
            if user.traits != traits {
                c.cexecute(
                    "UPDATE users SET traits = $1 WHERE id = $2",
                    &[&traits_json(&traits), &user.id.as_str()],
                )
                .await?;
                user.traits = traits;
            }
        }
        return Ok(Some(user));
    }
    if !may_create {
        return Ok(None);
    }
    let (token_uid, client_id) = match key {
        LoginKey::Token(uid) => (Some(uid.as_str()), None),
        LoginKey::Client(cid) => (None, Some(cid.as_str())),
    };
    let traits = traits.unwrap_or_default();
    let profile = profile.unwrap_or_else(|| Value::Object(Default::default()));
    // Another instance may create the same user at the same moment: the unique indexes
    // decide, and both then read the one row.
    c.cexecute(
        "INSERT INTO users (id, world, token_uid, client_id, traits, profile, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        &[
            &new_uuid(),
            &world.as_str(),
            &token_uid,
            &client_id,
            &traits_json(&traits),
            &profile.to_string(),
            &chrono::Utc::now().to_rfc3339(),
        ],
    )
    .await?;
    find_by_key(c, world.as_str(), key).await
}

impl StoreBackend for PgStore {
    fn login_user(
        &self,
        world: WorldId,
        key: LoginKey,
        traits: Option<Vec<String>>,
        profile: Option<Value>,
        may_create: bool,
    ) -> StoreFuture<Option<UserRecord>> {
        self.run(move |c| async move { login(&c, &world, &key, traits, profile, may_create).await })
    }

    fn get_user(&self, world: WorldId, id: UserId) -> StoreFuture<Option<UserRecord>> {
        self.run(move |c| async move { find_user(&c, world.as_str(), id.as_str()).await })
    }

    fn update_profile(&self, world: WorldId, id: UserId, profile: Value) -> StoreFuture<Option<UserRecord>> {
        self.run(move |c| async move {
            let changed = c
                .cexecute(
                    "UPDATE users SET profile = $1 WHERE world = $2 AND id = $3",
                    &[&profile.to_string(), &world.as_str(), &id.as_str()],
                )
                .await?;
            if changed == 0 {
                return Ok(None);
            }
            find_user(&c, world.as_str(), id.as_str()).await
        })
    }

    fn set_moderation(
        &self,
        world: WorldId,
        id: String,
        state: Moderation,
    ) -> StoreFuture<Option<UserRecord>> {
        self.run(move |c| async move {
            let changed = c
                .cexecute(
                    "UPDATE users SET moderation = $1 WHERE world = $2 AND id = $3",
                    &[&state.as_str(), &world.as_str(), &id],
                )
                .await?;
            if changed == 0 {
                return Ok(None);
            }
            find_user(&c, world.as_str(), &id).await
        })
    }

    fn load_moderation(&self) -> StoreFuture<Vec<(WorldId, UserId, Moderation)>> {
        self.run(|c| async move {
            Ok(c.cquery(
                "SELECT world, id, moderation FROM users WHERE moderation != 'none'",
                &[],
            )
            .await?
            .iter()
            .map(|r| {
                let m: String = r.get(2);
                (
                    WorldId(r.get(0)),
                    UserId(r.get(1)),
                    Moderation::parse(&m).unwrap_or_default(),
                )
            })
            .collect())
        })
    }

    fn load_role_grants(&self) -> StoreFuture<Vec<StoredGrant>> {
        self.run(|c| async move {
            Ok(
                c.cquery("SELECT world, user_id, role, room FROM role_grants", &[])
                    .await?
                    .iter()
                    .map(|r| {
                        let room: String = r.get(3);
                        StoredGrant {
                            world: WorldId(r.get(0)),
                            user: UserId(r.get(1)),
                            role: r.get(2),
                            room: (!room.is_empty()).then_some(RoomId(room)),
                        }
                    })
                    .collect(),
            )
        })
    }

    fn save_meeting(&self, m: MeetingRecord) -> StoreFuture<()> {
        self.run(move |c| async move {
            c.cexecute(
                "INSERT INTO meetings (key, meeting_id, attendee_pw, moderator_pw, server, voice_bridge, guest_policy, updated_at, incarnation)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (key) DO UPDATE SET server = excluded.server, voice_bridge = excluded.voice_bridge,
                     guest_policy = excluded.guest_policy, updated_at = excluded.updated_at,
                     incarnation = excluded.incarnation",
                &[
                    &m.key,
                    &m.secrets.meeting_id,
                    &m.secrets.attendee_pw,
                    &m.secrets.moderator_pw,
                    &m.server.as_ref().map(ServerId::as_str),
                    &m.voice_bridge,
                    &m.guest_policy,
                    &chrono::Utc::now().to_rfc3339(),
                    &m.incarnation,
                ],
            )
            .await?;
            Ok(())
        })
    }

    fn load_meetings(&self) -> StoreFuture<Vec<MeetingRecord>> {
        self.run(|c| async move {
            Ok(c.cquery(&format!("SELECT {MEETING_COLUMNS} FROM meetings"), &[])
                .await?
                .iter()
                .map(meeting_from_row)
                .collect())
        })
    }

    fn save_server_override(&self, server: ServerId, active: bool) -> StoreFuture<()> {
        self.run(move |c| async move {
            c.cexecute(
                "INSERT INTO server_overrides (server_id, active, updated_at) VALUES ($1, $2, $3)
                 ON CONFLICT (server_id) DO UPDATE SET active = excluded.active, updated_at = excluded.updated_at",
                &[&server.as_str(), &active, &chrono::Utc::now().to_rfc3339()],
            )
            .await?;
            Ok(())
        })
    }

    fn load_server_overrides(&self) -> StoreFuture<Vec<(ServerId, bool)>> {
        self.run(|c| async move {
            Ok(c.cquery("SELECT server_id, active FROM server_overrides", &[])
                .await?
                .iter()
                .map(|r| (ServerId(r.get(0)), r.get(1)))
                .collect())
        })
    }

    fn direct_channel(
        &self,
        world: WorldId,
        members: Vec<UserId>,
        caller: UserId,
        hide: bool,
        member_content: fn(&UserRecord) -> Value,
    ) -> StoreFuture<Result<DirectChannelOutcome, ChatRefusal>> {
        self.run(move |mut c| async move {
            pg_chat::direct_channel(&mut c, &world, &members, &caller, hide, member_content).await
        })
    }

    fn append_event(
        &self,
        world: WorldId,
        channel: ChannelId,
        sender: UserId,
        event_type: String,
        content: NewContent,
    ) -> StoreFuture<Result<Appended, ChatRefusal>> {
        self.run(move |mut c| async move {
            pg_chat::append(&mut c, &world, channel.as_str(), &sender, &event_type, content).await
        })
    }

    fn fetch_events(
        &self,
        world: WorldId,
        channel: ChannelId,
        user: UserId,
        count: u32,
        before_id: Option<i64>,
    ) -> StoreFuture<Result<Vec<ChatEvent>, ChatRefusal>> {
        self.run(move |c| async move {
            pg_chat::fetch(&c, &world, channel.as_str(), &user, count, before_id).await
        })
    }

    fn get_call(&self, world: WorldId, call: CallId) -> StoreFuture<Option<CallRecord>> {
        self.run(move |c| async move { pg_chat::get_call(&c, &world, call.as_str()).await })
    }

    fn login_conversations(
        &self,
        world: WorldId,
        user: UserId,
        now_ms: i64,
        limit: usize,
    ) -> StoreFuture<ConversationList> {
        self.run(move |c| async move { pg_chat::login(&c, &world, &user, now_ms, limit).await })
    }

    fn conversation_list(&self, world: WorldId, user: UserId, limit: usize) -> StoreFuture<ConversationList> {
        self.run(move |c| async move { pg_chat::list(&c, &world, &user, limit).await })
    }

    fn pointers_and_counts(
        &self,
        world: WorldId,
        user: UserId,
        limit: usize,
    ) -> StoreFuture<ConversationList> {
        self.run(move |c| async move { pg_chat::pointers_and_counts_of(&c, &world, &user, limit).await })
    }

    fn subscribe_channel(
        &self,
        world: WorldId,
        channel: ChannelId,
        user: UserId,
    ) -> StoreFuture<Result<ChannelInfo, ChatRefusal>> {
        self.run(move |c| async move { pg_chat::subscribe(&c, &world, channel.as_str(), &user).await })
    }

    fn channel_exists(&self, world: WorldId, channel: ChannelId) -> StoreFuture<bool> {
        self.run(move |c| async move { pg_chat::exists(&c, &world, channel.as_str()).await })
    }

    fn hide_channel(
        &self,
        world: WorldId,
        channel: ChannelId,
        user: UserId,
    ) -> StoreFuture<Result<(), ChatRefusal>> {
        self.run(move |c| async move { pg_chat::hide(&c, &world, channel.as_str(), &user).await })
    }

    fn mark_read(
        &self,
        world: WorldId,
        channel: ChannelId,
        user: UserId,
        id: i64,
        rule: PointerRule,
    ) -> StoreFuture<Result<(), ChatRefusal>> {
        self.run(move |mut c| async move {
            pg_chat::mark_read(&mut c, &world, channel.as_str(), &user, id, rule).await
        })
    }

    fn users_by_ids(&self, world: WorldId, ids: Vec<UserId>) -> StoreFuture<Vec<UserRecord>> {
        self.run(move |c| async move { pg_chat::users_by_ids(&c, &world, &ids).await })
    }

    fn searchable_users(&self, world: WorldId) -> StoreFuture<Vec<Searchable>> {
        self.run(move |c| async move {
            Ok(c.cquery(
                "SELECT id, profile, last_login_ms FROM users WHERE world = $1 AND moderation != 'banned'",
                &[&world.as_str()],
            )
            .await?
            .iter()
            .filter_map(|r| {
                let profile: String = r.get(1);
                let Ok(Value::Object(mut profile)) = serde_json::from_str::<Value>(&profile) else {
                    return None;
                };
                let display_name = match profile.get("display_name") {
                    Some(Value::String(name)) if !name.is_empty() => name.clone(),
                    _ => return None,
                };
                Some(Searchable {
                    id: UserId(r.get(0)),
                    display_name,
                    avatar: profile.remove("avatar"),
                    last_login_ms: r.get(2),
                })
            })
            .collect())
        })
    }

    fn ping(&self) -> StoreFuture<()> {
        // A write, so a read-only or unreachable database is not reported ready.
        self.run(|c| async move {
            c.batch_execute(
                "CREATE TEMP TABLE IF NOT EXISTS readiness_probe (n INT);
                 INSERT INTO readiness_probe VALUES (1); DELETE FROM readiness_probe",
            )
            .await?;
            Ok(())
        })
    }
}

const MEETING_COLUMNS: &str =
    "key, meeting_id, attendee_pw, moderator_pw, server, voice_bridge, guest_policy, incarnation";

/// One meeting record (the cluster reads the shared one before a create).
pub async fn load_meeting(c: &impl GenericClient, key: &str) -> StoreResult<Option<MeetingRecord>> {
    Ok(c.cquery_opt(
        &format!("SELECT {MEETING_COLUMNS} FROM meetings WHERE key = $1"),
        &[&key],
    )
    .await?
    .as_ref()
    .map(meeting_from_row))
}

/// The meeting record with this BBB meetingID (an end callback for a meeting this instance
/// has not seen yet).
pub async fn load_meeting_by_id(
    c: &impl GenericClient,
    meeting_id: &str,
) -> StoreResult<Option<MeetingRecord>> {
    Ok(c.cquery_opt(
        &format!("SELECT {MEETING_COLUMNS} FROM meetings WHERE meeting_id = $1"),
        &[&meeting_id],
    )
    .await?
    .as_ref()
    .map(meeting_from_row))
}

fn meeting_from_row(r: &Row) -> MeetingRecord {
    MeetingRecord {
        key: r.get(0),
        secrets: MeetingSecrets {
            meeting_id: r.get(1),
            attendee_pw: r.get(2),
            moderator_pw: r.get(3),
        },
        server: r.get::<_, Option<String>>(4).map(ServerId),
        voice_bridge: r.get(5),
        guest_policy: r.get(6),
        incarnation: r.get(7),
    }
}
