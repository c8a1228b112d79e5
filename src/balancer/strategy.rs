//! Pure placement (SPEC §6): which server gets a new or moved meeting, and what a server costs.

use rand::Rng;

use crate::ids::{ServerId, WorldId};

/// What a placement is for: private calls skip `rooms_only` servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Room,
    Call,
}

/// Added to a server's cost for every meeting placed there since its last poll, so a burst of
/// new meetings spreads out instead of piling onto the server that looked cheapest.
pub const PLACEMENT_CHARGE: f64 = 10.0;

/// Cost of one running meeting, as polled.
pub fn meeting_cost(participants: u64, videos: u64, voice_participants: u64) -> f64 {
    let (p, v, a) = (participants as f64, videos as f64, voice_participants as f64);
    10.0 + 10.0 * p * v + p * a
}

/// A server as placement sees it.
#[derive(Clone, Debug)]
pub struct Candidate<'a> {
    pub id: &'a ServerId,
    pub active: bool,
    pub healthy: bool,
    pub rooms_only: bool,
    pub world_exclusive: Option<&'a WorldId>,
    /// Polled cost plus placement charges.
    pub cost: f64,
    pub load_multiplier: f64,
}

impl Candidate<'_> {
    /// Whether `world` may have a meeting of `purpose` here at all.
    pub fn usable_by(&self, world: &WorldId, purpose: Purpose) -> bool {
        self.active
            && self.healthy
            && !(purpose == Purpose::Call && self.rooms_only)
            && self.world_exclusive.is_none_or(|w| w == world)
    }

    fn weighted_cost(&self) -> f64 {
        self.cost * self.load_multiplier
    }
}

/// Picks a server. Tiers, first non-empty wins: the preferred server (if usable), servers
/// exclusive to `world`, shared servers. Within a tier the lowest cost × multiplier wins; ties
/// are broken at random.
pub fn choose<R: Rng + ?Sized>(
    candidates: &[Candidate<'_>],
    world: &WorldId,
    prefer: Option<&ServerId>,
    purpose: Purpose,
    rng: &mut R,
) -> Option<ServerId> {
    let usable: Vec<&Candidate<'_>> = candidates
        .iter()
        .filter(|c| c.usable_by(world, purpose))
        .collect();
    if let Some(preferred) = prefer.and_then(|p| usable.iter().find(|c| c.id == p)) {
        return Some(preferred.id.clone());
    }
    let exclusive: Vec<&Candidate<'_>> = usable
        .iter()
        .copied()
        .filter(|c| c.world_exclusive == Some(world))
        .collect();
    let tier = if exclusive.is_empty() {
        usable
            .into_iter()
            .filter(|c| c.world_exclusive.is_none())
            .collect()
    } else {
        exclusive
    };
    cheapest(&tier, rng)
}

fn cheapest<R: Rng + ?Sized>(tier: &[&Candidate<'_>], rng: &mut R) -> Option<ServerId> {
    let min = tier
        .iter()
        .map(|c| c.weighted_cost())
        .fold(f64::INFINITY, f64::min);
    let ties: Vec<&&Candidate<'_>> = tier
        .iter()
        .filter(|c| (c.weighted_cost() - min).abs() <= 1e-9 * min.abs().max(1.0))
        .collect();
    if ties.is_empty() {
        return None;
    }
    ties.get(rng.gen_range(0..ties.len())).map(|c| c.id.clone())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct S {
        id: ServerId,
        active: bool,
        healthy: bool,
        rooms_only: bool,
        exclusive: Option<WorldId>,
        cost: f64,
        mult: f64,
    }

    fn s(id: &str, cost: f64) -> S {
        S {
            id: ServerId::new(id),
            active: true,
            healthy: true,
            rooms_only: false,
            exclusive: None,
            cost,
            mult: 1.0,
        }
    }

    fn view(list: &[S]) -> Vec<Candidate<'_>> {
        list.iter()
            .map(|x| Candidate {
                id: &x.id,
                active: x.active,
                healthy: x.healthy,
                rooms_only: x.rooms_only,
                world_exclusive: x.exclusive.as_ref(),
                cost: x.cost,
                load_multiplier: x.mult,
            })
            .collect()
    }

    fn pick(list: &[S], prefer: Option<&str>, purpose: Purpose) -> Option<String> {
        let prefer = prefer.map(ServerId::new);
        choose(
            &view(list),
            &WorldId::new("w"),
            prefer.as_ref(),
            purpose,
            &mut rand::thread_rng(),
        )
        .map(|s| s.0)
    }

    #[test]
    fn exclusive_server_wins_over_a_cheaper_shared_one() {
        let mut ex = s("exclusive", 500.0);
        ex.exclusive = Some(WorldId::new("w"));
        assert_eq!(
            pick(&[s("shared", 0.0), ex], None, Purpose::Room).as_deref(),
            Some("exclusive")
        );
    }

    #[test]
    fn another_worlds_exclusive_server_is_never_used() {
        let mut other = s("other", 0.0);
        other.exclusive = Some(WorldId::new("elsewhere"));
        assert_eq!(pick(&[other], None, Purpose::Room), None);
        let mut other = s("other", 0.0);
        other.exclusive = Some(WorldId::new("elsewhere"));
        assert_eq!(
            pick(&[other, s("shared", 900.0)], Some("other"), Purpose::Room).as_deref(),
            Some("shared")
        );
    }

    #[test]
    fn prefer_server_wins_among_equals_and_over_cheaper() {
        for _ in 0..20 {
            assert_eq!(
                pick(&[s("a", 10.0), s("b", 10.0)], Some("b"), Purpose::Room).as_deref(),
                Some("b")
            );
        }
        assert_eq!(
            pick(&[s("a", 0.0), s("b", 100.0)], Some("b"), Purpose::Room).as_deref(),
            Some("b")
        );
    }

    #[test]
    fn unusable_preferred_server_falls_back_to_the_tiers() {
        let mut b = s("b", 0.0);
        b.healthy = false;
        assert_eq!(
            pick(&[s("a", 50.0), b], Some("b"), Purpose::Room).as_deref(),
            Some("a")
        );
    }

    #[test]
    fn inactive_or_unhealthy_servers_are_never_chosen() {
        let list = || {
            let mut inactive = s("inactive", 0.0);
            inactive.active = false;
            let mut sick = s("sick", 0.0);
            sick.healthy = false;
            vec![inactive, sick]
        };
        for _ in 0..20 {
            let mut with_ok = list();
            with_ok.push(s("ok", 1000.0));
            assert_eq!(pick(&with_ok, None, Purpose::Room).as_deref(), Some("ok"));
        }
        assert_eq!(pick(&list(), None, Purpose::Room), None);
    }

    #[test]
    fn calls_skip_rooms_only_servers() {
        let mut ro = s("rooms-only", 0.0);
        ro.rooms_only = true;
        let list = [ro, s("any", 100.0)];
        assert_eq!(pick(&list, None, Purpose::Call).as_deref(), Some("any"));
        assert_eq!(pick(&list, None, Purpose::Room).as_deref(), Some("rooms-only"));
    }

    #[test]
    fn load_multiplier_scales_cost() {
        let mut big = s("big", 100.0);
        big.mult = 0.5;
        assert_eq!(
            pick(&[s("small", 60.0), big], None, Purpose::Room).as_deref(),
            Some("big")
        );
    }

    #[test]
    fn equal_servers_share_a_burst_of_placements() {
        let mut servers: Vec<S> = (0..10).map(|i| s(&format!("s{i}"), 0.0)).collect();
        let mut counts: HashMap<String, usize> = HashMap::new();
        for _ in 0..500 {
            let chosen = pick(&servers, None, Purpose::Room).unwrap();
            *counts.entry(chosen.clone()).or_default() += 1;
            servers.iter_mut().find(|x| x.id.0 == chosen).unwrap().cost += PLACEMENT_CHARGE;
        }
        let max = counts.values().max().unwrap();
        let min = counts.values().min().unwrap();
        assert_eq!(counts.len(), 10);
        assert!(max - min <= 1, "{counts:?}");
    }

    #[test]
    fn ties_are_broken_at_random() {
        let list = [s("a", 5.0), s("b", 5.0)];
        let picks: std::collections::HashSet<_> = (0..100)
            .filter_map(|_| pick(&list, None, Purpose::Room))
            .collect();
        assert_eq!(picks.len(), 2);
    }

    #[test]
    fn meeting_cost_follows_the_formula() {
        assert_eq!(meeting_cost(0, 0, 0), 10.0);
        assert_eq!(meeting_cost(4, 2, 3), 10.0 + 80.0 + 12.0);
    }
}
