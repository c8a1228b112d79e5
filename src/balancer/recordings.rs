//! Recordings gathered from several servers (pure): merged, deduplicated, oldest first.

use std::collections::HashSet;

use crate::bbb::xml::Recording;

/// Merges the lists of the servers that answered: each recording once (by record id, first
/// seen wins), sorted by start time.
pub fn merge(lists: impl IntoIterator<Item = Vec<Recording>>) -> Vec<Recording> {
    let mut recordings: Vec<Recording> = lists.into_iter().flatten().collect();
    let mut seen = HashSet::new();
    recordings.retain(|r| seen.insert(r.record_id.clone()));
    recordings.sort_by_key(|r| r.start_time_ms);
    recordings
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn rec(id: &str, start: i64, state: &str) -> Recording {
        Recording {
            record_id: id.into(),
            meeting_id: "m".into(),
            state: state.into(),
            published: true,
            start_time_ms: start,
            end_time_ms: start + 1,
            participants: String::new(),
            formats: Vec::new(),
        }
    }

    #[test]
    fn merged_once_each_oldest_first() {
        let merged = merge(vec![
            vec![rec("b", 20, "first"), rec("a", 30, "x")],
            vec![rec("b", 20, "second"), rec("c", 10, "x")],
        ]);
        let ids: Vec<&str> = merged.iter().map(|r| r.record_id.as_str()).collect();
        assert_eq!(ids, ["c", "b", "a"]);
        assert_eq!(merged[1].state, "first", "the first server's copy wins");
    }

    #[test]
    fn nothing_merges_to_nothing() {
        assert!(merge(Vec::<Vec<Recording>>::new()).is_empty());
    }
}
