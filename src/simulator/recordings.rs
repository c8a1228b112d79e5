//! `getRecordings` of a simulated server: filters by meeting, record id and state, and pages
//! with `offset` and `limit` like BBB 2.6+.

use super::*;

fn comma_list(text: &str) -> Vec<&str> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty()).collect()
}

pub(super) fn get_recordings(
    instance: &Instance,
    params: &Params,
    behaviour: model::Behaviour,
) -> HttpResponse {
    let meeting_ids = params.non_empty("meetingID").map(comma_list);
    let record_ids = params.non_empty("recordID").map(comma_list);
    // BBB's default filter when no state is given.
    let states = params
        .non_empty("state")
        .map(comma_list)
        .unwrap_or_else(|| vec!["published", "unpublished"]);
    let list = instance
        .data()
        .recordings_for(meeting_ids.as_deref(), record_ids.as_deref(), &states);
    match model::recordings_page(params.get("offset"), params.get("limit")) {
        None => xml(render::recordings(&list, None)),
        Some((offset, limit)) => {
            let page: Vec<_> = list.iter().skip(offset).take(limit).cloned().collect();
            let total = render::Total {
                elements: list.len(),
                nested: behaviour.nested_pagination,
            };
            xml(render::recordings(&page, Some(total)))
        }
    }
}
