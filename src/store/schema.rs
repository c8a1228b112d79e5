//! Ordered schema migrations, tracked with SQLite's `user_version`. Append only: never edit
//! a migration that has shipped, add the next one.

use rusqlite::Connection;

/// Migration N (1-based) is `MIGRATIONS[N - 1]`.
const MIGRATIONS: &[&str] = &[
    // 1: users and explicit role grants
    "CREATE TABLE users (
        id          TEXT PRIMARY KEY,
        world       TEXT NOT NULL,
        token_uid   TEXT,
        client_id   TEXT,
        traits      TEXT NOT NULL DEFAULT '[]',
        profile     TEXT NOT NULL DEFAULT '{}',
        moderation  TEXT NOT NULL DEFAULT 'none',
        created_at  TEXT NOT NULL
     );
     CREATE UNIQUE INDEX users_by_token ON users(world, token_uid) WHERE token_uid IS NOT NULL;
     CREATE UNIQUE INDEX users_by_client ON users(world, client_id) WHERE client_id IS NOT NULL;
     CREATE TABLE role_grants (
        world    TEXT NOT NULL,
        user_id  TEXT NOT NULL REFERENCES users(id),
        role     TEXT NOT NULL,
        room     TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (world, user_id, role, room)
     );",
    // 2: BBB meeting records (rooms and calls) and runtime server overrides
    "CREATE TABLE meetings (
        key           TEXT PRIMARY KEY,
        meeting_id    TEXT NOT NULL UNIQUE,
        attendee_pw   TEXT NOT NULL,
        moderator_pw  TEXT NOT NULL,
        server        TEXT,
        voice_bridge  TEXT,
        guest_policy  TEXT NOT NULL,
        updated_at    TEXT NOT NULL
     );
     CREATE TABLE server_overrides (
        server_id   TEXT PRIMARY KEY,
        active      INTEGER NOT NULL,
        updated_at  TEXT NOT NULL
     );",
    // 3: direct-message channels, their events, private calls and their invite lists
    "CREATE TABLE channels (
        id          TEXT PRIMARY KEY,
        world       TEXT NOT NULL,
        member_key  TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        UNIQUE (world, member_key)
     );
     CREATE TABLE channel_members (
        channel_id  TEXT NOT NULL REFERENCES channels(id),
        user_id     TEXT NOT NULL,
        PRIMARY KEY (channel_id, user_id)
     );
     CREATE INDEX channel_members_by_user ON channel_members(user_id);
     CREATE TABLE chat_events (
        channel_id  TEXT NOT NULL REFERENCES channels(id),
        event_id    INTEGER NOT NULL,
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
     );",
];

/// Brings the database to the newest schema, one transaction per migration.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let current: usize = conn.query_row("PRAGMA user_version", [], |row| row.get::<_, i64>(0))? as usize;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let version = index + 1;
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version as i64)?;
        tx.commit()?;
        log::info!("store: applied migration {version}");
    }
    Ok(())
}

/// The schema version this build expects.
pub fn latest_version() -> usize {
    MIGRATIONS.len()
}
