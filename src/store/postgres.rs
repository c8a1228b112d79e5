//! The PostgreSQL backend (`server.database = "postgres://..."`): a deadpool of tokio-postgres
//! connections driven by the store's own small tokio runtime, so the store works the same
//! from any actix arbiter and no event loop owns its connections. Same operations and
//! semantics as SQLite; concurrent writers on other instances are handled with row locks
//! (`FOR UPDATE` on the channel when appending) and `ON CONFLICT` inserts.

use std::future::Future;
use std::sync::Arc;

use deadpool_postgres::GenericClient;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use serde_json::{json, Value};
use tokio_postgres::{NoTls, Row};

use super::pg_schema::{self, MigrateError};
use super::{
    Appended, CallRecord, ChannelInfo, ChatEvent, ChatRefusal, LoginKey, MeetingRecord, MeetingSecrets,
    Moderation, NewContent, StoreBackend, StoreError, StoreFuture, StoreResult, StoredGrant, UserRecord,
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

/// The store's runtime; shut down in the background when the last handle goes, so dropping
/// the store inside an async context never panics.
pub struct Runtime(Option<tokio::runtime::Runtime>);

impl Runtime {
    fn new() -> StoreResult<Self> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("store-pg")
            .enable_all()
            .build()
            .map(|rt| Self(Some(rt)))
            .map_err(|e| StoreError(format!("cannot start the store runtime: {e}")))
    }

    /// Runs `fut` on the store's runtime; the returned future may be awaited from any runtime.
    pub fn spawn<T: Send + 'static>(
        &self,
        fut: impl Future<Output = StoreResult<T>> + Send + 'static,
    ) -> StoreFuture<T> {
        let handle = self.0.as_ref().map(|rt| rt.spawn(fut));
        Box::pin(async move {
            match handle {
                Some(h) => h
                    .await
                    .map_err(|e| StoreError(format!("store task failed: {e}")))?,
                None => Err(StoreError("the store runtime has stopped".into())),
            }
        })
    }

    /// A handle for spawning background tasks (the cluster's listener and heartbeat).
    pub fn handle(&self) -> Option<tokio::runtime::Handle> {
        self.0.as_ref().map(|rt| rt.handle().clone())
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
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

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

const USER_COLUMNS: &str = "id, world, token_uid, traits, profile, moderation";

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
    }
}

async fn find_user(c: &impl GenericClient, world: &str, id: &str) -> StoreResult<Option<UserRecord>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE world = $1 AND id = $2");
    Ok(c.query_opt(&sql, &[&world, &id])
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
    Ok(c.query_opt(&sql, &[&world, value])
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
                c.execute(
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
    c.execute(
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

async fn members_of(c: &impl GenericClient, channel: &str) -> StoreResult<Vec<UserId>> {
    Ok(c.query(
        "SELECT user_id FROM channel_members WHERE channel_id = $1 ORDER BY user_id",
        &[&channel],
    )
    .await?
    .iter()
    .map(|r| UserId(r.get(0)))
    .collect())
}

async fn next_event_id(c: &impl GenericClient, channel: &str) -> StoreResult<i64> {
    Ok(c.query_one(
        "SELECT COALESCE(MAX(event_id), 0) + 1 FROM chat_events WHERE channel_id = $1",
        &[&channel],
    )
    .await?
    .get(0))
}

async fn channel_info(c: &impl GenericClient, world: &WorldId, channel: &str) -> StoreResult<ChannelInfo> {
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
    })
}

fn member_key(members: &[UserId]) -> String {
    let mut ids: Vec<&str> = members.iter().map(UserId::as_str).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.join(",")
}

async fn direct_channel(
    c: &mut deadpool_postgres::Object,
    world: &WorldId,
    members: &[UserId],
) -> StoreResult<Result<ChannelInfo, ChatRefusal>> {
    let key = member_key(members);
    if key.split(',').count() < 2 {
        return Ok(Err(ChatRefusal::TooFewMembers));
    }
    let tx = c.transaction().await?;
    for id in members {
        if find_user(&tx, world.as_str(), id.as_str()).await?.is_none() {
            return Ok(Err(ChatRefusal::UnknownUser));
        }
    }
    tx.execute(
        "INSERT INTO channels (id, world, member_key, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (world, member_key) DO NOTHING",
        &[&new_uuid(), &world.as_str(), &key, &now()],
    )
    .await?;
    let id: String = tx
        .query_one(
            "SELECT id FROM channels WHERE world = $1 AND member_key = $2",
            &[&world.as_str(), &key],
        )
        .await?
        .get(0);
    for member in key.split(',') {
        tx.execute(
            "INSERT INTO channel_members (channel_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&id, &member],
        )
        .await?;
    }
    let info = channel_info(&tx, world, &id).await?;
    tx.commit().await?;
    Ok(Ok(info))
}

async fn channels_of(
    c: &impl GenericClient,
    world: &WorldId,
    user: &UserId,
) -> StoreResult<Vec<ChannelInfo>> {
    let ids: Vec<String> = c
        .query(
            "SELECT c.id FROM channels c JOIN channel_members m ON m.channel_id = c.id
             WHERE m.user_id = $1 AND c.world = $2 ORDER BY c.created_at, c.id",
            &[&user.as_str(), &world.as_str()],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.push(channel_info(c, world, &id).await?);
    }
    Ok(out)
}

/// The channel's members when `user` may use it; with `lock`, the channel row is locked for
/// the transaction (event ids are assigned one writer at a time across instances).
async fn check_member(
    c: &impl GenericClient,
    world: &WorldId,
    channel: &str,
    user: &UserId,
    lock: bool,
) -> StoreResult<Result<Vec<UserId>, ChatRefusal>> {
    let sql = if lock {
        "SELECT world FROM channels WHERE id = $1 FOR UPDATE"
    } else {
        "SELECT world FROM channels WHERE id = $1"
    };
    let found: Option<String> = c.query_opt(sql, &[&channel]).await?.map(|r| r.get(0));
    if found.as_deref() != Some(world.as_str()) {
        return Ok(Err(ChatRefusal::UnknownChannel));
    }
    let members = members_of(c, channel).await?;
    if !members.contains(user) {
        return Ok(Err(ChatRefusal::NotMember));
    }
    Ok(Ok(members))
}

async fn append(
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
            tx.execute(
                "INSERT INTO calls (id, world, channel_id, created_by, created_at) VALUES ($1, $2, $3, $4, $5)",
                &[&call.as_str(), &world.as_str(), &channel, &sender.as_str(), &now()],
            )
            .await?;
            for user in &members {
                tx.execute(
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
    tx.execute(
        "INSERT INTO chat_events (channel_id, event_id, sender, timestamp, event_type, content)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &channel,
            &event.event_id,
            &sender.as_str(),
            &event.timestamp,
            &event.event_type,
            &event.content.to_string(),
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(Appended { event, members, call }))
}

async fn fetch(
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
        .query(
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

async fn get_call(c: &impl GenericClient, world: &WorldId, call: &str) -> StoreResult<Option<CallRecord>> {
    let Some(row) = c
        .query_opt(
            "SELECT channel_id FROM calls WHERE id = $1 AND world = $2",
            &[&call, &world.as_str()],
        )
        .await?
    else {
        return Ok(None);
    };
    let invited = c
        .query(
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
                .execute(
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
                .execute(
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
            Ok(c.query(
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
            Ok(c.query("SELECT world, user_id, role, room FROM role_grants", &[])
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
                .collect())
        })
    }

    fn save_meeting(&self, m: MeetingRecord) -> StoreFuture<()> {
        self.run(move |c| async move {
            c.execute(
                "INSERT INTO meetings (key, meeting_id, attendee_pw, moderator_pw, server, voice_bridge, guest_policy, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (key) DO UPDATE SET server = excluded.server, voice_bridge = excluded.voice_bridge,
                     guest_policy = excluded.guest_policy, updated_at = excluded.updated_at",
                &[
                    &m.key,
                    &m.secrets.meeting_id,
                    &m.secrets.attendee_pw,
                    &m.secrets.moderator_pw,
                    &m.server.as_ref().map(ServerId::as_str),
                    &m.voice_bridge,
                    &m.guest_policy,
                    &chrono::Utc::now().to_rfc3339(),
                ],
            )
            .await?;
            Ok(())
        })
    }

    fn load_meetings(&self) -> StoreFuture<Vec<MeetingRecord>> {
        self.run(|c| async move {
            Ok(c
                .query(
                    "SELECT key, meeting_id, attendee_pw, moderator_pw, server, voice_bridge, guest_policy FROM meetings",
                    &[],
                )
                .await?
                .iter()
                .map(meeting_from_row)
                .collect())
        })
    }

    fn save_server_override(&self, server: ServerId, active: bool) -> StoreFuture<()> {
        self.run(move |c| async move {
            c.execute(
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
            Ok(c.query("SELECT server_id, active FROM server_overrides", &[])
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
    ) -> StoreFuture<Result<ChannelInfo, ChatRefusal>> {
        self.run(move |mut c| async move { direct_channel(&mut c, &world, &members).await })
    }

    fn channels_of(&self, world: WorldId, user: UserId) -> StoreFuture<Vec<ChannelInfo>> {
        self.run(move |c| async move { channels_of(&c, &world, &user).await })
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
            append(&mut c, &world, channel.as_str(), &sender, &event_type, content).await
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
        self.run(move |c| async move { fetch(&c, &world, channel.as_str(), &user, count, before_id).await })
    }

    fn get_call(&self, world: WorldId, call: CallId) -> StoreFuture<Option<CallRecord>> {
        self.run(move |c| async move { get_call(&c, &world, call.as_str()).await })
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
    }
}
