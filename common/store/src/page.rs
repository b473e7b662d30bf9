//! Page sizes and page tokens, the same for every backend: a token is an opaque keyset cursor
//! (the last item of the page), so a row added between two pages shifts nothing after it.

use baton_engine::RunState;
use uuid::Uuid;

use crate::{Page, PageRequest, StoreError, StoredWorkflow};

/// Items per page when the caller asks for 0.
const DEFAULT_PAGE_SIZE: i64 = 100;
/// Most items on one page, whatever the caller asks for.
const MAX_PAGE_SIZE: u32 = 1_000;

pub(crate) fn page_size(page: &PageRequest) -> i64 {
    match page.size {
        0 => DEFAULT_PAGE_SIZE,
        n => i64::from(n.min(MAX_PAGE_SIZE)),
    }
}

/// Where a page of runs (newest first) ends: runs after it are older, or as old with a lower id.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RunCursor {
    pub created_at: i64,
    pub id: Uuid,
}

/// The cursor in a token of [`list_runs`](crate::Store::list_runs); `None` for the first page.
pub(crate) fn parse_run_token(token: &str) -> Result<Option<RunCursor>, StoreError> {
    if token.is_empty() {
        return Ok(None);
    }
    let (t, id) = token.split_once('_').ok_or(StoreError::BadPageToken)?;
    let created_at = t.parse::<i64>().map_err(|_| StoreError::BadPageToken)?;
    let id = id.parse::<Uuid>().map_err(|_| StoreError::BadPageToken)?;
    // Only times a run can have: one the backends can turn into a timestamp.
    chrono::DateTime::from_timestamp_micros(created_at).ok_or(StoreError::BadPageToken)?;
    Ok(Some(RunCursor { created_at, id }))
}

fn run_token(run: &RunState) -> String {
    format!("{}_{}", run.created_at, run.id)
}

/// Where a page of workflows (by owner, name, then newest version first) ends.
#[derive(Clone, Debug)]
pub(crate) struct WorkflowCursor {
    pub owner: String,
    pub name: String,
    /// The version negated, so the order is ascending in every part.
    pub negated_version: i32,
}

/// The cursor in a token of [`list_workflows`](crate::Store::list_workflows): the last
/// workflow's `owner/name@version`; `None` for the first page.
pub(crate) fn parse_workflow_token(token: &str) -> Result<Option<WorkflowCursor>, StoreError> {
    if token.is_empty() {
        return Ok(None);
    }
    let r: baton_workflow::WorkflowRef = token.parse().map_err(|_| StoreError::BadPageToken)?;
    Ok(Some(WorkflowCursor {
        owner: r.owner,
        name: r.name,
        negated_version: -(r.version.ok_or(StoreError::BadPageToken)? as i32),
    }))
}

/// A page of runs from up to `limit + 1` rows: the extra row only says another page follows.
pub(crate) fn run_page(items: Vec<RunState>, limit: i64) -> Page<RunState> {
    into_page(items, limit, run_token)
}

/// A page of workflows from up to `limit + 1` rows.
pub(crate) fn workflow_page(items: Vec<StoredWorkflow>, limit: i64) -> Page<StoredWorkflow> {
    into_page(items, limit, StoredWorkflow::workflow_ref)
}

fn into_page<T>(mut items: Vec<T>, limit: i64, token: impl Fn(&T) -> String) -> Page<T> {
    let next_token = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(token).unwrap_or_default()
    } else {
        String::new()
    };
    Page { items, next_token }
}
