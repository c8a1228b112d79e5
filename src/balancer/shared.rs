//! What the balancer takes from the other instances of a cluster: operator overrides
//! published elsewhere, and a resynchronisation after the cluster listener reconnects.

use actix::prelude::*;

use super::BbbBalancer;
use crate::ids::ServerId;

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
/// re-read the shared overrides.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ResyncShared;

impl Handler<ResyncShared> for BbbBalancer {
    type Result = ();

    fn handle(&mut self, _: ResyncShared, ctx: &mut Context<Self>) {
        let load = self.store.load_server_overrides();
        ctx.spawn(load.into_actor(self).map(|result, act, _| {
            if let Ok(overrides) = result {
                for (server, active) in overrides {
                    act.pool.set_override(&server, active);
                    act.publish(&server);
                }
            }
        }));
    }
}
