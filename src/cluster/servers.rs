//! What the cluster knows of each BBB server lives in its `server_state` row (SPEC §10):
//! health streaks, the last poll (time, load, meeting counts), the version and the placement
//! charges made since that poll. NOTIFY stays the fast path between running instances; the
//! row is what an instance reads when it starts or its listener reconnects, so it shows and
//! places with the cluster's view at once instead of defaults until the next shared poll.
//!
//! Writers: the poll-lease holder writes a poll's result; an instance whose call failed writes
//! its streaks; a placement adds one charge atomically. `last_error` is a BBB client error's
//! text (the same shown in `/admin/servers`, no secret in it).

use super::Cluster;
use crate::ids::ServerId;
use crate::store::postgres::Cached;
use crate::store::StoreFuture;

/// One server's shared state, as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerRow {
    pub server: ServerId,
    pub healthy: bool,
    pub fail_streak: u32,
    pub ok_streak: u32,
    pub last_error: Option<String>,
    /// RFC 3339.
    pub last_poll_at: Option<String>,
    pub polled_cost: f64,
    pub polled_meetings: u64,
    pub polled_participants: u64,
    pub placed_since_poll: u64,
    pub version: Option<String>,
}

impl Cluster {
    /// Writes `row`'s health, last poll and version. `poll` is `Some(charges counted in that
    /// poll)` when the row carries a poll result: those charges leave the stored count (charges
    /// made while the poll ran stay). Without it the stored charges are left alone.
    pub fn save_server_row(&self, row: ServerRow, poll: Option<u64>) -> StoreFuture<()> {
        let pool = self.pg().pool().clone();
        self.pg().runtime().spawn(async move {
            let c = pool.get().await?;
            let counted = poll.map(|n| n as i64);
            c.cexecute(
                "INSERT INTO server_state (server_id, healthy, fail_streak, ok_streak, last_error,
                     last_poll_at, polled_cost, polled_meetings, polled_participants, version)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (server_id) DO UPDATE SET healthy = excluded.healthy,
                     fail_streak = excluded.fail_streak, ok_streak = excluded.ok_streak,
                     last_error = excluded.last_error, last_poll_at = excluded.last_poll_at,
                     polled_cost = excluded.polled_cost, polled_meetings = excluded.polled_meetings,
                     polled_participants = excluded.polled_participants,
                     version = COALESCE(excluded.version, server_state.version),
                     placed_since_poll = CASE WHEN $11::BIGINT IS NULL THEN server_state.placed_since_poll
                         ELSE GREATEST(server_state.placed_since_poll - $11::BIGINT, 0) END",
                &[
                    &row.server.as_str(),
                    &row.healthy,
                    &(row.fail_streak as i32),
                    &(row.ok_streak as i32),
                    &row.last_error,
                    &row.last_poll_at,
                    &row.polled_cost,
                    &(row.polled_meetings as i64),
                    &(row.polled_participants as i64),
                    &row.version,
                    &counted,
                ],
            )
            .await?;
            Ok(())
        })
    }

    /// A meeting was placed on `server`: one more charge until its next poll.
    pub fn charge_server(&self, server: ServerId) -> StoreFuture<()> {
        let pool = self.pg().pool().clone();
        self.pg().runtime().spawn(async move {
            let c = pool.get().await?;
            c.cexecute(
                "INSERT INTO server_state (server_id, placed_since_poll) VALUES ($1, 1)
                 ON CONFLICT (server_id) DO UPDATE
                   SET placed_since_poll = server_state.placed_since_poll + 1",
                &[&server.as_str()],
            )
            .await?;
            Ok(())
        })
    }

    /// Every server row an instance has written (rows holding only a poll lease or charges
    /// carry no health yet and are left out).
    pub fn server_rows(&self) -> StoreFuture<Vec<ServerRow>> {
        let pool = self.pg().pool().clone();
        self.pg().runtime().spawn(async move {
            let c = pool.get().await?;
            Ok(c.cquery(
                "SELECT server_id, healthy, fail_streak, ok_streak, last_error, last_poll_at,
                         polled_cost, polled_meetings, polled_participants, placed_since_poll, version
                     FROM server_state WHERE healthy IS NOT NULL ORDER BY server_id",
                &[],
            )
            .await?
            .iter()
            .map(|r| ServerRow {
                server: ServerId(r.get(0)),
                healthy: r.get(1),
                fail_streak: r.get::<_, i32>(2).max(0) as u32,
                ok_streak: r.get::<_, i32>(3).max(0) as u32,
                last_error: r.get(4),
                last_poll_at: r.get(5),
                polled_cost: r.get(6),
                polled_meetings: r.get::<_, i64>(7).max(0) as u64,
                polled_participants: r.get::<_, i64>(8).max(0) as u64,
                placed_since_poll: r.get::<_, i64>(9).max(0) as u64,
                version: r.get(10),
            })
            .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;
    use crate::store::postgres::PgStore;

    fn row(server: &str) -> ServerRow {
        ServerRow {
            server: ServerId::new(server),
            healthy: false,
            fail_streak: 2,
            ok_streak: 0,
            last_error: Some("HTTP 500".into()),
            last_poll_at: Some("2026-01-02T03:04:05+00:00".into()),
            polled_cost: 7.5,
            polled_meetings: 3,
            polled_participants: 12,
            placed_since_poll: 0,
            version: Some("2.7.3".into()),
        }
    }

    #[actix_rt::test]
    async fn server_rows_keep_health_poll_version_and_count_charges_atomically() {
        let server = crate::pgserver::shared().unwrap();
        let url = server.fresh_database().unwrap();
        let cluster = Cluster::start(PgStore::open(&url).await.unwrap(), "node-a".into())
            .await
            .unwrap();
        // A poll lease alone (or charges alone) is no shared state yet.
        assert!(cluster
            .take_poll_lease(ServerId::new("s2"), std::time::Duration::from_secs(1))
            .await
            .unwrap());
        assert!(cluster.server_rows().await.unwrap().is_empty());
        cluster.save_server_row(row("s1"), None).await.unwrap();
        // Charges from several instances at once all count.
        let charges = (0..5).map(|_| cluster.charge_server(ServerId::new("s1")));
        for charged in futures_util::future::join_all(charges).await {
            charged.unwrap();
        }
        let rows = cluster.server_rows().await.unwrap();
        assert_eq!(
            rows,
            vec![ServerRow {
                placed_since_poll: 5,
                ..row("s1")
            }]
        );
        // A failed call's write keeps the charges and the known version.
        let failed = ServerRow {
            fail_streak: 3,
            version: None,
            ..row("s1")
        };
        cluster.save_server_row(failed, None).await.unwrap();
        let rows = cluster.server_rows().await.unwrap();
        assert_eq!(rows[0].fail_streak, 3);
        assert_eq!(rows[0].placed_since_poll, 5);
        assert_eq!(rows[0].version.as_deref(), Some("2.7.3"));
        // A poll that counted 4 of them leaves the one made while it ran.
        let polled = ServerRow {
            healthy: true,
            fail_streak: 0,
            ok_streak: 1,
            last_error: None,
            ..row("s1")
        };
        cluster.save_server_row(polled.clone(), Some(4)).await.unwrap();
        let rows = cluster.server_rows().await.unwrap();
        assert_eq!(
            rows,
            vec![ServerRow {
                placed_since_poll: 1,
                ..polled.clone()
            }]
        );
        cluster.save_server_row(polled, Some(9)).await.unwrap();
        assert_eq!(cluster.server_rows().await.unwrap()[0].placed_since_poll, 0);
    }
}
