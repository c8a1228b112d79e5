//! Several instances on one PostgreSQL database (SPEC §10). Present only with a
//! `postgres://` database; with SQLite every instance-wide question has a local answer.
//!
//! - Live instances: each instance upserts its row in `instances` every
//!   [`HEARTBEAT`]; an instance is live while its heartbeat is younger than [`EXPIRY`].
//! - Sockets: one `instance_sockets` row per authenticated socket, so `connection_limit` and
//!   presence count sockets on every live instance.
//! - Messages ([`message::ClusterMessage`]) go out through one publisher task, in order,
//!   with `pg_notify`, and come in through one dedicated `LISTEN` connection
//!   (the relay, `relay.rs`), which hands them to the local actors.
//!
//! Everything runs on the store's runtime, off the actix event loops.

pub mod meetings;
pub mod message;
pub mod servers;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::ids::UserId;
use crate::store::postgres::{Cached, PgStore};
use crate::store::{StoreError, StoreFuture};
pub use message::ClusterMessage;
use message::Encoded;

/// How often an instance refreshes its heartbeat.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// An instance whose heartbeat is older than this is dead: its sockets stop counting.
pub const EXPIRY_SECS: f64 = 5.0;

/// One live instance, for `/admin/servers`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct InstanceInfo {
    pub instance_name: String,
    pub sockets: i64,
    pub last_heartbeat: String,
}

struct Inner {
    name: String,
    pg: PgStore,
    outbox: mpsc::UnboundedSender<ClusterMessage>,
    local_sockets: AtomicUsize,
    /// Set while the database is unreachable, so the outage is logged once.
    down: AtomicBool,
}

/// The cluster handle every actor that shares state gets a clone of.
#[derive(Clone)]
pub struct Cluster(Arc<Inner>);

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cluster({})", self.0.name)
    }
}

impl Cluster {
    /// Registers this instance (forgetting sockets a previous run under the same name left)
    /// and starts the publisher and heartbeat tasks.
    pub async fn start(pg: PgStore, name: String) -> Result<Self, StoreError> {
        let (outbox, queue) = mpsc::unbounded_channel();
        let cluster = Cluster(Arc::new(Inner {
            name,
            pg,
            outbox,
            local_sockets: AtomicUsize::new(0),
            down: AtomicBool::new(false),
        }));
        let me = cluster.clone();
        cluster
            .0
            .pg
            .runtime()
            .spawn(async move {
                let c = me.0.pg.pool().get().await?;
                c.cexecute("DELETE FROM instance_sockets WHERE instance = $1", &[&me.0.name])
                    .await?;
                me.beat(&c).await
            })
            .await?;
        if let Some(rt) = cluster.0.pg.runtime().handle() {
            rt.spawn(publisher(cluster.clone(), queue));
            rt.spawn(heartbeat(cluster.clone()));
        }
        Ok(cluster)
    }

    pub fn name(&self) -> &str {
        &self.0.name
    }

    pub fn pg(&self) -> &PgStore {
        &self.0.pg
    }

    /// Queues `msg` for every other instance; sent in queue order.
    pub fn publish(&self, msg: ClusterMessage) {
        let _ = self.0.outbox.send(msg);
    }

    /// The registry's count of local authenticated sockets (sent with the heartbeat).
    pub fn set_local_sockets(&self, n: usize) {
        self.0.local_sockets.store(n, Ordering::Relaxed);
    }

    async fn beat(&self, c: &deadpool_postgres::Object) -> Result<(), StoreError> {
        let sockets = self.0.local_sockets.load(Ordering::Relaxed) as i64;
        c.cexecute(
            "INSERT INTO instances (name, sockets, last_heartbeat) VALUES ($1, $2, now())
             ON CONFLICT (name) DO UPDATE SET sockets = excluded.sockets, last_heartbeat = now()",
            &[&self.0.name, &sockets],
        )
        .await?;
        Ok(())
    }

    /// Logs the first failure of an outage and the recovery, nothing in between.
    fn note(&self, result: &Result<(), StoreError>) {
        match result {
            Err(e) => {
                if !self.0.down.swap(true, Ordering::Relaxed) {
                    log::error!("cluster: instance={} lost the database: {e}", self.0.name);
                }
            }
            Ok(()) => {
                if self.0.down.swap(false, Ordering::Relaxed) {
                    log::info!("cluster: instance={} reaches the database again", self.0.name);
                }
            }
        }
    }

    /// A socket of `user` authenticated here. Returns the sockets (instance, conn) beyond
    /// `limit` counting every live instance, newest kept; their rows are removed.
    pub fn socket_opened(
        &self,
        user: UserId,
        conn: u64,
        limit: Option<usize>,
    ) -> StoreFuture<Vec<(String, u64)>> {
        let name = self.0.name.clone();
        let pool = self.0.pg.pool().clone();
        self.0.pg.runtime().spawn(async move {
            let c = pool.get().await?;
            c.cexecute(
                "INSERT INTO instance_sockets (instance, conn, user_id, opened_at)
                 VALUES ($1, $2, $3, clock_timestamp()) ON CONFLICT DO NOTHING",
                &[&name, &(conn as i64), &user.as_str()],
            )
            .await?;
            let Some(limit) = limit.filter(|l| *l > 0) else {
                return Ok(Vec::new());
            };
            let excess: Vec<(String, u64)> = c
                .query(
                    "SELECT s.instance, s.conn FROM instance_sockets s JOIN instances i ON i.name = s.instance
                     WHERE s.user_id = $1 AND i.last_heartbeat > now() - make_interval(secs => $2)
                     ORDER BY s.opened_at DESC, s.instance, s.conn OFFSET $3",
                    &[&user.as_str(), &EXPIRY_SECS, &(limit as i64)],
                )
                .await?
                .iter()
                .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64))
                .collect();
            for (instance, conn) in &excess {
                c.cexecute(
                    "DELETE FROM instance_sockets WHERE instance = $1 AND conn = $2",
                    &[instance, &(*conn as i64)],
                )
                .await?;
            }
            Ok(excess)
        })
    }

    /// A graceful stop: this instance and its sockets leave the shared tables.
    pub fn leave(&self) -> StoreFuture<()> {
        let name = self.0.name.clone();
        let pool = self.0.pg.pool().clone();
        self.0.pg.runtime().spawn(async move {
            let c = pool.get().await?;
            c.cexecute("DELETE FROM instance_sockets WHERE instance = $1", &[&name])
                .await?;
            c.cexecute("DELETE FROM instances WHERE name = $1", &[&name])
                .await?;
            Ok(())
        })
    }

    /// A socket of this instance closed (or was replaced).
    pub fn socket_closed(&self, conn: u64) {
        let name = self.0.name.clone();
        let pool = self.0.pg.pool().clone();
        let done = self.0.pg.runtime().spawn(async move {
            let c = pool.get().await?;
            c.cexecute(
                "DELETE FROM instance_sockets WHERE instance = $1 AND conn = $2",
                &[&name, &(conn as i64)],
            )
            .await?;
            Ok(())
        });
        drop(done);
    }

    /// Which of `users` have an authenticated socket on a live instance.
    pub fn online(&self, users: Vec<UserId>) -> StoreFuture<HashSet<UserId>> {
        let pool = self.0.pg.pool().clone();
        self.0.pg.runtime().spawn(async move {
            let c = pool.get().await?;
            let ids: Vec<&str> = users.iter().map(UserId::as_str).collect();
            Ok(c.cquery(
                "SELECT DISTINCT s.user_id FROM instance_sockets s JOIN instances i ON i.name = s.instance
                     WHERE s.user_id = ANY($1) AND i.last_heartbeat > now() - make_interval(secs => $2)",
                &[&ids, &EXPIRY_SECS],
            )
            .await?
            .iter()
            .map(|r| UserId(r.get(0)))
            .collect())
        })
    }

    /// The live instances.
    pub fn instances(&self) -> StoreFuture<Vec<InstanceInfo>> {
        let pool = self.0.pg.pool().clone();
        self.0.pg.runtime().spawn(async move {
            let c = pool.get().await?;
            Ok(c
                .query(
                    "SELECT name, sockets, to_char(last_heartbeat AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')
                     FROM instances WHERE last_heartbeat > now() - make_interval(secs => $1) ORDER BY name",
                    &[&EXPIRY_SECS],
                )
                .await?
                .iter()
                .map(|r| InstanceInfo {
                    instance_name: r.get(0),
                    sockets: r.get(1),
                    last_heartbeat: r.get(2),
                })
                .collect())
        })
    }
}

/// Sends queued messages one at a time, so they arrive in the order they were queued.
async fn publisher(cluster: Cluster, mut queue: mpsc::UnboundedReceiver<ClusterMessage>) {
    while let Some(msg) = queue.recv().await {
        let result = send(&cluster, &msg).await;
        if let Err(e) = &result {
            log::debug!("cluster: a notification was not sent: {e}");
        }
        cluster.note(&result);
    }
}

async fn send(cluster: &Cluster, msg: &ClusterMessage) -> Result<(), StoreError> {
    let name = cluster.name();
    let encoded = message::encode(name, msg).map_err(|e| StoreError(format!("encode: {e}")))?;
    let c = cluster.0.pg.pool().get().await?;
    let payload = match encoded {
        Encoded::Inline(text) => text,
        Encoded::Stored(text) => {
            let id: i64 = c
                .query_one(
                    "INSERT INTO push_payloads (payload) VALUES ($1) RETURNING id",
                    &[&text],
                )
                .await?
                .get(0);
            message::reference(name, id).map_err(|e| StoreError(format!("encode: {e}")))?
        }
    };
    c.cexecute("SELECT pg_notify($1, $2)", &[&message::CHANNEL, &payload])
        .await?;
    Ok(())
}

/// Refreshes this instance's heartbeat and removes what dead instances and old payloads left.
async fn heartbeat(cluster: Cluster) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    let mut round: u64 = 0;
    loop {
        tick.tick().await;
        round += 1;
        let result = async {
            let c = cluster.0.pg.pool().get().await?;
            cluster.beat(&c).await?;
            if round.is_multiple_of(30) {
                c.batch_execute(
                    "DELETE FROM push_payloads WHERE created_at < now() - interval '5 minutes';
                     DELETE FROM instance_sockets s USING instances i
                       WHERE i.name = s.instance AND i.last_heartbeat < now() - interval '1 minute';
                     DELETE FROM instances WHERE last_heartbeat < now() - interval '1 day';",
                )
                .await?;
            }
            Ok(())
        }
        .await;
        cluster.note(&result);
    }
}
