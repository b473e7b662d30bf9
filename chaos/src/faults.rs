//! The faults, one function per scenario. Each runs while the load is under way, timed by how
//! many StartRuns were acknowledged so that it lands mid-load whatever the machine's speed, and
//! notes what it did; checks that only make sense for one fault are recorded as violations here,
//! the rest is left to the audit.

use std::{collections::HashSet, time::Duration};

use baton_proto::v1;
use tonic::Code;

use crate::{
    Profile,
    audit::Violation,
    load::{self, Ack, Expect, Load},
    servers::Servers,
    services::{MAX_INPUTS_BYTES, ServiceBinaries, Services},
    streams::{KINDS, Streams},
};

/// How long the services get to report SERVING again after a dependency came back.
const RECOVER_WITHIN: Duration = Duration::from_secs(30);
/// How long the orchestrator stays down after each kill.
const ORCHESTRATOR_DOWN: Duration = Duration::from_secs(1);

/// What a fault works on, and what it found.
pub struct Stage<'a> {
    pub profile: &'a Profile,
    pub servers: &'a mut Servers,
    pub services: &'a mut Services,
    pub binaries: &'a ServiceBinaries,
    pub load: &'a Load,
    pub streams: &'a Streams,
    /// The scenario's database, to say what a fault hit.
    pub pool: &'a sqlx::PgPool,
    pub notes: Vec<String>,
    pub violations: Vec<Violation>,
}

impl Stage<'_> {
    fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    fn progress(&self) -> String {
        format!("{} acknowledged", self.load.acknowledged())
    }

    /// Steps queued or running right now, and the runs they belong to: the work a fault can hit.
    async fn in_flight(&self) -> String {
        let counted: Result<(i64, i64, i64), _> = sqlx::query_as(
            "SELECT count(*), count(DISTINCT run_id), count(*) FILTER (WHERE kind = 'http') \
             FROM step_runs WHERE status IN ('queued', 'running')",
        )
        .fetch_one(self.pool)
        .await;
        match counted {
            Ok((steps, runs, http)) => {
                format!("{steps} steps ({http} http) of {runs} runs queued or running")
            }
            Err(e) => format!("steps in flight unknown: {e}"),
        }
    }
}

/// `kill -9` of the runner replicas in turn, and of the http-worker every third kill, each
/// started again at once.
pub async fn runner_kill(stage: &mut Stage<'_>) -> anyhow::Result<()> {
    let order = kill_order(stage.profile.runner_kills, stage.profile.http_worker_kills);
    let kills = order.len();
    for (k, target) in order.into_iter().enumerate() {
        stage
            .load
            .reached((k + 1) as f64 / (kills + 1) as f64)
            .await;
        match target {
            Some(replica) => stage.services.kill_runner(replica).await?,
            None => {
                let hit = stage.in_flight().await;
                stage.services.kill_http_worker().await?;
                stage.note(format!("http-worker killed with {hit}"));
            }
        }
    }
    stage.note(format!(
        "{} runner kills, replicas taken in turn, and {} http-worker kills",
        stage.profile.runner_kills, stage.profile.http_worker_kills
    ));
    Ok(())
}

/// Which service each kill hits: `Some(replica)` for a runner, the replicas in turn, `None` for
/// the http-worker, every third kill while it has kills left.
fn kill_order(runner_kills: usize, http_worker_kills: usize) -> Vec<Option<usize>> {
    let (mut runners, mut http) = (0, 0);
    let mut order = Vec::new();
    while runners < runner_kills || http < http_worker_kills {
        let http_turn = (order.len() + 1) % 3 == 0 || runners == runner_kills;
        if http_turn && http < http_worker_kills {
            order.push(None);
            http += 1;
        } else {
            order.push(Some(runners % 2));
            runners += 1;
        }
    }
    order
}

/// `kill -9` of the orchestrator, started again after a second; StartRuns meanwhile fail and are
/// tried again with the same key.
pub async fn orchestrator_kill(stage: &mut Stage<'_>) -> anyhow::Result<()> {
    let kills = stage.profile.orchestrator_kills;
    for k in 0..kills {
        stage
            .load
            .reached((k + 1) as f64 / (kills + 1) as f64)
            .await;
        stage.services.kill_orchestrator(ORCHESTRATOR_DOWN).await?;
    }
    stage.note(format!(
        "{kills} orchestrator kills, each down {ORCHESTRATOR_DOWN:?}"
    ));
    Ok(())
}

/// Redis killed mid-load and started again empty on the same port: every job, inbox message,
/// timer and consumer group is gone, and only PostgreSQL knows what was in flight.
pub async fn redis_restart_empty(stage: &mut Stage<'_>) -> anyhow::Result<()> {
    let restarts = stage.profile.redis_restarts;
    for r in 0..restarts {
        stage
            .load
            .reached((r + 1) as f64 / (restarts + 1) as f64)
            .await;
        let (at, hit) = (stage.progress(), stage.in_flight().await);
        stage.servers.redis.restart_empty().await?;
        stage.note(format!(
            "Redis killed and restarted empty at {at}, with {hit}"
        ));
        if let Err(e) = stage.services.wait_serving(RECOVER_WITHIN).await {
            stage.violations.push(Violation::general(
                "health",
                format!("after Redis came back empty: {e:#}"),
            ));
        }
    }
    Ok(())
}

/// PostgreSQL stopped hard mid-load and started again after the outage.
pub async fn postgres_stop(stage: &mut Stage<'_>) -> anyhow::Result<()> {
    stage.load.reached(0.3).await;
    let (at, hit) = (stage.progress(), stage.in_flight().await);
    stage.servers.postgres.stop_immediate().await?;
    let outage = stage.profile.postgres_outage;
    let stopped = tokio::time::Instant::now();
    let probe = outage_probe(stage, outage).await;
    tokio::time::sleep_until(stopped + outage).await;
    stage.servers.postgres.start().await?;
    stage.note(format!(
        "PostgreSQL stopped (immediate) at {at}, with {hit}, for {outage:?}"
    ));
    stage.note(probe);
    if let Err(e) = stage.services.wait_serving(RECOVER_WITHIN).await {
        stage.violations.push(Violation::general(
            "health",
            format!("after PostgreSQL came back: {e:#}"),
        ));
    }
    Ok(())
}

/// How a StartRun fares while PostgreSQL is down: one call a second into the outage, given
/// until two seconds before its end to answer, and how long its answer took. An acknowledged
/// probe joins the ledger like any run.
async fn outage_probe(stage: &Stage<'_>, outage: Duration) -> String {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let budget = outage
        .saturating_sub(Duration::from_secs(3))
        .max(Duration::from_secs(1));
    let mut call = tonic::Request::new(v1::StartRunRequest {
        workflow_ref: load::CHAIN_REF.into(),
        inputs_json: serde_json::json!({ "i": -1 }).to_string(),
        idempotency_key: "outage-probe".into(),
        tenant: String::new(),
    });
    call.set_timeout(budget);
    let began = tokio::time::Instant::now();
    let answer = stage.services.api().runs().start_run(call).await;
    let took = began.elapsed();
    let ledger = stage.load.ledger();
    let mut ledger = ledger.lock().unwrap_or_else(|e| e.into_inner());
    let said = match answer {
        Ok(response) => {
            ledger.answered(Code::Ok);
            if let Some(run) = response.into_inner().run {
                ledger.acks.push(Ack {
                    key: "outage-probe".into(),
                    run_id: run.id,
                    expect: Expect::Complete,
                });
            }
            "OK".to_owned()
        }
        Err(status) => {
            ledger.answered(status.code());
            format!("{} ({})", load::code_name(status.code()), status.message())
        }
    };
    format!(
        "a StartRun 1 s into the outage answered {said} after {:.1}s (it was given {budget:?})",
        took.as_secs_f64()
    )
}

/// SIGSTOP of a runner replica, its built-in workers with it, and of the http-worker, for longer
/// than the visibility timeouts, then SIGCONT: the runner's jobs and inbox messages are taken
/// over meanwhile, the http-worker's are claimed again once it continues, and whatever either
/// reports late must change nothing.
pub async fn worker_pause(stage: &mut Stage<'_>) -> anyhow::Result<()> {
    stage.load.reached(0.3).await;
    let (at, hit) = (stage.progress(), stage.in_flight().await);
    stage.services.pause_workers(0, stage.profile.pause).await?;
    stage.note(format!(
        "runner-0 and the http-worker stopped (SIGSTOP) at {at}, with {hit}, for {:?}, then continued",
        stage.profile.pause
    ));
    Ok(())
}

/// Copies of runner-inbox and job entries appended again while the load runs: every message is
/// delivered twice.
pub async fn duplicates(stage: &mut Stage<'_>) -> anyhow::Result<()> {
    stage.load.reached(0.1).await;
    let mut seen = HashSet::new();
    let (mut inbox, mut jobs) = (0usize, 0usize);
    let runner = stage.streams.keys.runner();
    let streams = stage.streams.work_streams();
    while !stage.load.is_done() {
        for stream in &streams {
            for (id, pairs) in stage.streams.range(stream, 200).await? {
                if seen.insert((stream.clone(), id)) {
                    stage.streams.append(stream, &pairs).await?;
                    if *stream == runner {
                        inbox += 1;
                    } else {
                        jobs += 1;
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stage.note(format!(
        "appended again: {inbox} runner-inbox entries, {jobs} job entries"
    ));
    if inbox == 0 || jobs == 0 {
        stage.violations.push(Violation::general(
            "suite",
            format!("the suite found too little to duplicate ({inbox} inbox, {jobs} job entries)"),
        ));
    }
    Ok(())
}

/// Runs of each poisoned workflow.
const POISONED_RUNS: usize = 2;

/// A workflow whose one `echo` step cannot run or be stored, and how its runs must fail.
struct Poisoned {
    name: &'static str,
    /// The step's input, in YAML flow style.
    input: &'static str,
    /// What the run's error must name.
    naming: &'static str,
    /// The runner variable of the limit it crosses; a runner that does not read it need only
    /// end the run.
    limit: Option<&'static str>,
}

/// The NUL comes from the template's string escape: YAML turns `\\u0000` into `\u0000`, which
/// minijinja turns into a NUL, so the definition itself holds none. The sizes cross the
/// [`crate::services::RUNNER_LIMITS`]: 200 kB of one template over its 128 KiB; three of
/// 100 kB over the 256 KiB step input; an input of 100 kB, echoed, over the 64 KiB step
/// output; a million loop turns (over the characters of a string: templates may name no
/// function) over the fuel of 100,000.
const POISONED: &[Poisoned] = &[
    Poisoned {
        name: "nul-output",
        input: r#"{ text: "{{ 'x\\u0000y' }}" }"#,
        naming: "NUL character",
        limit: None,
    },
    Poisoned {
        name: "template-output",
        input: r#"{ text: "{{ 'x' * 200000 }}" }"#,
        naming: "BATON_MAX_TEMPLATE_OUTPUT_BYTES",
        limit: Some("BATON_MAX_TEMPLATE_OUTPUT_BYTES"),
    },
    Poisoned {
        name: "step-input",
        input: r#"{ a: "{{ 'x' * 100000 }}", b: "{{ 'y' * 100000 }}", c: "{{ 'z' * 100000 }}" }"#,
        naming: "BATON_MAX_STEP_INPUT_BYTES",
        limit: Some("BATON_MAX_STEP_INPUT_BYTES"),
    },
    Poisoned {
        name: "step-output",
        input: r#"{ text: "{{ 'x' * 100000 }}" }"#,
        naming: "BATON_MAX_STEP_OUTPUT_BYTES",
        limit: Some("BATON_MAX_STEP_OUTPUT_BYTES"),
    },
    Poisoned {
        name: "template-fuel",
        input: r#"{ text: "{% for a in 'x' * 1000 %}{% for b in 'x' * 1000 %}{% endfor %}{% endfor %}" }"#,
        naming: "BATON_TEMPLATE_FUEL",
        limit: Some("BATON_TEMPLATE_FUEL"),
    },
];

impl Poisoned {
    fn workflow_ref(&self) -> String {
        format!("chaos/{}@1", self.name)
    }

    fn definition(&self) -> String {
        format!(
            "owner: chaos\nname: {}\nversion: 1\nsteps:\n  - {{ id: say, kind: echo, input: {} }}\n  - {{ id: after, kind: noop, needs: [say] }}\n",
            self.name, self.input
        )
    }

    fn expect(&self, binaries: &ServiceBinaries) -> Expect {
        match self.limit {
            Some(variable) if !binaries.runner_mentions(variable) => Expect::End,
            _ => Expect::FailNaming(self.naming.to_owned()),
        }
    }
}

/// Poison on every stream (undecodable bytes, an empty payload, an entry without Baton's field),
/// StartRuns the API must refuse (a NUL in the inputs, inputs over the limit), and runs whose
/// step input and output cannot be stored. Nothing of it may hold back the load.
pub async fn poison(stage: &mut Stage<'_>) -> anyhow::Result<()> {
    let api = stage.services.api();
    for poisoned in POISONED {
        api.register(&poisoned.definition()).await?;
    }
    stage.load.reached(0.2).await;

    let mut undecodable = 0;
    let events = stage.streams.keys.events();
    for stream in stage.streams.work_streams().iter().chain([&events]) {
        stage
            .streams
            .append_payload(stream, &[0xff, 0xff, 0xff])
            .await?;
        stage
            .streams
            .append_payload(stream, &[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f])
            .await?;
        stage.streams.append_payload(stream, &[]).await?;
        stage
            .streams
            .append(stream, &[(b"junk".to_vec(), b"1".to_vec())])
            .await?;
        if *stream != events {
            undecodable += 3;
        }
    }
    stage.note(format!(
        "poison appended to {} streams (runner, jobs:{{{}}}, events): undecodable bytes, an empty payload, no payload field",
        KINDS.len() + 2,
        KINDS.join(",")
    ));

    refused_starts(stage).await;
    poisoned_runs(stage).await?;

    stage.load.reached(1.0).await;
    let deadline = tokio::time::Instant::now() + stage.profile.settle;
    let mut dead = stage.streams.dead_letters().await?;
    while dead < undecodable && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        dead = stage.streams.dead_letters().await?;
    }
    if dead < undecodable {
        stage.violations.push(Violation::general(
            "dead-letters",
            format!("{undecodable} undecodable entries were appended to work streams, but the dead-letter stream holds {dead}"),
        ));
    }
    Ok(())
}

/// StartRuns that must be refused with INVALID_ARGUMENT naming what is wrong, and stored nowhere.
async fn refused_starts(stage: &mut Stage<'_>) {
    let mut client = stage.services.api().runs();
    let oversized = "x".repeat(MAX_INPUTS_BYTES + 1);
    let cases = [
        (
            "poison-nul-input",
            serde_json::json!({ "v": "x\u{0}y" }).to_string(),
            "NUL",
        ),
        (
            "poison-oversized-input",
            serde_json::json!({ "v": oversized }).to_string(),
            "BATON_MAX_INPUTS_BYTES",
        ),
    ];
    let ledger = stage.load.ledger();
    for (key, inputs_json, named) in cases {
        let answer = client
            .start_run(v1::StartRunRequest {
                workflow_ref: load::CHAIN_REF.into(),
                inputs_json,
                idempotency_key: key.into(),
                tenant: String::new(),
            })
            .await;
        let code = answer.as_ref().map_or_else(|s| s.code(), |_| Code::Ok);
        {
            let mut ledger = ledger.lock().unwrap_or_else(|e| e.into_inner());
            ledger.answered(code);
            ledger.must_not_exist.push(key.into());
        }
        match answer {
            Err(status)
                if status.code() == Code::InvalidArgument && status.message().contains(named) => {}
            other => stage.violations.push(Violation::general(
                "refuse",
                format!(
                    "StartRun {key} must be INVALID_ARGUMENT naming {named:?}; got {}",
                    match other {
                        Ok(_) => "OK".to_owned(),
                        Err(status) => format!("{status}"),
                    }
                ),
            )),
        }
    }
    stage.note("StartRuns with a NUL in the inputs and with inputs over BATON_MAX_INPUTS_BYTES");
}

/// Runs of the poisoned workflows, in the ledger with how each must end.
async fn poisoned_runs(stage: &mut Stage<'_>) -> anyhow::Result<()> {
    let mut client = stage.services.api().runs();
    let ledger = stage.load.ledger();
    let mut unlimited = Vec::new();
    for poisoned in POISONED {
        let expect = poisoned.expect(stage.binaries);
        if expect == Expect::End {
            unlimited.extend(poisoned.limit);
        }
        for n in 0..POISONED_RUNS {
            let key = format!("poison-{}-{n}", poisoned.name);
            let run = client
                .start_run(v1::StartRunRequest {
                    workflow_ref: poisoned.workflow_ref(),
                    inputs_json: "{}".into(),
                    idempotency_key: key.clone(),
                    tenant: String::new(),
                })
                .await;
            let mut ledger = ledger.lock().unwrap_or_else(|e| e.into_inner());
            match run {
                Ok(response) => {
                    ledger.answered(Code::Ok);
                    if let Some(run) = response.into_inner().run {
                        ledger.acks.push(Ack {
                            key,
                            run_id: run.id,
                            expect: expect.clone(),
                        });
                    }
                }
                Err(status) => {
                    ledger.answered(status.code());
                    ledger.refused.push((key, status.to_string()));
                }
            }
        }
    }
    let names: Vec<&str> = POISONED.iter().map(|p| p.name).collect();
    stage.note(format!(
        "{POISONED_RUNS} runs each of chaos/{{{}}}, each failing naming the NUL or its limit",
        names.join(",")
    ));
    if !unlimited.is_empty() {
        stage.note(format!(
            "the runner reads no {}: those runs only have to end",
            unlimited.join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::kill_order;

    #[test]
    fn the_http_worker_takes_every_third_kill_while_it_has_kills_left() {
        assert_eq!(kill_order(2, 1), [Some(0), Some(1), None]);
        assert_eq!(
            kill_order(4, 2),
            [Some(0), Some(1), None, Some(0), Some(1), None]
        );
        assert_eq!(kill_order(3, 0), [Some(0), Some(1), Some(0)]);
        assert_eq!(kill_order(0, 2), [None, None]);
        assert_eq!(kill_order(1, 3), [Some(0), None, None, None]);
        assert_eq!(kill_order(10, 5).iter().filter(|k| k.is_none()).count(), 5);
    }
}
