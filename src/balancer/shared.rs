//! The balancer in a cluster (SPEC §10): what it takes from the other instances (operator
//! overrides, shared polls, failed calls, placement charges, meeting changes) and the one
//! create per meeting cluster-wide ([`create_in_cluster`]): a create runs under the meeting's
//! claim in the database, after reading the shared record, so two instances never place one
//! room on two servers or send BBB two creates for one meeting. Warm joins stay local: a
//! meeting this instance knows running is ready without the database, until a
//! `MeetingChanged` notification says otherwise.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::joins::CreatePlan;
use super::{callback, BbbBalancer, CreateFailure};
use crate::bbb::client::{BbbClient, Endpoint};
use crate::cluster::message::WireMeetingLoad;
use crate::cluster::servers::ServerRow;
use crate::cluster::{Cluster, ClusterMessage};
use crate::ids::ServerId;
use crate::store::{MeetingRecord, Store};

/// Sent by the cluster listener: an operator enabled or disabled a server on another
/// instance (already saved there).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ApplyServerOverride {
    pub server: ServerId,
    pub active: bool,
}

impl Handler<ApplyServerOverride> for BbbBalancer {
    type Result = ();

    fn handle(&mut self, msg: ApplyServerOverride, _: &mut Context<Self>) {
        if self.pool.set_override(&msg.server, msg.active) {
            log::info!(
                "balancer: server={} {} by an operator (on another instance)",
                msg.server,
                if msg.active { "enabled" } else { "disabled" }
            );
            self.publish(&msg.server);
        }
    }
}

/// Sent by the cluster listener after a reconnect: notifications may have been missed, so
/// re-read the shared overrides and server rows and forget what is cached about meetings.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ResyncShared;

impl Handler<ResyncShared> for BbbBalancer {
    type Result = ();

    fn handle(&mut self, _: ResyncShared, ctx: &mut Context<Self>) {
        self.meetings.forget_all();
        let load = self.store.load_server_overrides();
        ctx.spawn(load.into_actor(self).map(|result, act, _| {
            if let Ok(overrides) = result {
                for (server, active) in overrides {
                    act.pool.set_override(&server, active);
                    act.publish(&server);
                }
            }
        }));
        // Polls and failures shared while the listener was away are in the server rows.
        if let Some(cluster) = &self.cluster {
            let rows = cluster.server_rows();
            ctx.spawn(rows.into_actor(self).map(|result, act, _| match result {
                Ok(rows) => act.restore_rows(rows),
                Err(e) => log::warn!("balancer: reading the shared server state failed: {e}"),
            }));
        }
    }
}

/// Sent by the cluster listener: what another instance learned about servers and meetings.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Shared(pub ClusterMessage);

impl Handler<Shared> for BbbBalancer {
    type Result = ();

    fn handle(&mut self, Shared(msg): Shared, _: &mut Context<Self>) {
        match msg {
            ClusterMessage::MeetingChanged { key } => self.meetings.forget(&key),
            ClusterMessage::ServerPolled {
                server,
                result,
                version,
            } => {
                self.finish_version(&server, Ok(version));
                let placed = self.pool.get(&server).map_or(0, |s| s.load.placed_since_poll);
                let result = result.map(|list| list.into_iter().map(Into::into).collect());
                let sent = self.meetings.epoch();
                self.apply_poll(&server, placed, sent, result);
            }
            ClusterMessage::CallFailed { server, error } => {
                let change = self.pool.record_failure(&server, error.clone());
                Self::log_health(&server, change, &error);
                self.publish(&server);
            }
            ClusterMessage::Charged { server } => self.pool.charge(&server),
            _ => {}
        }
    }
}

impl BbbBalancer {
    /// Starts from the cluster's stored view of the servers (SPEC §10): an instance that
    /// starts later shows and places with the same health, load, charges and version as the
    /// others, without waiting for the next shared poll.
    pub fn with_server_rows(mut self, rows: Vec<ServerRow>) -> Self {
        self.restore_rows(rows);
        self
    }

    fn restore_rows(&mut self, rows: Vec<ServerRow>) {
        for row in rows {
            if self.pool.restore(&row) {
                let id = row.server.clone();
                self.finish_version(&id, Ok(row.version));
                self.publish(&id);
            }
        }
    }

    /// In a cluster: stores what this instance knows of server `id` now. `poll` is the number
    /// of placement charges a poll result counted (`None` for a failed call or poll).
    pub(super) fn store_server_row(&self, id: &ServerId, poll: Option<usize>) {
        if let (Some(cluster), Some(row)) = (&self.cluster, self.pool.row(id)) {
            drop(cluster.save_server_row(row, poll.map(|n| n as u64)));
        }
    }

    /// In a cluster: one more placement charge on `id` in its stored row.
    pub(super) fn store_charge(&self, id: &ServerId) {
        if let Some(cluster) = &self.cluster {
            drop(cluster.charge_server(id.clone()));
        }
    }

    /// Tells the other instances, if any.
    pub(super) fn tell_cluster(&self, msg: ClusterMessage) {
        if let Some(cluster) = &self.cluster {
            cluster.publish(msg);
        }
    }

    /// BBB ended the meeting `key` (end callback or operator move): no longer running anywhere.
    /// The record is saved first (an end gives it a new incarnation, which the next create on
    /// any instance must use), then the others are told.
    pub(super) fn meeting_gone(&self, key: &str, meeting_id: &str, ctx: &mut Context<Self>) {
        let Some(cluster) = self.cluster.clone() else {
            return;
        };
        let key = key.to_string();
        let record = self
            .meetings
            .get(&key)
            .filter(|m| m.dirty)
            .map(|m| m.record.clone());
        let store = self.store.clone();
        let meeting_id = meeting_id.to_string();
        let update = async move {
            let saved = match record {
                Some(record) => store.save_meeting(record).await.is_ok(),
                None => false,
            };
            (saved, cluster.set_running(meeting_id, None).await)
        };
        ctx.spawn(update.into_actor(self).map(move |(saved, result), act, _| {
            if saved {
                act.meetings.saved(&key);
            }
            if let Err(e) = result {
                log::warn!("balancer: sharing that {key} ended failed: {e}");
            }
            act.tell_cluster(ClusterMessage::MeetingChanged { key });
        }));
    }
}

/// Everything a create under the cluster's claim needs, taken from the actor.
pub(super) struct ClusterCreate {
    pub cluster: Cluster,
    pub store: Store,
    pub client: BbbClient,
    pub plan: CreatePlan,
    pub public_url: String,
    pub end_callbacks: bool,
    /// The servers this join may use, with their endpoints.
    pub usable: Vec<(ServerId, Arc<Endpoint>)>,
    /// How long a claim holds: a BBB call's timeout plus a margin.
    pub lease: Duration,
}

/// What the cluster decided: the record and endpoint the meeting runs with (maybe another
/// instance's), and whether this instance sent the create.
pub(super) struct Adopted {
    pub record: MeetingRecord,
    pub endpoint: Arc<Endpoint>,
    pub created_here: bool,
}

/// A create of `record` on `endpoint` as the cluster allows it: under the meeting's claim,
/// with the stored record winning (its meetingID, passwords and, when usable, its server), and
/// no create at all when BBB already runs the meeting.
pub(super) async fn create_in_cluster(
    job: ClusterCreate,
    mut record: MeetingRecord,
    mut endpoint: Arc<Endpoint>,
    mut save: bool,
) -> Result<Adopted, CreateFailure> {
    let store_err = |e: crate::store::StoreError| CreateFailure::Store(e.to_string());
    let key = record.key.clone();
    let usable = |server: &Option<ServerId>| {
        server
            .as_ref()
            .and_then(|s| job.usable.iter().find(|(id, _)| id == s))
            .map(|(_, e)| e.clone())
    };
    let started = std::time::Instant::now();
    loop {
        if job
            .cluster
            .claim_meeting(key.clone(), job.lease)
            .await
            .map_err(store_err)?
        {
            break;
        }
        // Another instance is creating or placing it: wait for its outcome.
        let (shared, running) = job.cluster.shared_meeting(key.clone()).await.map_err(store_err)?;
        if let (Some(shared), true) = (shared, running) {
            if let Some(endpoint) = usable(&shared.server) {
                return Ok(Adopted {
                    record: shared,
                    endpoint,
                    created_here: false,
                });
            }
        }
        if started.elapsed() > job.lease * 2 {
            return Err(CreateFailure::Store(
                "the meeting's create claim stayed taken".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let result = create_claimed(&job, &mut record, &mut endpoint, &mut save, usable).await;
    job.cluster.release_meeting(key);
    result.map(|created_here| Adopted {
        record,
        endpoint,
        created_here,
    })
}

/// Under the claim: adopt the stored record, then create unless BBB runs it already.
async fn create_claimed(
    job: &ClusterCreate,
    record: &mut MeetingRecord,
    endpoint: &mut Arc<Endpoint>,
    save: &mut bool,
    usable: impl Fn(&Option<ServerId>) -> Option<Arc<Endpoint>>,
) -> Result<bool, CreateFailure> {
    let store_err = |e: crate::store::StoreError| CreateFailure::Store(e.to_string());
    let (shared, running) = job
        .cluster
        .shared_meeting(record.key.clone())
        .await
        .map_err(store_err)?;
    if let Some(shared) = shared {
        let here = record.server.clone();
        record.secrets = shared.secrets.clone();
        record.incarnation = shared.incarnation.clone();
        if let Some(shared_endpoint) = usable(&shared.server) {
            record.server = shared.server.clone();
            *endpoint = shared_endpoint;
            if running {
                return Ok(false);
            }
        }
        *save = *save || record.server != shared.server || here != shared.server;
        *save =
            *save || record.voice_bridge != shared.voice_bridge || record.guest_policy != shared.guest_policy;
    } else {
        *save = true;
    }
    if *save {
        job.store.save_meeting(record.clone()).await.map_err(store_err)?;
    }
    let callback = job.end_callbacks.then(|| {
        let meeting_id = &record.secrets.meeting_id;
        callback::callback_url(
            &job.public_url,
            meeting_id,
            &callback::token(endpoint.secret.expose(), meeting_id, &record.incarnation),
        )
    });
    let (query, presentation) = job.plan.query(record, callback.as_deref());
    job.client
        .create(endpoint, &query, presentation.as_deref())
        .await
        .map_err(CreateFailure::Bbb)?;
    let server = record.server.clone();
    if let Err(e) = job
        .cluster
        .set_running(record.secrets.meeting_id.clone(), server)
        .await
    {
        log::warn!("balancer: sharing that {} runs failed: {e}", record.key);
    }
    job.cluster.publish(ClusterMessage::MeetingChanged {
        key: record.key.clone(),
    });
    Ok(true)
}

/// The cluster form of a poll result.
pub(super) fn wire_poll(
    result: &Result<Vec<crate::bbb::xml::MeetingLoad>, crate::bbb::client::BbbError>,
) -> Result<Vec<WireMeetingLoad>, String> {
    match result {
        Ok(list) => Ok(list.iter().map(WireMeetingLoad::from).collect()),
        Err(e) => Err(e.to_string()),
    }
}
