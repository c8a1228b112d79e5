//! What the cluster shares about meetings and BBB servers, in the database:
//! - create claims (`meeting_claims`): one instance at a time creates (or places) a meeting;
//!   a claim is a row with a lease, so an instance that dies mid-create blocks nothing once the
//!   lease expires;
//! - which meetings BBB runs (`running_meetings`), so an instance that has not seen a meeting
//!   before learns it from the database (once) instead of sending `create` again;
//! - poll leases (`server_state`): each BBB server is polled by one instance per interval.

use std::time::Duration;

use super::Cluster;
use crate::ids::ServerId;
use crate::store::postgres::Cached;
use crate::store::{MeetingRecord, StoreFuture};

impl Cluster {
    /// Takes the create claim of meeting `key` for `lease` unless another instance holds an
    /// unexpired one. True when this instance holds it now.
    pub fn claim_meeting(&self, key: String, lease: Duration) -> StoreFuture<bool> {
        let name = self.name().to_string();
        let pool = self.pg().pool().clone();
        let secs = lease.as_secs_f64();
        self.pg().runtime().spawn(async move {
            let c = pool.get().await?;
            Ok(c.cquery_opt(
                "INSERT INTO meeting_claims (key, holder, expires_at)
                 VALUES ($1, $2, now() + make_interval(secs => $3))
                 ON CONFLICT (key) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
                   WHERE meeting_claims.expires_at < now() OR meeting_claims.holder = excluded.holder
                 RETURNING holder",
                &[&key, &name, &secs],
            )
            .await?
            .is_some())
        })
    }

    /// Gives the claim of `key` back (after the create, whatever its outcome).
    pub fn release_meeting(&self, key: String) {
        let name = self.name().to_string();
        let pool = self.pg().pool().clone();
        drop(self.pg().runtime().spawn(async move {
            let c = pool.get().await?;
            c.cexecute(
                "DELETE FROM meeting_claims WHERE key = $1 AND holder = $2",
                &[&key, &name],
            )
            .await?;
            Ok(())
        }));
    }

    /// The stored record of meeting `key` and whether BBB runs it (on the record's server).
    pub fn shared_meeting(&self, key: String) -> StoreFuture<(Option<MeetingRecord>, bool)> {
        let pool = self.pg().pool().clone();
        self.pg().runtime().spawn(async move {
            let c = pool.get().await?;
            let Some(record) = crate::store::postgres::load_meeting(&c, &key).await? else {
                return Ok((None, false));
            };
            let running = c
                .query_opt(
                    "SELECT 1 FROM running_meetings WHERE meeting_id = $1 AND server = $2",
                    &[
                        &record.secrets.meeting_id,
                        &record.server.as_ref().map(ServerId::as_str),
                    ],
                )
                .await?
                .is_some();
            Ok((Some(record), running))
        })
    }

    /// The stored record of the meeting with BBB meetingID `meeting_id`.
    pub fn meeting_by_id(&self, meeting_id: String) -> StoreFuture<Option<MeetingRecord>> {
        let pool = self.pg().pool().clone();
        self.pg().runtime().spawn(async move {
            let c = pool.get().await?;
            crate::store::postgres::load_meeting_by_id(&c, &meeting_id).await
        })
    }

    /// BBB runs `meeting_id` on `server` (`Some`), or no longer runs it (`None`).
    pub fn set_running(&self, meeting_id: String, server: Option<ServerId>) -> StoreFuture<()> {
        let pool = self.pg().pool().clone();
        self.pg().runtime().spawn(async move {
            let c = pool.get().await?;
            match server {
                Some(server) => {
                    c.cexecute(
                        "INSERT INTO running_meetings (meeting_id, server) VALUES ($1, $2)
                         ON CONFLICT (meeting_id) DO UPDATE SET server = excluded.server, since = now()",
                        &[&meeting_id, &server.as_str()],
                    )
                    .await?
                }
                None => {
                    c.cexecute(
                        "DELETE FROM running_meetings WHERE meeting_id = $1",
                        &[&meeting_id],
                    )
                    .await?
                }
            };
            Ok(())
        })
    }

    /// A poll of `server` listed exactly these meetings: the running set of that server.
    pub fn set_running_on(&self, server: ServerId, listed: Vec<String>) -> StoreFuture<()> {
        let pool = self.pg().pool().clone();
        self.pg().runtime().spawn(async move {
            let mut c = pool.get().await?;
            let tx = c.transaction().await?;
            tx.cexecute(
                "DELETE FROM running_meetings WHERE server = $1 AND NOT (meeting_id = ANY($2))",
                &[&server.as_str(), &listed],
            )
            .await?;
            tx.cexecute(
                "INSERT INTO running_meetings (meeting_id, server)
                 SELECT m, $1 FROM unnest($2::text[]) AS m
                 ON CONFLICT (meeting_id) DO UPDATE SET server = excluded.server",
                &[&server.as_str(), &listed],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Takes the poll lease of `server` for `lease` unless another instance polled it more
    /// recently. True when this instance should poll it now.
    pub fn take_poll_lease(&self, server: ServerId, lease: Duration) -> StoreFuture<bool> {
        let name = self.name().to_string();
        let pool = self.pg().pool().clone();
        let secs = lease.as_secs_f64();
        self.pg().runtime().spawn(async move {
            let c = pool.get().await?;
            Ok(c.cquery_opt(
                "INSERT INTO server_state (server_id, poll_holder, poll_until)
                 VALUES ($1, $2, now() + make_interval(secs => $3))
                 ON CONFLICT (server_id) DO UPDATE
                   SET poll_holder = excluded.poll_holder, poll_until = excluded.poll_until
                   WHERE server_state.poll_until IS NULL OR server_state.poll_until < now()
                 RETURNING poll_holder",
                &[&server.as_str(), &name, &secs],
            )
            .await?
            .is_some())
        })
    }
}
