//! The reconciler's question: is a dispatched job still anywhere in the queue? Waiting on its
//! stream, taken and unacknowledged, or reported in the inbox: yes. Acknowledged all the way, or
//! of another lease: no.

use std::time::Duration;

use baton_queue::{BatchOutcome, JobKey};

use super::{
    Queues,
    fixtures::{KIND, ids, job, result, take_jobs},
};

fn leased(run: u32, lease: u64) -> baton_proto::v1::Job {
    baton_proto::v1::Job {
        lease,
        ..job(run, "fetch", 1)
    }
}

fn key(job: &baton_proto::v1::Job) -> JobKey {
    JobKey {
        run_id: job.run_id.clone(),
        step_id: job.step_id.clone(),
        lease: job.lease,
    }
}

pub async fn a_job_is_present_until_its_report_is_applied(q: Queues) {
    q.a.join_kinds(&[KIND.to_owned()]).await.unwrap();
    let (waiting, taken, reported) = (leased(1, 1), leased(2, 1), leased(3, 2));
    q.a.dispatch(&[taken.clone(), reported.clone()], &[])
        .await
        .unwrap();
    let held = take_jobs(q.b.as_ref(), "w1", 2).await;
    q.a.dispatch(std::slice::from_ref(&waiting), &[])
        .await
        .unwrap();
    // The worker reports run 3's job: the job leaves its stream, its result waits in the inbox.
    let of_run_3: Vec<String> = held
        .iter()
        .filter(|d| d.message.as_ref().unwrap().run_id == reported.run_id)
        .map(|d| d.id.clone())
        .collect();
    q.b.report(KIND, &[result(&reported)], &of_run_3)
        .await
        .unwrap();

    let older_lease = leased(2, 0);
    let never = leased(4, 1);
    let asked = [
        key(&waiting),
        key(&taken),
        key(&reported),
        key(&older_lease),
        key(&never),
    ];
    let found = q.a.jobs_present(KIND, &asked).await.unwrap();
    assert_eq!(found, vec![true, true, true, false, false], "{asked:?}");
    assert_eq!(
        q.a.jobs_present(KIND, &[]).await.unwrap(),
        Vec::<bool>::new()
    );

    // The runner applies the result and acknowledges it: run 3's job is gone everywhere.
    let inbox =
        q.a.read_runner("runner-1", 10, Duration::from_millis(100))
            .await
            .unwrap();
    q.a.complete_batch(BatchOutcome {
        ack: ids(&inbox),
        ..Default::default()
    })
    .await
    .unwrap();
    let found =
        q.b.jobs_present(KIND, &[key(&reported), key(&waiting)])
            .await
            .unwrap();
    assert_eq!(found, vec![false, true]);
}

/// Far more entries than one scan chunk: a job behind all of them is still found.
pub async fn a_job_behind_a_long_backlog_is_found(q: Queues) {
    q.a.join_kinds(&[KIND.to_owned()]).await.unwrap();
    let backlog: Vec<_> = (0..2_500).map(|n| leased(n, 1)).collect();
    q.a.dispatch(&backlog, &[]).await.unwrap();
    let last = leased(9_999, 3);
    q.a.dispatch(std::slice::from_ref(&last), &[])
        .await
        .unwrap();
    let found =
        q.a.jobs_present(KIND, &[key(&last), key(&leased(9_999, 2))])
            .await
            .unwrap();
    assert_eq!(found, vec![true, false]);
}
