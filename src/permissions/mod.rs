//! `PermissionActor`: owns every world's roles, trait grants and rooms, the explicit role
//! grants and users' moderation states, and answers "what may this user do (in room R)?".
//! The rules themselves are pure functions in [`rules`].

pub mod rules;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};

use actix::prelude::*;

use crate::config::{BbbRoomConfig, RoomSettings, Settings, WorldSettings};
use crate::error::Error;
use crate::ids::{RoomId, UserId, WorldId};
use crate::store::{Store, StoredGrant, UserRecord};
use rules::{ExplicitGrants, Moderation, Subject, WorldRules};

/// The user a permission question is about. `id` is `None` before the user exists.
#[derive(Clone, Debug, Default)]
pub struct Principal {
    pub id: Option<UserId>,
    pub token_uid: Option<String>,
    pub traits: BTreeSet<String>,
}

impl Principal {
    pub fn of(user: &UserRecord) -> Self {
        Self {
            id: Some(user.id.clone()),
            token_uid: user.token_uid.clone(),
            traits: user.traits.iter().cloned().collect(),
        }
    }
}

struct WorldEntry {
    settings: Arc<WorldSettings>,
    rules: WorldRules,
    /// Explicit grants from settings, keyed by JWT uid.
    grants_by_uid: HashMap<String, ExplicitGrants>,
}

impl WorldEntry {
    fn new(settings: &WorldSettings) -> Self {
        let mut grants_by_uid: HashMap<String, ExplicitGrants> = HashMap::new();
        for grant in &settings.role_grants {
            grants_by_uid
                .entry(grant.uid.clone())
                .or_default()
                .add(&grant.role, grant.room.as_ref());
        }
        Self {
            settings: Arc::new(settings.clone()),
            rules: WorldRules::new(settings),
            grants_by_uid,
        }
    }
}

/// The most distinct trait sets whose world views are kept; beyond it the cache starts over.
const VIEW_CACHE_LIMIT: usize = 4096;

/// Resolves rights; see the module docs.
pub struct PermissionActor {
    worlds: HashMap<WorldId, WorldEntry>,
    /// `world.config` per (world, trait set) for users without explicit grants or moderation:
    /// at a keynote thousands of logins share a handful of trait sets.
    view_cache: HashMap<(WorldId, String), WorldView>,
    /// Room access per (world, trait set, room) for the same users: every `bbb.room_url` asks.
    access_cache: HashMap<(WorldId, String, RoomId), RoomAccess>,
    stored_grants: HashMap<(WorldId, UserId), ExplicitGrants>,
    moderation: HashMap<(WorldId, UserId), Moderation>,
    store: Store,
    /// In a cluster: moderation changes go to the other instances.
    cluster: Option<crate::cluster::Cluster>,
}

impl Actor for PermissionActor {
    type Context = Context<Self>;
}

impl PermissionActor {
    /// Builds the actor from settings and what the store holds (loaded at startup).
    pub fn new(
        settings: &Settings,
        store: Store,
        moderation: Vec<(WorldId, UserId, Moderation)>,
        grants: Vec<StoredGrant>,
    ) -> Self {
        let mut stored_grants: HashMap<(WorldId, UserId), ExplicitGrants> = HashMap::new();
        for g in grants {
            stored_grants
                .entry((g.world, g.user))
                .or_default()
                .add(&g.role, g.room.as_ref());
        }
        Self {
            worlds: Self::index(settings),
            view_cache: HashMap::new(),
            access_cache: HashMap::new(),
            stored_grants,
            moderation: moderation.into_iter().map(|(w, u, m)| ((w, u), m)).collect(),
            store,
            cluster: None,
        }
    }

    /// Shares moderation changes with the other instances of a cluster.
    pub fn with_cluster(mut self, cluster: Option<crate::cluster::Cluster>) -> Self {
        self.cluster = cluster;
        self
    }

    fn set_moderation_state(&mut self, world: WorldId, user: UserId, state: Moderation) {
        // Moderated users never use the shared cache; nothing to invalidate.
        let key = (world, user);
        if state == Moderation::None {
            self.moderation.remove(&key);
        } else {
            self.moderation.insert(key, state);
        }
    }

    fn index(settings: &Settings) -> HashMap<WorldId, WorldEntry> {
        settings
            .worlds
            .iter()
            .map(|w| (w.id.clone(), WorldEntry::new(w)))
            .collect()
    }

    fn world(&self, world: &WorldId) -> Result<&WorldEntry, Error> {
        self.worlds.get(world).ok_or(Error::UnknownWorld)
    }

    /// The cache key of a principal whose rights depend on its traits alone, if it is one.
    fn shared_view_key(
        &self,
        world: &WorldId,
        entry: &WorldEntry,
        principal: &Principal,
    ) -> Option<(WorldId, String)> {
        let has_stored = principal
            .id
            .as_ref()
            .is_some_and(|id| self.stored_grants.contains_key(&(world.clone(), id.clone())));
        let has_configured = principal
            .token_uid
            .as_ref()
            .is_some_and(|uid| entry.grants_by_uid.contains_key(uid));
        if has_stored || has_configured || self.moderation_of(world, principal) != Moderation::None {
            return None;
        }
        let traits: Vec<&str> = principal.traits.iter().map(String::as_str).collect();
        Some((world.clone(), traits.join("\u{1f}")))
    }

    fn moderation_of(&self, world: &WorldId, principal: &Principal) -> Moderation {
        principal
            .id
            .as_ref()
            .and_then(|id| self.moderation.get(&(world.clone(), id.clone())))
            .copied()
            .unwrap_or_default()
    }

    /// Runs `f` with the subject (traits, merged explicit grants, moderation) of `principal`.
    fn with_subject<T>(
        &self,
        world: &WorldId,
        entry: &WorldEntry,
        principal: &Principal,
        f: impl FnOnce(&Subject<'_>) -> T,
    ) -> T {
        let stored = principal
            .id
            .as_ref()
            .and_then(|id| self.stored_grants.get(&(world.clone(), id.clone())));
        let configured = principal
            .token_uid
            .as_ref()
            .and_then(|uid| entry.grants_by_uid.get(uid));
        let merged;
        let grants = match (stored, configured) {
            (Some(a), Some(b)) => {
                let mut m = a.clone();
                m.merge(b);
                merged = m;
                &merged
            }
            (Some(g), None) | (None, Some(g)) => g,
            (None, None) => {
                merged = ExplicitGrants::default();
                &merged
            }
        };
        f(&Subject {
            traits: &principal.traits,
            grants,
            moderation: self.moderation_of(world, principal),
        })
    }
}

/// A user's world-level rights.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rights {
    pub moderation: Moderation,
    pub permissions: BTreeSet<String>,
}

impl Rights {
    pub fn has(&self, permission: &str) -> bool {
        self.permissions.contains(permission)
    }
}

/// Sent by a session during login: the user's world-level rights.
#[derive(Message)]
#[rtype(result = "Result<Rights, Error>")]
pub struct GetWorldRights {
    pub world: WorldId,
    pub principal: Principal,
}

impl Handler<GetWorldRights> for PermissionActor {
    type Result = Result<Rights, Error>;

    fn handle(&mut self, msg: GetWorldRights, _: &mut Context<Self>) -> Self::Result {
        let entry = self.world(&msg.world)?;
        Ok(self.with_subject(&msg.world, entry, &msg.principal, |s| Rights {
            moderation: s.moderation,
            permissions: entry.rules.world_permissions(s),
        }))
    }
}

/// What a session needs after login: rights plus the `world.config` the user may see
/// (shared between users with the same view).
#[derive(Clone, Debug)]
pub struct WorldView {
    pub rights: Rights,
    pub world: Arc<WorldSettings>,
    pub config: Arc<WorldConfig>,
}

/// The `world.config` a user may see: the world, their world permissions, and the rooms they
/// may view with their permissions there. The session encodes it (`protocol::wire`).
#[derive(Debug)]
pub struct WorldConfig {
    pub world: Arc<WorldSettings>,
    pub permissions: BTreeSet<String>,
    pub rooms: Vec<VisibleRoom>,
    /// The wire encoding, computed once per shared view by `protocol::wire::world_config`.
    pub encoded: OnceLock<Arc<str>>,
}

/// A room a user may view, with their permissions in it.
#[derive(Clone, Debug)]
pub struct VisibleRoom {
    pub room: RoomSettings,
    pub permissions: BTreeSet<String>,
}

/// Sent by a session after login: the user's rights and their `world.config`.
#[derive(Message)]
#[rtype(result = "Result<WorldView, Error>")]
pub struct GetWorldView {
    pub world: WorldId,
    pub principal: Principal,
}

impl Handler<GetWorldView> for PermissionActor {
    type Result = Result<WorldView, Error>;

    fn handle(&mut self, msg: GetWorldView, _: &mut Context<Self>) -> Self::Result {
        let entry = self.world(&msg.world)?;
        let key = self.shared_view_key(&msg.world, entry, &msg.principal);
        if let Some(view) = key.as_ref().and_then(|k| self.view_cache.get(k)) {
            return Ok(view.clone());
        }
        let view = self.with_subject(&msg.world, entry, &msg.principal, |s| {
            let permissions = entry.rules.world_permissions(s);
            let rooms = entry
                .settings
                .rooms
                .iter()
                .filter_map(|room| {
                    let perms = entry.rules.room_permissions(&room.id, s);
                    perms.contains(rules::ROOM_VIEW).then(|| VisibleRoom {
                        room: room.clone(),
                        permissions: perms,
                    })
                })
                .collect();
            WorldView {
                config: Arc::new(WorldConfig {
                    world: entry.settings.clone(),
                    permissions: permissions.clone(),
                    rooms,
                    encoded: OnceLock::new(),
                }),
                rights: Rights {
                    moderation: s.moderation,
                    permissions,
                },
                world: entry.settings.clone(),
            }
        });
        if let Some(key) = key {
            if self.view_cache.len() >= VIEW_CACHE_LIMIT {
                self.view_cache.clear();
            }
            self.view_cache.insert(key, view.clone());
        }
        Ok(view)
    }
}

/// A user's standing in one room (cheap to clone: shared parts).
#[derive(Clone, Debug)]
pub struct RoomAccess {
    pub room: Arc<RoomSettings>,
    pub world: Arc<WorldSettings>,
    pub permissions: Arc<BTreeSet<String>>,
    /// The room's BBB module config, if it is a BBB room.
    pub bbb: Option<Arc<BbbRoomConfig>>,
}

impl RoomAccess {
    pub fn has(&self, permission: &str) -> bool {
        self.permissions.contains(permission)
    }
}

/// Sent by a session for room commands: the room (or `room.unknown`) and the user's rights in it.
#[derive(Message)]
#[rtype(result = "Result<RoomAccess, Error>")]
pub struct GetRoomAccess {
    pub world: WorldId,
    pub principal: Principal,
    pub room: RoomId,
}

impl Handler<GetRoomAccess> for PermissionActor {
    type Result = Result<RoomAccess, Error>;

    fn handle(&mut self, msg: GetRoomAccess, _: &mut Context<Self>) -> Self::Result {
        let entry = self.world(&msg.world).map_err(|_| Error::RoomUnknown)?;
        let room = entry.settings.room(msg.room.as_str()).ok_or(Error::RoomUnknown)?;
        let key = self
            .shared_view_key(&msg.world, entry, &msg.principal)
            .map(|(world, traits)| (world, traits, msg.room.clone()));
        if let Some(access) = key.as_ref().and_then(|k| self.access_cache.get(k)) {
            return Ok(access.clone());
        }
        let permissions = self.with_subject(&msg.world, entry, &msg.principal, |s| {
            entry.rules.room_permissions(&room.id, s)
        });
        let access = RoomAccess {
            bbb: room.bbb().map(Arc::new),
            room: Arc::new(room.clone()),
            world: entry.settings.clone(),
            permissions: Arc::new(permissions),
        };
        if let Some(key) = key {
            if self.access_cache.len() >= VIEW_CACHE_LIMIT {
                self.access_cache.clear();
            }
            self.access_cache.insert(key, access.clone());
        }
        Ok(access)
    }
}

/// Sent by the admin API: persist a user's moderation state, then apply it. Returns the user,
/// or `None` when the world has no such user.
#[derive(Message)]
#[rtype(result = "Result<Option<UserRecord>, Error>")]
pub struct ApplyModeration {
    pub world: WorldId,
    pub user: String,
    pub state: Moderation,
}

impl Handler<ApplyModeration> for PermissionActor {
    type Result = ResponseActFuture<Self, Result<Option<UserRecord>, Error>>;

    fn handle(&mut self, msg: ApplyModeration, _: &mut Context<Self>) -> Self::Result {
        let request = self.store.set_moderation(msg.world.clone(), msg.user, msg.state);
        Box::pin(request.into_actor(self).map(move |res, act, _| {
            let user = res?;
            if let Some(user) = &user {
                act.set_moderation_state(msg.world.clone(), user.id.clone(), msg.state);
                if let Some(cluster) = &act.cluster {
                    cluster.publish(crate::cluster::ClusterMessage::Moderation {
                        world: msg.world,
                        user: user.id.clone(),
                        state: msg.state,
                    });
                }
                log::info!(
                    "moderation: world={} user={} state={}",
                    user.world,
                    user.id,
                    msg.state.as_str()
                );
            }
            Ok(user)
        }))
    }
}

/// Sent by the cluster listener: an operator changed a user's moderation on another instance
/// (already saved there).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ApplyRemoteModeration {
    pub world: WorldId,
    pub user: UserId,
    pub state: Moderation,
}

impl Handler<ApplyRemoteModeration> for PermissionActor {
    type Result = ();

    fn handle(&mut self, msg: ApplyRemoteModeration, _: &mut Context<Self>) {
        log::info!(
            "moderation: world={} user={} state={} (on another instance)",
            msg.world,
            msg.user,
            msg.state.as_str()
        );
        self.set_moderation_state(msg.world, msg.user, msg.state);
    }
}

/// Sent by the cluster listener after a reconnect: re-read every moderation state.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ResyncModeration;

impl Handler<ResyncModeration> for PermissionActor {
    type Result = ();

    fn handle(&mut self, _: ResyncModeration, ctx: &mut Context<Self>) {
        let load = self.store.load_moderation();
        ctx.spawn(load.into_actor(self).map(|result, act, _| {
            if let Ok(all) = result {
                act.moderation = all.into_iter().map(|(w, u, m)| ((w, u), m)).collect();
            }
        }));
    }
}

/// Sent by the admin reload: replace worlds, roles and rooms; grants and moderation stay.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReplaceWorlds {
    pub settings: Arc<Settings>,
}

impl Handler<ReplaceWorlds> for PermissionActor {
    type Result = ();

    fn handle(&mut self, msg: ReplaceWorlds, _: &mut Context<Self>) {
        self.worlds = Self::index(&msg.settings);
        self.view_cache.clear();
        self.access_cache.clear();
    }
}
