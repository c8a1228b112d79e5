//! Pure permission rules (SPEC §5): trait requirements, role tables, explicit grants and
//! moderation. No actix here; `PermissionActor` owns the state and calls these functions.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::config::{Requirement, TraitGrants, WorldSettings};
use crate::ids::RoomId;

pub const WORLD_VIEW: &str = "world:view";
pub const WORLD_CHAT_DIRECT: &str = "world:chat.direct";
pub const WORLD_CONNECTIONS_UNLIMITED: &str = "world:connections.unlimited";
pub const ROOM_VIEW: &str = "room:view";
pub const ROOM_BBB_JOIN: &str = "room:bbb.join";
pub const ROOM_BBB_MODERATE: &str = "room:bbb.moderate";
pub const ROOM_BBB_RECORDINGS: &str = "room:bbb.recordings";

/// The only permissions a silenced user keeps.
const SILENCED_KEEP: [&str; 2] = [WORLD_VIEW, ROOM_VIEW];

pub use crate::store::Moderation;

/// Whether every element of `requirements` holds for `traits`.
/// A plain element needs that trait; a nested list needs at least one of its traits.
pub fn requirements_met(requirements: &[Requirement], traits: &BTreeSet<String>) -> bool {
    requirements.iter().all(|req| match req {
        Requirement::Trait(t) => traits.contains(t),
        Requirement::AnyOf(any) => any.iter().any(|t| traits.contains(t)),
    })
}

/// The roles a trait-grant table gives to a user with `traits`.
pub fn roles_from_traits<'a>(
    grants: &'a TraitGrants,
    traits: &'a BTreeSet<String>,
) -> impl Iterator<Item = &'a str> {
    grants
        .iter()
        .filter(move |(_, reqs)| requirements_met(reqs, traits))
        .map(|(role, _)| role.as_str())
}

/// Explicit role grants of one user: world-wide, and per room.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExplicitGrants {
    pub world: BTreeSet<String>,
    pub rooms: HashMap<RoomId, BTreeSet<String>>,
}

impl ExplicitGrants {
    pub fn add(&mut self, role: &str, room: Option<&RoomId>) {
        match room {
            Some(room) => {
                self.rooms
                    .entry(room.clone())
                    .or_default()
                    .insert(role.to_string());
            }
            None => {
                self.world.insert(role.to_string());
            }
        }
    }

    pub fn merge(&mut self, other: &ExplicitGrants) {
        self.world.extend(other.world.iter().cloned());
        for (room, roles) in &other.rooms {
            self.rooms
                .entry(room.clone())
                .or_default()
                .extend(roles.iter().cloned());
        }
    }
}

/// What the rules need to know about the user being checked.
#[derive(Clone, Debug)]
pub struct Subject<'a> {
    pub traits: &'a BTreeSet<String>,
    pub grants: &'a ExplicitGrants,
    pub moderation: Moderation,
}

/// A world's compiled rules: role table and trait grants of the world and of each room.
#[derive(Clone, Debug)]
pub struct WorldRules {
    roles: BTreeMap<String, BTreeSet<String>>,
    world_grants: TraitGrants,
    room_grants: HashMap<RoomId, TraitGrants>,
    /// Rooms in config order.
    room_order: Vec<RoomId>,
}

impl WorldRules {
    pub fn new(world: &WorldSettings) -> Self {
        let roles = world
            .role_table()
            .into_iter()
            .map(|(role, perms)| (role, perms.into_iter().collect()))
            .collect();
        Self {
            roles,
            world_grants: world.trait_grants.clone(),
            room_grants: world
                .rooms
                .iter()
                .map(|r| (r.id.clone(), r.trait_grants.clone()))
                .collect(),
            room_order: world.rooms.iter().map(|r| r.id.clone()).collect(),
        }
    }

    pub fn rooms(&self) -> &[RoomId] {
        &self.room_order
    }

    pub fn has_room(&self, room: &RoomId) -> bool {
        self.room_grants.contains_key(room)
    }

    fn add_role(&self, role: &str, into: &mut BTreeSet<String>) {
        if let Some(perms) = self.roles.get(role) {
            into.extend(perms.iter().cloned());
        }
    }

    /// World-level permissions: world trait grants and world-wide explicit grants only.
    pub fn world_permissions(&self, subject: &Subject<'_>) -> BTreeSet<String> {
        let mut perms = BTreeSet::new();
        if subject.moderation == Moderation::Banned {
            return perms;
        }
        for role in roles_from_traits(&self.world_grants, subject.traits) {
            self.add_role(role, &mut perms);
        }
        for role in &subject.grants.world {
            self.add_role(role, &mut perms);
        }
        apply_moderation(perms, subject.moderation)
    }

    /// Permissions in `room`: the world-level ones plus what the room's own trait grants and
    /// explicit grants on this room give. Nothing granted on another room counts.
    pub fn room_permissions(&self, room: &RoomId, subject: &Subject<'_>) -> BTreeSet<String> {
        let Some(room_grants) = self.room_grants.get(room) else {
            return BTreeSet::new();
        };
        if subject.moderation == Moderation::Banned {
            return BTreeSet::new();
        }
        let mut perms = self.world_permissions(&Subject {
            moderation: Moderation::None,
            ..subject.clone()
        });
        for role in roles_from_traits(room_grants, subject.traits) {
            self.add_role(role, &mut perms);
        }
        if let Some(roles) = subject.grants.rooms.get(room) {
            for role in roles {
                self.add_role(role, &mut perms);
            }
        }
        apply_moderation(perms, subject.moderation)
    }

    /// Whether the subject has `permission`, world-wide (`room` = None) or in `room`.
    pub fn has(&self, permission: &str, room: Option<&RoomId>, subject: &Subject<'_>) -> bool {
        match room {
            Some(room) => self.room_permissions(room, subject).contains(permission),
            None => self.world_permissions(subject).contains(permission),
        }
    }
}

fn apply_moderation(perms: BTreeSet<String>, moderation: Moderation) -> BTreeSet<String> {
    match moderation {
        Moderation::None => perms,
        Moderation::Silenced => perms
            .into_iter()
            .filter(|p| SILENCED_KEEP.contains(&p.as_str()))
            .collect(),
        Moderation::Banned => BTreeSet::new(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::config::{RoomSettings, WorldSettings};

    fn traits(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn t(s: &str) -> Requirement {
        Requirement::Trait(s.into())
    }

    fn any(list: &[&str]) -> Requirement {
        Requirement::AnyOf(list.iter().map(|s| s.to_string()).collect())
    }

    fn room(id: &str, grants: &[(&str, Vec<Requirement>)]) -> RoomSettings {
        RoomSettings {
            id: RoomId::new(id),
            name: id.into(),
            description: String::new(),
            trait_grants: grants.iter().map(|(r, g)| (r.to_string(), g.clone())).collect(),
            modules: vec![],
        }
    }

    fn world(grants: &[(&str, Vec<Requirement>)], rooms: Vec<RoomSettings>) -> WorldRules {
        let settings: WorldSettings = toml::from_str("id = \"w\"").unwrap();
        let settings = WorldSettings {
            trait_grants: grants.iter().map(|(r, g)| (r.to_string(), g.clone())).collect(),
            rooms,
            ..settings
        };
        WorldRules::new(&settings)
    }

    fn subject<'a>(traits: &'a BTreeSet<String>, grants: &'a ExplicitGrants) -> Subject<'a> {
        Subject {
            traits,
            grants,
            moderation: Moderation::None,
        }
    }

    #[test]
    fn plain_requirements_are_anded() {
        let reqs = vec![t("a"), t("b")];
        assert!(requirements_met(&reqs, &traits(&["a", "b", "c"])));
        assert!(!requirements_met(&reqs, &traits(&["a"])));
    }

    #[test]
    fn nested_list_needs_at_least_one() {
        let reqs = vec![t("a"), any(&["x", "y"])];
        assert!(requirements_met(&reqs, &traits(&["a", "y"])));
        assert!(!requirements_met(&reqs, &traits(&["a"])));
        assert!(!requirements_met(&reqs, &traits(&["x", "y"])));
    }

    #[test]
    fn empty_nested_list_is_never_met() {
        assert!(!requirements_met(&[any(&[])], &traits(&["a"])));
    }

    #[test]
    fn empty_requirement_list_grants_everyone() {
        assert!(requirements_met(&[], &traits(&[])));
        let w = world(&[("attendee", vec![])], vec![]);
        let none = ExplicitGrants::default();
        let empty = traits(&[]);
        assert!(w.world_permissions(&subject(&empty, &none)).contains(WORLD_VIEW));
    }

    #[test]
    fn default_roles_build_on_each_other() {
        let w = world(&[("admin", vec![t("admin")])], vec![]);
        let none = ExplicitGrants::default();
        let admin = traits(&["admin"]);
        let perms = w.world_permissions(&subject(&admin, &none));
        for p in [
            WORLD_VIEW,
            WORLD_CHAT_DIRECT,
            ROOM_VIEW,
            ROOM_BBB_JOIN,
            ROOM_BBB_MODERATE,
            ROOM_BBB_RECORDINGS,
            "world:update",
            WORLD_CONNECTIONS_UNLIMITED,
        ] {
            assert!(perms.contains(p), "admin lacks {p}");
        }
    }

    #[test]
    fn room_trait_grant_applies_only_in_its_room() {
        let w = world(
            &[("viewer", vec![])],
            vec![
                room("stage", &[("speaker", vec![t("speaker")])]),
                room("lounge", &[]),
            ],
        );
        let none = ExplicitGrants::default();
        let speaker = traits(&["speaker"]);
        let s = subject(&speaker, &none);
        assert!(w.has(ROOM_BBB_MODERATE, Some(&RoomId::new("stage")), &s));
        assert!(!w.has(ROOM_BBB_MODERATE, Some(&RoomId::new("lounge")), &s));
        assert!(!w.has(ROOM_BBB_MODERATE, None, &s));
        assert!(w.has(ROOM_VIEW, Some(&RoomId::new("lounge")), &s));
    }

    #[test]
    fn explicit_room_grant_does_not_leak() {
        let w = world(&[("attendee", vec![])], vec![room("a", &[]), room("b", &[])]);
        let mut grants = ExplicitGrants::default();
        grants.add("moderator", Some(&RoomId::new("a")));
        let empty = traits(&[]);
        let s = subject(&empty, &grants);
        assert!(w.has(ROOM_BBB_RECORDINGS, Some(&RoomId::new("a")), &s));
        assert!(!w.has(ROOM_BBB_RECORDINGS, Some(&RoomId::new("b")), &s));
        assert!(!w.world_permissions(&s).contains(ROOM_BBB_RECORDINGS));
    }

    #[test]
    fn explicit_world_grant_applies_everywhere() {
        let w = world(&[("attendee", vec![])], vec![room("a", &[]), room("b", &[])]);
        let mut grants = ExplicitGrants::default();
        grants.add("speaker", None);
        let empty = traits(&[]);
        let s = subject(&empty, &grants);
        assert!(w.has(ROOM_BBB_MODERATE, Some(&RoomId::new("a")), &s));
        assert!(w.has(ROOM_BBB_MODERATE, Some(&RoomId::new("b")), &s));
        assert!(w.has(ROOM_BBB_MODERATE, None, &s));
    }

    #[test]
    fn world_roles_count_in_every_room() {
        let w = world(&[("participant", vec![t("p")])], vec![room("a", &[])]);
        let none = ExplicitGrants::default();
        let p = traits(&["p"]);
        assert!(w.has(ROOM_BBB_JOIN, Some(&RoomId::new("a")), &subject(&p, &none)));
    }

    #[test]
    fn silenced_users_keep_only_view() {
        let w = world(&[("admin", vec![])], vec![room("a", &[("moderator", vec![])])]);
        let none = ExplicitGrants::default();
        let empty = traits(&[]);
        let s = Subject {
            moderation: Moderation::Silenced,
            ..subject(&empty, &none)
        };
        assert_eq!(w.world_permissions(&s), traits(&[WORLD_VIEW, ROOM_VIEW]));
        assert_eq!(
            w.room_permissions(&RoomId::new("a"), &s),
            traits(&[WORLD_VIEW, ROOM_VIEW])
        );
        assert!(!w.has(ROOM_BBB_JOIN, Some(&RoomId::new("a")), &s));
    }

    #[test]
    fn banned_users_have_nothing() {
        let w = world(&[("admin", vec![])], vec![room("a", &[])]);
        let mut grants = ExplicitGrants::default();
        grants.add("admin", None);
        let empty = traits(&[]);
        let s = Subject {
            moderation: Moderation::Banned,
            ..subject(&empty, &grants)
        };
        assert!(w.world_permissions(&s).is_empty());
        assert!(w.room_permissions(&RoomId::new("a"), &s).is_empty());
    }

    #[test]
    fn unknown_room_has_no_permissions() {
        let w = world(&[("admin", vec![])], vec![]);
        let none = ExplicitGrants::default();
        let empty = traits(&[]);
        assert!(w
            .room_permissions(&RoomId::new("nope"), &subject(&empty, &none))
            .is_empty());
    }

    #[test]
    fn unmatched_traits_grant_nothing() {
        let w = world(&[("attendee", vec![t("ticket")])], vec![]);
        let none = ExplicitGrants::default();
        let empty = traits(&[]);
        assert!(w.world_permissions(&subject(&empty, &none)).is_empty());
    }

    #[test]
    fn moderation_parses_its_wire_names() {
        assert_eq!(Moderation::parse("silenced"), Some(Moderation::Silenced));
        assert_eq!(Moderation::parse("muted"), None);
        assert_eq!(Moderation::Banned.as_str(), "banned");
    }
}
