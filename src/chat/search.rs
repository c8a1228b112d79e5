//! `user.list.search` (pure; SPEC 4.6.1): what matches, the order, pages of 20. (The 36-hour
//! inactive rule shared with USER is `store::is_inactive`.)

use crate::store::Searchable;

/// Users per page.
pub const PAGE_SIZE: usize = 20;
/// One page of a search and whether it is the last.
#[derive(Debug, PartialEq)]
pub struct Page<'a> {
    pub results: Vec<&'a Searchable>,
    pub is_last: bool,
}

/// Page `page` (1-based) of the searchable users (not banned, with a display name: the store
/// selects those) whose display name contains `term`, both lower-cased; ordered by lower-cased
/// name, then id.
pub fn search<'a>(users: &'a [Searchable], term: &str, page: u64) -> Page<'a> {
    let term = term.to_lowercase();
    let mut matches: Vec<(String, &Searchable)> = users
        .iter()
        .filter(|u| !u.display_name.is_empty())
        .map(|u| (u.display_name.to_lowercase(), u))
        .filter(|(name, _)| name.contains(&term))
        .collect();
    matches.sort_by(|(a, ua), (b, ub)| a.cmp(b).then_with(|| ua.id.cmp(&ub.id)));
    let start = usize::try_from(page.saturating_sub(1))
        .unwrap_or(usize::MAX)
        .saturating_mul(PAGE_SIZE);
    let results: Vec<&Searchable> = matches
        .iter()
        .skip(start)
        .take(PAGE_SIZE)
        .map(|(_, u)| *u)
        .collect();
    let is_last = start.saturating_add(PAGE_SIZE) >= matches.len();
    Page { results, is_last }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::ids::UserId;

    fn user(id: &str, name: Option<&str>) -> Searchable {
        Searchable {
            id: UserId::new(id),
            display_name: name.unwrap_or_default().to_string(),
            avatar: None,
            last_login_ms: None,
        }
    }

    fn ids(page: &Page<'_>) -> Vec<String> {
        page.results.iter().map(|u| u.id.to_string()).collect()
    }

    #[test]
    fn matches_case_insensitively_in_name_order_then_id() {
        let users = vec![
            user("3", Some("bob")),
            user("2", Some("Ännchen")),
            user("1", Some("BOB")),
            user("4", Some("Alice")),
            user("5", None),
            user("6", Some("")),
        ];
        assert_eq!(ids(&search(&users, "", 1)), vec!["4", "1", "3", "2"]);
        assert_eq!(ids(&search(&users, "Bo", 1)), vec!["1", "3"]);
        assert_eq!(ids(&search(&users, "äNN", 1)), vec!["2"]);
        assert!(search(&users, "zz", 1).results.is_empty());
    }

    #[test]
    fn pages_hold_twenty_and_know_when_they_are_last() {
        let users: Vec<Searchable> = (0..41)
            .map(|i| user(&format!("{i:02}"), Some(&format!("n{i:02}"))))
            .collect();
        let p1 = search(&users, "n", 1);
        assert_eq!((p1.results.len(), p1.is_last), (20, false));
        assert_eq!(p1.results[0].id.as_str(), "00");
        let p3 = search(&users, "n", 3);
        assert_eq!((ids(&p3), p3.is_last), (vec!["40".to_string()], true));
        let past = search(&users, "n", 4);
        assert_eq!((past.results.len(), past.is_last), (0, true));
        let exactly = search(&users[..40], "n", 2);
        assert_eq!((exactly.results.len(), exactly.is_last), (20, true));
        assert!(search(&users, "n", u64::MAX).is_last);
    }

    #[test]
    fn inactive_after_36_hours_or_without_a_recorded_login() {
        use crate::store::{is_inactive, INACTIVE_AFTER_MS};
        let now = 1_000_000_000_000;
        assert!(!is_inactive(Some(now), now));
        assert!(!is_inactive(Some(now - INACTIVE_AFTER_MS), now));
        assert!(is_inactive(Some(now - INACTIVE_AFTER_MS - 1), now));
        assert!(is_inactive(None, now));
    }
}
