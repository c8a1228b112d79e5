//! What a simulated BBB server does when a meeting ends: it calls the meeting's end callbacks
//! (`meetingEndedURL`, `meta_endCallbackUrl`), also for meetings that expire empty.

use super::*;

/// Calls a meeting's end callbacks (GET) as BBB does when a meeting ends. The simulator waits
/// for them, so a test sees their effect as soon as `end` answers.
pub(super) async fn notify_end(callbacks: Vec<String>) {
    for url in callbacks {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            continue;
        }
        let request = awc::Client::new()
            .get(url.as_str())
            .timeout(std::time::Duration::from_secs(2))
            .send();
        match request.await {
            Ok(response) => log::debug!("simulator: end callback answered {}", response.status()),
            Err(e) => log::warn!("simulator: end callback failed: {e}"),
        }
    }
}

/// Ends the meetings of `instance` that stayed empty too long, while expiry is configured.
pub(super) fn start_expiry(instance: &Arc<Instance>, name: String, public_url: String) {
    if instance.sweeping.swap(true, Ordering::SeqCst) {
        return;
    }
    let weak: Weak<Instance> = Arc::downgrade(instance);
    actix_web::rt::spawn(async move {
        loop {
            let Some(instance) = weak.upgrade() else { return };
            let expiry_ms = instance.data().empty_expiry_ms;
            if expiry_ms == 0 {
                instance.sweeping.store(false, Ordering::SeqCst);
                return;
            }
            drop(instance);
            actix_web::rt::time::sleep(Duration::from_millis((expiry_ms / 4).clamp(5, 1000))).await;
            let Some(instance) = weak.upgrade() else { return };
            let expired = instance.data().expire(now_ms(), &public_url);
            drop(instance);
            for (meeting_id, callbacks) in expired {
                log::info!("simulator[{name}]: meeting {meeting_id} expired (empty)");
                notify_end(callbacks).await;
            }
        }
    });
}
