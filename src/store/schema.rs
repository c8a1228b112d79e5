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
    // 4: conversations as the venueless webapp sees them: hidden memberships, channel activity,
    //    read pointers, notifications, and each user's last authenticate (the inactive rule)
    "ALTER TABLE users ADD COLUMN last_login_ms INTEGER;
     ALTER TABLE channel_members ADD COLUMN hidden INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE channels ADD COLUMN last_activity TEXT NOT NULL DEFAULT '';
     UPDATE channels SET last_activity = COALESCE(
        (SELECT MAX(e.timestamp) FROM chat_events e WHERE e.channel_id = channels.id), created_at);
     CREATE INDEX channels_by_activity ON channels(world, last_activity);
     CREATE TABLE read_pointers (
        user_id     TEXT NOT NULL,
        channel_id  TEXT NOT NULL REFERENCES channels(id),
        event_id    INTEGER NOT NULL,
        PRIMARY KEY (user_id, channel_id)
     );
     CREATE TABLE notifications (
        user_id     TEXT NOT NULL,
        channel_id  TEXT NOT NULL REFERENCES channels(id),
        event_id    INTEGER NOT NULL,
        PRIMARY KEY (user_id, channel_id, event_id)
     );",
    // 5: the readiness probe's row (GET /readyz proves a write works by rewriting it)
    "CREATE TABLE health_probe (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        probed_at   TEXT NOT NULL,
        payload     BLOB
     );",
    // 6: the incarnation nonce of each meeting record (end-callback tokens)
    "ALTER TABLE meetings ADD COLUMN incarnation TEXT NOT NULL DEFAULT '';",
];

/// Brings the database to the newest schema, one transaction per migration.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    migrate_to(conn, MIGRATIONS.len())
}

/// Applies the migrations up to `target` (tests start from an older schema with it).
fn migrate_to(conn: &mut Connection, target: usize) -> rusqlite::Result<()> {
    let current: usize = conn.query_row("PRAGMA user_version", [], |row| row.get::<_, i64>(0))? as usize;
    for (index, sql) in MIGRATIONS.iter().enumerate().take(target).skip(current) {
        let version = index + 1;
        let tx = super::write_transaction(conn)?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version as i64)?;
        tx.commit()?;
        log::info!("store: applied migration {version}");
    }
    Ok(())
}

/// Refuses a database whose schema is newer than this build knows (an older build started
/// on a database a newer one migrated).
pub fn check_not_newer(conn: &Connection) -> Result<(), super::StoreError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if current as usize > MIGRATIONS.len() {
        return Err(super::StoreError(format!(
            "the database schema is version {current}, newer than this build's {}: upgrade bbb-gateway",
            MIGRATIONS.len()
        )));
    }
    Ok(())
}

/// The schema version this build expects.
pub fn latest_version() -> usize {
    MIGRATIONS.len()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn conversations_migration_keeps_existing_channels_ordered_by_their_last_event() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_to(&mut conn, 3).unwrap();
        conn.execute_batch(
            "INSERT INTO users (id, world, client_id, created_at) VALUES ('u1', 'w', 'x', 't');
             INSERT INTO channels (id, world, member_key, created_at) VALUES ('c1', 'w', 'u1,u2', '2026-01-01');
             INSERT INTO channels (id, world, member_key, created_at) VALUES ('c2', 'w', 'u1,u3', '2026-01-02');
             INSERT INTO channel_members (channel_id, user_id) VALUES ('c1', 'u1');
             INSERT INTO chat_events VALUES ('c1', 1, 'u1', '2026-02-01', 'channel.message', '{}');",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let activity: Vec<(String, String)> = conn
            .prepare("SELECT id, last_activity FROM channels ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            activity,
            [
                ("c1".into(), "2026-02-01".into()),
                ("c2".into(), "2026-01-02".into())
            ]
        );
        let (hidden, last_login): (i64, Option<i64>) = conn
            .query_row(
                "SELECT m.hidden, u.last_login_ms FROM channel_members m JOIN users u ON u.id = m.user_id",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((hidden, last_login), (0, None), "memberships stay visible");
    }

    #[test]
    fn meeting_records_from_before_incarnations_migrate_with_an_empty_one() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_to(&mut conn, 3).unwrap();
        conn.execute(
            "INSERT INTO meetings (key, meeting_id, attendee_pw, moderator_pw, server, voice_bridge, guest_policy, updated_at)
             VALUES ('room/w/old', 'mid-old', 'a', 'm', 's1', NULL, 'ALWAYS_ACCEPT', 'x')",
            [],
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version as usize, latest_version());
        let all = super::super::meetings::all(&conn).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].key, "room/w/old");
        assert_eq!(all[0].incarnation, "");
    }
}
