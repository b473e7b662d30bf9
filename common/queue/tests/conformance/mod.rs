//! What every queue backend promises, written once against the role traits so each backend runs
//! the same checks. A backend's test file invokes [`queue_conformance!`] with a function that opens
//! [`Queues`] on fresh, empty queues and runs one check with them; the checks use the public API
//! only, and treat entry ids and event cursors as opaque.

pub mod fixtures;

mod delivery;
mod growth;
mod presence;
mod publishing;
mod timers;

use std::sync::Arc;

use baton_queue::Queue;

pub use delivery::*;
pub use growth::*;
pub use presence::*;
pub use publishing::*;
pub use timers::*;

/// Handles on fresh queues: `a` and `b` on the same queue, sharing nothing in memory (a runner
/// and a worker, or two replicas); `other` on a queue of another deployment.
pub struct Queues {
    pub a: Arc<dyn Queue>,
    pub b: Arc<dyn Queue>,
    pub other: Arc<dyn Queue>,
}

/// One `#[tokio::test]` per check, each run by `$harness`: an `async fn(check)` that opens
/// [`Queues`] on fresh queues, awaits `check(queues)` and cleans up.
macro_rules! queue_conformance {
    ($harness:path) => {
        queue_conformance!(@checks $harness;
            jobs_are_delivered_once_in_order_until_reported,
            jobs_enqueued_before_any_worker_joined_are_delivered,
            an_empty_read_waits_for_its_block_and_wakes_for_a_job,
            an_unacknowledged_job_is_reclaimed_after_the_visibility_timeout,
            a_touched_job_is_not_reclaimed_while_its_worker_runs_it,
            a_stale_touch_does_not_take_back_a_reclaimed_job,
            runner_messages_are_reclaimed_until_a_batch_acknowledges_them,
            dead_letters_acknowledge_their_entry_and_are_read_oldest_first,
            stats_count_backlog_and_pending_per_stream,
            timers_fire_once_and_only_when_due,
            concurrent_firing_moves_each_timer_once,
            events_are_read_after_a_cursor_in_order,
            reading_only_new_events_skips_the_ones_before,
            cancel_notices_reach_every_subscriber_in_order,
            worker_heartbeats_are_live_until_they_go_stale,
            queues_of_other_deployments_share_nothing,
            dead_letters_are_listed_by_id_in_pages_and_read_one_by_one,
            a_replayed_dead_letter_is_delivered_afresh_once,
            concurrent_replays_of_one_letter_send_it_once,
            a_letter_naming_no_work_stream_is_kept_unreplayed,
            a_dropped_timer_never_fires,
            removing_idle_consumers_never_drops_a_pending_entry,
            a_job_is_present_until_its_report_is_applied,
            a_job_behind_a_long_backlog_is_found,
        );
    };
    (@checks $harness:path; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                $harness($crate::conformance::$check).await;
            }
        )*
    };
}
