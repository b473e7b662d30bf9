//! Run and step state as the engine sees it, with the changes it made since loading, so the store
//! writes only what changed.

use std::{fmt, str::FromStr};

use baton_proto::v1;
use serde_json::Value as Json;
use uuid::Uuid;

/// Microseconds since the Unix epoch: the engine's one clock unit.
pub fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

macro_rules! status_enum {
    ($name:ident, $proto:ty, { $($variant:ident = $text:literal => $pv:ident),* $(,)? }) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),* }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),* }
            }
            pub fn to_proto(self) -> $proto {
                match self { $(Self::$variant => <$proto>::$pv),* }
            }
            pub fn from_proto(p: $proto) -> Option<Self> {
                match p { $(<$proto>::$pv => Some(Self::$variant),)* _ => None }
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s { $($text => Ok(Self::$variant),)* other => Err(format!("unknown status `{other}`")) }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

status_enum!(RunStatus, v1::RunStatus, {
    Queued = "queued" => Queued,
    Running = "running" => Running,
    Completed = "completed" => Completed,
    Failed = "failed" => Failed,
    Cancelled = "cancelled" => Cancelled,
    TimedOut = "timed_out" => TimedOut,
});

status_enum!(StepStatus, v1::StepStatus, {
    Pending = "pending" => Pending,
    Queued = "queued" => Queued,
    Running = "running" => Running,
    Retrying = "retrying" => Retrying,
    Completed = "completed" => Completed,
    Failed = "failed" => Failed,
    Skipped = "skipped" => Skipped,
    Cancelled = "cancelled" => Cancelled,
});

impl RunStatus {
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Queued | Self::Running)
    }
}

impl StepStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Failed | Self::Skipped | Self::Cancelled
        )
    }

    /// Holding one of the run's `maxParallel` slots.
    pub fn is_in_flight(self) -> bool {
        matches!(self, Self::Queued | Self::Running)
    }
}

/// One step of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct StepState {
    pub step_id: String,
    pub kind: String,
    pub status: StepStatus,
    /// The current or last attempt; 0 before the first.
    pub attempt: u32,
    pub output: Option<Json>,
    pub error: Option<String>,
    pub queued_at: Option<i64>,
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub next_attempt_at: Option<i64>,
    pub worker_id: Option<String>,
    /// What the current attempt cost, once it ended.
    pub usage: Option<v1::ResourceUsage>,
    /// The fencing token of the step's current dispatch (0 before the first): only reports that
    /// carry it back change the step.
    pub lease: u64,
    /// The latest delivery of the current dispatch's job that reported (0 before any): an older
    /// one's reports are fenced off, a newer one takes the attempt over.
    pub lease_holder: u32,
    /// How long the store keeps the lease alive from this write, by the database's clock
    /// (microseconds; 0 for none: a step not in flight, or parked). Not stored itself.
    pub lease_ttl: i64,
    /// Changed since loaded: the store writes it back.
    pub dirty: bool,
}

impl StepState {
    pub fn new(step_id: String, kind: String) -> Self {
        Self {
            step_id,
            kind,
            status: StepStatus::Pending,
            attempt: 0,
            output: None,
            error: None,
            queued_at: None,
            started_at: None,
            ended_at: None,
            next_attempt_at: None,
            worker_id: None,
            usage: None,
            lease: 0,
            lease_holder: 0,
            lease_ttl: 0,
            dirty: true,
        }
    }
}

/// A state change to be stored and published, numbered within its run.
#[derive(Clone, Debug, PartialEq)]
pub struct EventRecord {
    pub sequence: i64,
    pub event_type: v1::RunEventType,
    pub step_id: Option<String>,
    pub attempt: u32,
    pub time: i64,
    pub message: Option<String>,
    pub output: Option<Json>,
}

/// A finished attempt of a step, kept for the run's history.
#[derive(Clone, Debug, PartialEq)]
pub struct AttemptRecord {
    pub step_id: String,
    pub attempt: u32,
    pub status: StepStatus,
    pub error: Option<String>,
    pub worker_id: Option<String>,
    pub queued_at: Option<i64>,
    pub started_at: Option<i64>,
    pub ended_at: i64,
    pub usage: Option<v1::ResourceUsage>,
}

/// A run with its steps, loaded under the run's lock.
#[derive(Clone, Debug)]
pub struct RunState {
    pub id: Uuid,
    pub tenant: String,
    pub workflow_ref: String,
    pub status: RunStatus,
    pub inputs: Json,
    pub output: Option<Json>,
    pub error: Option<String>,
    pub idempotency_key: Option<String>,
    /// Resolved when the run starts.
    pub max_parallel: u32,
    pub deadline: Option<i64>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub last_sequence: i64,
    /// W3C trace context (`traceparent`, `tracestate`) of the call that started the run.
    pub trace_context: std::collections::HashMap<String, String>,
    /// In definition order; empty until the run starts.
    pub steps: Vec<StepState>,
    /// Run-level fields changed.
    pub dirty: bool,
    /// The steps were created in this change and must be inserted, not updated.
    pub steps_created: bool,
    pub new_events: Vec<EventRecord>,
    pub new_attempts: Vec<AttemptRecord>,
}

impl RunState {
    /// Appends an event with the run's next sequence number.
    pub(crate) fn push_event(
        &mut self,
        event_type: v1::RunEventType,
        step: Option<usize>,
        time: i64,
        message: Option<String>,
        output: Option<Json>,
    ) {
        self.last_sequence += 1;
        let (step_id, attempt) = match step {
            Some(i) => (Some(self.steps[i].step_id.clone()), self.steps[i].attempt),
            None => (None, 0),
        };
        self.new_events.push(EventRecord {
            sequence: self.last_sequence,
            event_type,
            step_id,
            attempt,
            time,
            message,
            output,
        });
    }

    /// Whether the engine changed anything that must be written.
    pub fn is_changed(&self) -> bool {
        self.dirty || !self.new_events.is_empty() || self.steps.iter().any(|s| s.dirty)
    }

    /// Turns a stored event into its wire form.
    pub fn event_to_proto(&self, e: &EventRecord) -> v1::RunEvent {
        v1::RunEvent {
            run_id: self.id.to_string(),
            sequence: e.sequence,
            r#type: e.event_type as i32,
            step_id: e.step_id.clone().unwrap_or_default(),
            attempt: e.attempt,
            time: Some(baton_proto::timestamp_from_micros(e.time)),
            message: e.message.clone().unwrap_or_default(),
            output_json: e.output.as_ref().map(Json::to_string).unwrap_or_default(),
            workflow_ref: self.workflow_ref.clone(),
            tenant: self.tenant.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn now_micros_reads_the_wall_clock() {
        let micros = |t: std::time::SystemTime| {
            t.duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64
        };
        let before = micros(std::time::SystemTime::now());
        let now = now_micros();
        let after = micros(std::time::SystemTime::now());
        assert!(
            before <= now && now <= after,
            "{before} <= {now} <= {after}"
        );
    }

    #[test]
    fn an_event_goes_on_the_wire_with_its_run() {
        let run = RunState {
            id: Uuid::new_v4(),
            tenant: "acme".into(),
            workflow_ref: "t/w@3".into(),
            status: RunStatus::Running,
            inputs: json!({}),
            output: None,
            error: None,
            idempotency_key: None,
            max_parallel: 1,
            deadline: None,
            created_at: 0,
            started_at: Some(0),
            ended_at: None,
            last_sequence: 4,
            trace_context: Default::default(),
            steps: Vec::new(),
            dirty: false,
            steps_created: false,
            new_events: Vec::new(),
            new_attempts: Vec::new(),
        };
        let event = EventRecord {
            sequence: 5,
            event_type: v1::RunEventType::StepCompleted,
            step_id: Some("a".into()),
            attempt: 2,
            time: 1_500_000,
            message: Some("done".into()),
            output: Some(json!({"x": 1})),
        };
        assert_eq!(
            run.event_to_proto(&event),
            v1::RunEvent {
                run_id: run.id.to_string(),
                sequence: 5,
                r#type: v1::RunEventType::StepCompleted as i32,
                step_id: "a".into(),
                attempt: 2,
                time: Some(baton_proto::timestamp_from_micros(1_500_000)),
                message: "done".into(),
                output_json: r#"{"x":1}"#.into(),
                workflow_ref: "t/w@3".into(),
                tenant: "acme".into(),
            }
        );
        let bare = EventRecord {
            step_id: None,
            message: None,
            output: None,
            ..event
        };
        let wire = run.event_to_proto(&bare);
        assert_eq!(
            (wire.step_id, wire.message, wire.output_json),
            (String::new(), String::new(), String::new())
        );
    }
}
