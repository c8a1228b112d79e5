//! Read-pointer arithmetic and the notification decision (pure; SPEC 4.6.5, 4.6.6).

/// The read pointer after `chat.mark_read` with id `requested` in a channel whose highest
/// event id is `highest`: it never moves back and never points past the channel's end
/// (**fix** over venueless, which stores any id).
pub fn new_read_pointer(old: Option<i64>, requested: i64, highest: i64) -> i64 {
    old.unwrap_or(0).max(requested.min(highest))
}

/// What a recipient's sockets get for a new event after `chat.unread_pointers`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotifyAs {
    /// `chat.notification`: the badge goes up by one.
    Notification,
    /// `chat.notification_counts`: the recipient already read up to the event.
    Counts,
}

/// `read_pointer`: the recipient's pointer for the channel at push time.
pub fn notify_as(read_pointer: Option<i64>, event_id: i64) -> NotifyAs {
    match read_pointer {
        Some(pointer) if pointer >= event_id => NotifyAs::Counts,
        _ => NotifyAs::Notification,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_pointers_never_move_back_nor_past_the_end() {
        assert_eq!(new_read_pointer(None, 3, 5), 3);
        assert_eq!(new_read_pointer(Some(4), 3, 5), 4, "a lower id keeps the pointer");
        assert_eq!(
            new_read_pointer(Some(2), 99, 5),
            5,
            "an id past the end stops at the end"
        );
        assert_eq!(
            new_read_pointer(None, 1, 0),
            0,
            "an empty channel has nothing to read"
        );
        assert_eq!(new_read_pointer(Some(5), 5, 5), 5);
    }

    #[test]
    fn a_recipient_who_already_read_the_event_gets_counts() {
        assert_eq!(notify_as(None, 3), NotifyAs::Notification);
        assert_eq!(notify_as(Some(2), 3), NotifyAs::Notification);
        assert_eq!(notify_as(Some(3), 3), NotifyAs::Counts);
        assert_eq!(notify_as(Some(7), 3), NotifyAs::Counts);
    }
}
