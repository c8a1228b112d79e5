//! BBB meeting records of rooms and calls, and operators' runtime server overrides.

use rusqlite::{params, Connection};

use crate::ids::ServerId;

/// A meeting's identity on BBB; persisted so restarts and moves keep it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeetingSecrets {
    pub meeting_id: String,
    pub attendee_pw: String,
    pub moderator_pw: String,
}

/// A persisted meeting: which BBB meeting a room or call is, and where it lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeetingRecord {
    /// `room/{world}/{room}` or `call/{call_id}`.
    pub key: String,
    pub secrets: MeetingSecrets,
    pub server: Option<ServerId>,
    pub voice_bridge: Option<String>,
    pub guest_policy: String,
    /// Nonce of the meeting's current incarnation on BBB: part of its end-callback token
    /// (`balancer::callback`); empty in records from before it existed.
    pub incarnation: String,
}

pub fn save(conn: &Connection, m: &MeetingRecord) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO meetings (key, meeting_id, attendee_pw, moderator_pw, server, voice_bridge, guest_policy, updated_at, incarnation)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT(key) DO UPDATE SET server = excluded.server, voice_bridge = excluded.voice_bridge,
             guest_policy = excluded.guest_policy, updated_at = excluded.updated_at,
             incarnation = excluded.incarnation",
    )?
    .execute(params![
        m.key,
        m.secrets.meeting_id,
        m.secrets.attendee_pw,
        m.secrets.moderator_pw,
        m.server.as_ref().map(ServerId::as_str),
        m.voice_bridge,
        m.guest_policy,
        chrono::Utc::now().to_rfc3339(),
        m.incarnation
    ])?;
    Ok(())
}

pub fn all(conn: &Connection) -> rusqlite::Result<Vec<MeetingRecord>> {
    let mut stmt = conn.prepare_cached(
        "SELECT key, meeting_id, attendee_pw, moderator_pw, server, voice_bridge, guest_policy, incarnation FROM meetings",
    )?;
    let rows = stmt.query_map([], |row| {
        Ok(MeetingRecord {
            key: row.get(0)?,
            secrets: MeetingSecrets {
                meeting_id: row.get(1)?,
                attendee_pw: row.get(2)?,
                moderator_pw: row.get(3)?,
            },
            server: row.get::<_, Option<String>>(4)?.map(ServerId),
            voice_bridge: row.get(5)?,
            guest_policy: row.get(6)?,
            incarnation: row.get(7)?,
        })
    })?;
    rows.collect()
}

pub fn set_server_override(conn: &Connection, server: &ServerId, active: bool) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO server_overrides (server_id, active, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT(server_id) DO UPDATE SET active = excluded.active, updated_at = excluded.updated_at",
    )?
    .execute(params![server.as_str(), active, chrono::Utc::now().to_rfc3339()])?;
    Ok(())
}

pub fn server_overrides(conn: &Connection) -> rusqlite::Result<Vec<(ServerId, bool)>> {
    let mut stmt = conn.prepare_cached("SELECT server_id, active FROM server_overrides")?;
    let rows = stmt.query_map([], |row| Ok((ServerId(row.get(0)?), row.get(1)?)))?;
    rows.collect()
}
