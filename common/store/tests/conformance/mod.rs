//! What every [`Store`] promises, written once against the trait so each backend runs the same
//! checks. A backend's test file invokes [`store_conformance!`] with a function that opens two
//! handles on a fresh, empty store and runs one check with them; the checks use the public API
//! only, so they hold whatever the backend keeps inside.

pub mod fixtures;

mod batches;
mod events;
mod keys;
mod leases;
mod retention;
mod runs;
mod signals;
mod workflows;

use std::sync::Arc;

use baton_store::Store;

pub use batches::*;
pub use events::*;
pub use keys::*;
pub use leases::*;
pub use retention::*;
pub use runs::*;
pub use signals::*;
pub use workflows::*;

/// Two handles on one store, sharing its data but nothing in memory, as two replicas of a
/// service do. Checks that need one use `a`.
pub struct Handles {
    pub a: Arc<dyn Store>,
    pub b: Arc<dyn Store>,
}

/// One `#[tokio::test]` per check, each run by `$harness`: an `async fn(check)` that opens
/// [`Handles`] on a fresh store, awaits `check(handles)` and cleans up.
macro_rules! store_conformance {
    ($harness:path) => {
        store_conformance!(@checks $harness;
            registering_the_same_definition_again_changes_nothing,
            registering_other_content_under_a_taken_version_conflicts,
            the_latest_workflow_version_is_the_highest,
            workflow_pages_cover_every_version_once_in_a_stable_order,
            page_tokens_that_were_never_issued_are_refused,
            the_same_version_in_two_tenants_is_two_workflows,
            a_tenant_lists_only_its_own_workflows,
            migrating_again_changes_nothing,
            a_created_run_is_queued_with_its_first_event,
            find_run_returns_the_run_without_its_steps,
            an_idempotency_key_returns_the_first_run_of_its_tenant,
            concurrent_starts_with_one_idempotency_key_make_one_run,
            run_pages_are_newest_first_without_gaps_or_duplicates,
            runs_are_listed_by_tenant_workflow_and_status,
            page_size_zero_means_one_hundred_and_sizes_are_capped_at_one_thousand,
            a_run_driven_to_its_end_has_gapless_ordered_events,
            events_are_read_after_a_cursor_up_to_a_limit,
            a_result_applied_twice_changes_nothing,
            a_result_for_a_replaced_or_ended_attempt_changes_nothing,
            what_a_batch_commits_is_what_the_next_batch_loads,
            a_batch_sees_what_another_handle_committed,
            a_dropped_batch_changes_nothing,
            concurrent_batches_over_one_run_take_turns,
            batches_locking_runs_in_any_order_do_not_deadlock,
            locked_runs_come_in_id_order_without_unknown_ids,
            json_null_is_kept_apart_from_no_value,
            a_batch_over_many_runs_writes_every_one,
            overdue_runs_are_those_due_past_the_grace,
            queued_runs_come_oldest_first_and_running_ones_are_counted,
            status_counts_count_runs_and_steps_by_status,
            run_detail_lists_every_finished_attempt_with_its_workers,
            finished_runs_are_deleted_oldest_first_with_all_they_hold,
            expired_leases_are_listed_renewed_and_fenced_by_token,
            api_keys_are_found_by_id_and_listed_newest_first_by_tenant,
            revoking_an_api_key_keeps_the_first_time,
            an_api_key_id_in_use_conflicts_naming_the_id,
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
