//! PostgreSQL schema: ordered migrations tracked in `schema_version`, applied under an
//! advisory lock so instances starting at the same time on an empty database migrate once.
//! Append only: never edit a migration that has shipped, add the next one.

use tokio_postgres::Client;

use super::StoreError;

/// The advisory lock key every instance takes while migrating ("bbbgw" + 1).
const MIGRATION_LOCK: i64 = 0x6262_6267_7701;

/// Migration N (1-based) is `MIGRATIONS[N - 1]`. The same tables as SQLite's (`schema.rs`)
/// plus what only a cluster needs.
const MIGRATIONS: &[&str] = &[
    // 1: what SQLite's migrations 1-4 hold: users, grants, meetings, overrides, channels with
    //    hidden memberships and activity, events, calls, read pointers, notifications
    "CREATE TABLE users (
        id          TEXT PRIMARY KEY,
        world       TEXT NOT NULL,
        token_uid   TEXT,
        client_id   TEXT,
        traits      TEXT NOT NULL DEFAULT '[]',
        profile     TEXT NOT NULL DEFAULT '{}',
        moderation  TEXT NOT NULL DEFAULT 'none',
        created_at  TEXT NOT NULL,
        last_login_ms BIGINT
     );
     CREATE UNIQUE INDEX users_by_token ON users(world, token_uid) WHERE token_uid IS NOT NULL;
     CREATE UNIQUE INDEX users_by_client ON users(world, client_id) WHERE client_id IS NOT NULL;
     CREATE TABLE role_grants (
        world    TEXT NOT NULL,
        user_id  TEXT NOT NULL REFERENCES users(id),
        role     TEXT NOT NULL,
        room     TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (world, user_id, role, room)
     );
     CREATE TABLE meetings (
        key           TEXT PRIMARY KEY,
        meeting_id    TEXT NOT NULL UNIQUE,
        attendee_pw   TEXT NOT NULL,
        moderator_pw  TEXT NOT NULL,
        server        TEXT,
        voice_bridge  TEXT,
        guest_policy  TEXT NOT NULL,
        updated_at    TEXT NOT NULL,
        incarnation   TEXT NOT NULL DEFAULT ''
     );
     CREATE TABLE server_overrides (
        server_id   TEXT PRIMARY KEY,
        active      BOOLEAN NOT NULL,
        updated_at  TEXT NOT NULL
     );
     CREATE TABLE channels (
        id          TEXT PRIMARY KEY,
        world       TEXT NOT NULL,
        member_key  TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        last_activity TEXT NOT NULL DEFAULT '',
        UNIQUE (world, member_key)
     );
     CREATE INDEX channels_by_activity ON channels(world, last_activity);
     CREATE TABLE channel_members (
        channel_id  TEXT NOT NULL REFERENCES channels(id),
        user_id     TEXT NOT NULL,
        hidden      BOOLEAN NOT NULL DEFAULT FALSE,
        PRIMARY KEY (channel_id, user_id)
     );
     CREATE INDEX channel_members_by_user ON channel_members(user_id);
     CREATE TABLE chat_events (
        channel_id  TEXT NOT NULL REFERENCES channels(id),
        event_id    BIGINT NOT NULL,
        sender      TEXT NOT NULL,
        timestamp   TEXT NOT NULL,
        event_type  TEXT NOT NULL,
        content     TEXT NOT NULL,
        PRIMARY KEY (channel_id, event_id)
     );
     CREATE TABLE calls (
        id          TEXT PRIMARY KEY,
        world       TEXT NOT NULL,
        channel_id  TEXT NOT NULL REFERENCES channels(id),
        created_by  TEXT NOT NULL,
        created_at  TEXT NOT NULL
     );
     CREATE TABLE call_invites (
        call_id  TEXT NOT NULL REFERENCES calls(id),
        user_id  TEXT NOT NULL,
        PRIMARY KEY (call_id, user_id)
     );
     CREATE TABLE read_pointers (
        user_id     TEXT NOT NULL,
        channel_id  TEXT NOT NULL REFERENCES channels(id),
        event_id    BIGINT NOT NULL,
        PRIMARY KEY (user_id, channel_id)
     );
     CREATE TABLE notifications (
        user_id     TEXT NOT NULL,
        channel_id  TEXT NOT NULL REFERENCES channels(id),
        event_id    BIGINT NOT NULL,
        PRIMARY KEY (user_id, channel_id, event_id)
     );",
    // 2: the cluster: live instances, large push payloads, create claims, shared server view
    "CREATE TABLE instances (
        name            TEXT PRIMARY KEY,
        sockets         BIGINT NOT NULL DEFAULT 0,
        last_heartbeat  TIMESTAMPTZ NOT NULL
     );
     CREATE TABLE instance_sockets (
        instance   TEXT NOT NULL,
        conn       BIGINT NOT NULL,
        user_id    TEXT NOT NULL,
        opened_at  TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (instance, conn)
     );
     CREATE INDEX instance_sockets_by_user ON instance_sockets(user_id);
     CREATE TABLE push_payloads (
        id          BIGSERIAL PRIMARY KEY,
        payload     TEXT NOT NULL,
        created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
     );
     CREATE TABLE meeting_claims (
        key         TEXT PRIMARY KEY,
        holder      TEXT NOT NULL,
        expires_at  TIMESTAMPTZ NOT NULL
     );
     CREATE TABLE server_state (
        server_id     TEXT PRIMARY KEY,
        poll_holder   TEXT,
        poll_until    TIMESTAMPTZ
     );
     CREATE TABLE running_meetings (
        meeting_id  TEXT PRIMARY KEY,
        server      TEXT NOT NULL,
        since       TIMESTAMPTZ NOT NULL DEFAULT now()
     );
     CREATE INDEX running_meetings_by_server ON running_meetings(server);",
    // 3: what the cluster knows of each BBB server lives in its `server_state` row (SPEC §10):
    //    health streaks, the last poll's result and time, the version and the placement
    //    charges since that poll; `healthy` is NULL until an instance has written the row
    "ALTER TABLE server_state
        ADD COLUMN healthy              BOOLEAN,
        ADD COLUMN fail_streak          INTEGER NOT NULL DEFAULT 0,
        ADD COLUMN ok_streak            INTEGER NOT NULL DEFAULT 0,
        ADD COLUMN last_error           TEXT,
        ADD COLUMN last_poll_at         TEXT,
        ADD COLUMN polled_cost          DOUBLE PRECISION NOT NULL DEFAULT 0,
        ADD COLUMN polled_meetings      BIGINT NOT NULL DEFAULT 0,
        ADD COLUMN polled_participants  BIGINT NOT NULL DEFAULT 0,
        ADD COLUMN placed_since_poll    BIGINT NOT NULL DEFAULT 0,
        ADD COLUMN version              TEXT;",
];

/// The schema version this build knows.
pub fn latest_version() -> usize {
    MIGRATIONS.len()
}

/// Why migrating failed: a database error, or a schema newer than this build.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("the database schema is version {found}, newer than this build's {known}: upgrade bbb-gateway")]
    TooNew { found: usize, known: usize },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn db(e: tokio_postgres::Error) -> MigrateError {
    MigrateError::Store(StoreError::from(e))
}

/// Brings the database to the newest schema under the advisory lock; refuses a newer one.
pub async fn migrate(client: &mut Client) -> Result<(), MigrateError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(db)?;
    let result = migrate_locked(client).await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    result?;
    unlocked.map_err(db)?;
    Ok(())
}

async fn migrate_locked(client: &mut Client) -> Result<(), MigrateError> {
    client
        .batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
        .await
        .map_err(db)?;
    let current = client
        .query_opt("SELECT max(version) FROM schema_version", &[])
        .await
        .map_err(db)?
        .and_then(|row| row.get::<_, Option<i64>>(0))
        .unwrap_or(0)
        .max(0) as usize;
    if current > latest_version() {
        return Err(MigrateError::TooNew {
            found: current,
            known: latest_version(),
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let version = index + 1;
        let tx = client.transaction().await.map_err(db)?;
        tx.batch_execute(sql).await.map_err(db)?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&(version as i64)],
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        log::info!("store: applied PostgreSQL migration {version}");
    }
    Ok(())
}
