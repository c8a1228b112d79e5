//! Login and user commands (SPEC §4.1, §4.2): the logic behind `authenticate`, `user.update`
//! and `user.fetch`. Sessions call these functions and encode what they return.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::auth;
use crate::bus::{self, Audience, Delivery, Publish};
use crate::chat;
use crate::error::Error;
use crate::ids::{UserId, WorldId};
use crate::permissions::rules::{Moderation, WORLD_VIEW};
use crate::permissions::{GetWorldRights, GetWorldView, Principal, WorldView};
use crate::protocol::reply::Reply;
use crate::protocol::{frame, wire};
use crate::registry::{ConnId, Push};
use crate::services::Services;
use crate::store::{ConversationList, LoginKey, UserRecord};

/// A successful login: the user, what they may see, and their conversation list.
#[derive(Clone, Debug)]
pub struct LoggedIn {
    pub record: UserRecord,
    pub view: WorldView,
    pub conversations: ConversationList,
}

/// `authenticate`: credentials, the right to exist in the world (creating the user if they
/// may), moderation, then the world view and channels.
pub async fn login(services: Services, world: WorldId, body: Value) -> Result<LoggedIn, Error> {
    let settings = services.config.current();
    let world_settings = settings.world(world.as_str()).ok_or(Error::UnknownWorld)?;
    let creds = auth::credentials(&body, &world_settings.jwt_secrets)?;
    let token_uid = match &creds.key {
        LoginKey::Token(uid) => Some(uid.clone()),
        LoginKey::Client(_) => None,
    };
    let newcomer = Principal {
        id: None,
        token_uid,
        traits: creds.traits.iter().flatten().cloned().collect(),
    };
    let may_create = services
        .perms
        .send(GetWorldRights {
            world: world.clone(),
            principal: newcomer,
        })
        .await??
        .has(WORLD_VIEW);
    let not_allowed = if creds.is_token() {
        Error::AuthDenied
    } else {
        Error::MissingToken
    };
    let mut record = services
        .store
        .login_user(
            world.clone(),
            creds.key.clone(),
            creds.traits.clone(),
            creds.profile.clone(),
            may_create,
        )
        .await?
        .ok_or(not_allowed.clone())?;
    let view = services
        .perms
        .send(GetWorldView {
            world: world.clone(),
            principal: Principal::of(&record),
        })
        .await??;
    if view.rights.moderation == Moderation::Banned {
        return Err(Error::AuthDenied);
    }
    if !view.rights.has(WORLD_VIEW) {
        return Err(not_allowed);
    }
    let conversations = chat::conversations::login(&services, &world, &mut record).await?;
    Ok(LoggedIn {
        record,
        view,
        conversations,
    })
}

/// `user.update`: replaces the profile and pushes `user.updated` to the user's other sockets
/// (not `conn`). Returns the stored profile.
pub async fn update_profile(
    services: Services,
    world: WorldId,
    user: UserId,
    conn: ConnId,
    profile: Map<String, Value>,
) -> Result<Value, Error> {
    let record = services
        .store
        .update_profile(world, user, Value::Object(profile))
        .await?
        .ok_or(Error::UserNotFound)?;
    let frame: Arc<str> = frame::event("user.updated", wire::user(&record)).into();
    let push = Push::ProfileChanged {
        profile: record.profile.clone(),
        frame,
    };
    let others = Audience::OtherSockets {
        user: record.id.clone(),
        except: conn,
    };
    bus::publish(
        &services,
        Publish {
            deliveries: vec![Delivery::new(others, push)],
        },
    );
    Ok(record.profile)
}

/// `user.fetch`: one user of this world.
pub async fn fetch(services: Services, world: WorldId, id: UserId) -> Result<Reply, Error> {
    let record = services
        .store
        .get_user(world, id)
        .await?
        .ok_or(Error::UserNotFound)?;
    Ok(Reply::User(record))
}
