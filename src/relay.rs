//! The cluster relay: the instance's one `LISTEN` connection: receives what other instances publish and hands
//! it to the local actors, in arrival order. Reconnects by itself after the database comes
//! back; after a reconnect it resynchronises what it may have missed (server overrides and
//! moderation are re-read).

use std::time::Duration;

use actix::prelude::*;
use futures_util::future::poll_fn;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::balancer::{ApplyServerOverride, BbbBalancer, Shared};
use crate::cluster::message::{ClusterMessage, Envelope, CHANNEL};
use crate::cluster::Cluster;
use crate::permissions::{ApplyRemoteModeration, PermissionActor};
use crate::registry::{Deliver, Evict, SessionRegistry};

/// The local actors remote messages are for.
#[derive(Clone)]
pub struct Targets {
    pub registry: Addr<SessionRegistry>,
    pub balancer: Addr<BbbBalancer>,
    pub perms: Addr<PermissionActor>,
}

/// Starts listening (on the store's runtime; runs for the life of the process) and waits
/// until the first `LISTEN` is in place (at most 5 s), so an instance that serves hears
/// every notification published from then on.
pub async fn start(cluster: &Cluster, targets: Targets) {
    let (ready, listening) = tokio::sync::oneshot::channel();
    if let Some(rt) = cluster.pg().runtime().handle() {
        rt.spawn(run(cluster.clone(), targets, ready));
    }
    if tokio::time::timeout(Duration::from_secs(5), listening)
        .await
        .is_err()
    {
        log::warn!("cluster: instance={} is not listening yet", cluster.name());
    }
}

async fn run(cluster: Cluster, targets: Targets, ready: tokio::sync::oneshot::Sender<()>) {
    let mut connected_before = false;
    let mut ready = Some(ready);
    loop {
        match listen_once(&cluster, &targets, connected_before, &mut ready).await {
            Ok(()) => {}
            Err(e) => log::debug!("cluster: listener: {e}"),
        }
        connected_before = true;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// One connection's life: connect, LISTEN, dispatch until it breaks.
async fn listen_once(
    cluster: &Cluster,
    targets: &Targets,
    resync: bool,
    ready: &mut Option<tokio::sync::oneshot::Sender<()>>,
) -> Result<(), String> {
    let (client, mut connection) = tokio_postgres::connect(cluster.pg().url(), NoTls)
        .await
        .map_err(|e| e.to_string())?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        loop {
            match poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if tx.send(n.payload().to_string()).is_err() {
                        break;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(|e| e.to_string())?;
    if let Some(ready) = ready.take() {
        let _ = ready.send(());
    }
    if resync {
        log::info!("cluster: instance={} listening again", cluster.name());
        targets.balancer.do_send(crate::balancer::ResyncShared);
        targets.perms.do_send(crate::permissions::ResyncModeration);
    }
    while let Some(payload) = rx.recv().await {
        if let Some(msg) = decode(cluster, &payload).await {
            dispatch(cluster, targets, msg);
        }
    }
    driver.abort();
    Err("connection closed".into())
}

/// The message of a notification from another instance (`None` for our own or garbage).
async fn decode(cluster: &Cluster, payload: &str) -> Option<ClusterMessage> {
    let envelope: Envelope = serde_json::from_str(payload).ok()?;
    if envelope.from == cluster.name() {
        return None;
    }
    if let Some(msg) = envelope.msg {
        return Some(msg);
    }
    let id = envelope.payload_ref?;
    let c = cluster.pg().pool().get().await.ok()?;
    let row = c
        .query_opt("SELECT payload FROM push_payloads WHERE id = $1", &[&id])
        .await
        .ok()??;
    serde_json::from_str(&row.get::<_, String>(0)).ok()
}

fn dispatch(cluster: &Cluster, targets: &Targets, msg: ClusterMessage) {
    match msg {
        ClusterMessage::Publish { deliveries } => targets.registry.do_send(Deliver {
            deliveries: deliveries
                .into_iter()
                .map(|d| (d.user, crate::registry::Push::from_wire(d.push)))
                .collect(),
        }),
        ClusterMessage::Replace { instance, user, conn } => {
            if instance == cluster.name() {
                targets.registry.do_send(Evict { user, conn });
            }
        }
        ClusterMessage::ServerActive { server, active } => {
            targets.balancer.do_send(ApplyServerOverride { server, active })
        }
        msg @ (ClusterMessage::MeetingChanged { .. }
        | ClusterMessage::ServerPolled { .. }
        | ClusterMessage::CallFailed { .. }
        | ClusterMessage::Charged { .. }) => targets.balancer.do_send(Shared(msg)),
        ClusterMessage::Moderation { world, user, state } => {
            targets
                .perms
                .do_send(ApplyRemoteModeration { world, user, state })
        }
    }
}
