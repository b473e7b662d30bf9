//! Step leases: a step in flight holds one that runs out by the database's clock; the
//! reconciler lists the expired ones and extends those whose job it found still queued. A lease
//! that moved on (dispatched again, or its step ended) is never extended.

use baton_engine::{EngineConfig, now_micros, redispatch_step, start_run};
use baton_proto::v1;
use baton_store::StepLease;

use super::{Handles, fixtures::*};

/// Leases that run out as soon as they are written.
fn at_once() -> EngineConfig {
    EngineConfig {
        lease_ttl: 1,
        ..EngineConfig::default()
    }
}

pub async fn expired_leases_are_listed_renewed_and_fenced_by_token(h: Handles) {
    let wf = pipeline("acme", "etl", 1);
    let now = now_micros();
    let run = create(h.a.as_ref(), new_run("t", "acme/etl@1", now))
        .await
        .id;
    // Another run whose leases last: never listed.
    let lasting = create(h.a.as_ref(), new_run("t", "acme/etl@1", now))
        .await
        .id;
    change(h.a.as_ref(), lasting, |r, fx| {
        start_run(r, &wf, &EngineConfig::default(), now, fx)
    })
    .await;
    let (_, fx) = change(h.a.as_ref(), run, |r, fx| {
        start_run(r, &wf, &at_once(), now, fx)
    })
    .await;
    let job = fx.jobs[0].clone();
    assert_eq!(job.lease, 1);

    let fetch = StepLease {
        run_id: run,
        step_id: "fetch".into(),
        kind: KIND.into(),
        attempt: 1,
        lease: 1,
    };
    let expired = eventually_expired(&h, 1).await;
    assert_eq!(
        expired,
        vec![fetch.clone()],
        "only the step in flight, by either handle"
    );

    // A renewal carrying another token changes nothing; the current one lifts it out.
    let stale = StepLease {
        lease: 7,
        ..fetch.clone()
    };
    assert_eq!(h.a.renew_leases(&[stale], 60_000_000).await.unwrap(), 0);
    assert_eq!(h.b.expired_leases(10).await.unwrap(), vec![fetch.clone()]);
    assert_eq!(
        h.a.renew_leases(std::slice::from_ref(&fetch), 60_000_000)
            .await
            .unwrap(),
        1
    );
    assert!(h.b.expired_leases(10).await.unwrap().is_empty());
    assert_eq!(h.a.renew_leases(&[], 1).await.unwrap(), 0);

    // Dispatched again under lease 2: the old token renews nothing, the new one expires.
    let redispatch = v1::RedispatchStepCommand {
        run_id: run.to_string(),
        step_id: "fetch".into(),
        attempt: 1,
        lease: 1,
    };
    change(h.a.as_ref(), run, |r, fx| {
        redispatch_step(r, &wf, &at_once(), &redispatch, now_micros(), fx)
    })
    .await;
    let second = StepLease {
        lease: 2,
        ..fetch.clone()
    };
    assert_eq!(eventually_expired(&h, 1).await, vec![second.clone()]);
    assert_eq!(h.a.renew_leases(&[fetch], 60_000_000).await.unwrap(), 0);

    // The step ends: no lease is left to expire or renew.
    let done = v1::JobResult {
        lease: 2,
        ..succeeded(run, "fetch", 1, "w1", serde_json::json!({}), now_micros())
    };
    change(h.a.as_ref(), run, |r, fx| {
        baton_engine::apply_job_result(r, &wf, &EngineConfig::default(), &done, now_micros(), fx)
    })
    .await;
    let left = h.b.expired_leases(10).await.unwrap();
    assert!(
        left.iter().all(|l| l.step_id != "fetch"),
        "an ended step holds no lease: {left:?}"
    );
    assert_eq!(h.a.renew_leases(&[second], 60_000_000).await.unwrap(), 0);
}

/// Waits (briefly: the leases last a microsecond) until `n` leases are listed.
async fn eventually_expired(h: &Handles, n: usize) -> Vec<StepLease> {
    for _ in 0..100 {
        let expired = h.b.expired_leases(10).await.unwrap();
        if expired.len() >= n {
            return expired;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    h.b.expired_leases(10).await.unwrap()
}
