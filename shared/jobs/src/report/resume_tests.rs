//! A report stopped and resumed any number of times, at any record: the
//! summary is byte for byte the uninterrupted one.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};

use super::aggregate::{aggregate, summary_csv, Parsed, ParserSide, Resume, Spec};
use super::checkpoint::{Asks, ReportCheckpoint, SavedGroup, SavedGroups};
use super::ReportLimits;

fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

/// A CSV of random rows: groups from a small set (some quoted, some with
/// spaces), values that are integers, decimals, exponents, negatives or
/// blank; line ends LF or CRLF; blank lines between.
fn random_csv(next: &mut impl FnMut() -> u64, rows: usize) -> Vec<u8> {
    let groups = ["eu", "us", "\"a, b\"", " apac ", "x\"\"y", "zz"];
    let mut text = b"region,kind,amount,qty\n".to_vec();
    for _ in 0..rows {
        let group = groups[(next() % groups.len() as u64) as usize];
        let kind = ["a", "b", "c"][(next() % 3) as usize];
        let amount = match next() % 5 {
            0 => format!("{}", next() % 1000),
            1 => format!("-{}.{}", next() % 100, next() % 1000),
            2 => format!("{}e-3", next() % 10_000),
            3 => String::new(),
            _ => format!("0.{}", next() % 1_000_000),
        };
        let qty = next() % 50;
        let end: &[u8] = if next().is_multiple_of(3) { b"\r\n" } else { b"\n" };
        text.extend_from_slice(format!("{group},{kind},{amount},{qty}").as_bytes());
        text.extend_from_slice(end);
        if next().is_multiple_of(20) {
            text.extend_from_slice(end);
        }
    }
    text
}

fn chunks_of(text: &[u8], next: &mut impl FnMut() -> u64) -> Vec<std::io::Result<Bytes>> {
    let mut chunks = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let take = (1 + (next() % 700) as usize).min(rest.len());
        chunks.push(Ok(Bytes::copy_from_slice(&rest[..take])));
        rest = &rest[take..];
    }
    chunks
}

fn spec() -> Spec {
    let limits = ReportLimits::from_config(&longrun_core::fixtures::config(&[])).unwrap();
    Spec {
        group_by: vec!["region".into(), "kind".into()],
        values: vec!["amount".into(), "qty".into()],
        limits,
        etag: None,
    }
}

/// The summary's two result files, as the job writes them.
fn written(parsed: Parsed) -> (Vec<u8>, Vec<u8>) {
    let Parsed::Done(summary) = parsed else {
        panic!("the report stopped")
    };
    let json = serde_json::to_vec_pretty(&summary).unwrap();
    (json, summary_csv(&summary).unwrap())
}

fn side(asks: Arc<Asks>) -> ParserSide {
    let (saves, _) = tokio::sync::mpsc::channel(1);
    ParserSide {
        rows_read: Arc::new(AtomicU64::new(0)),
        asks,
        saves,
    }
}

/// The snapshot as the next run gets it back: the checkpoint through JSON
/// (as the record holds it), the groups through JSON (as the state object
/// or the checkpoint holds them).
fn as_saved(snapshot: super::checkpoint::Snapshot) -> Resume {
    let mut at = snapshot.at;
    at.groups = SavedGroups::Object("elsewhere".into());
    let at: ReportCheckpoint = serde_json::from_value(serde_json::to_value(&at).unwrap()).unwrap();
    let groups: Vec<SavedGroup> = serde_json::from_slice(&snapshot.groups).unwrap();
    Resume { at, groups }
}

#[test]
fn a_report_stopped_at_random_records_any_number_of_times_writes_the_uninterrupted_summary() {
    let mut next = xorshift(0x9E37_79B9_7F4A_7C15);
    let mut stops = 0;
    for case in 0..60 {
        let rows = 1 + (next() % 400) as usize;
        let text = random_csv(&mut next, rows);
        let whole = written(
            aggregate(
                chunks_of(&text, &mut next).into_iter(),
                &spec(),
                &side(Arc::default()),
                None,
            )
            .unwrap(),
        );
        let mut resume: Option<Resume> = None;
        let mut runs = 0;
        let resumed = loop {
            runs += 1;
            let asks = Arc::new(Asks::default());
            let done = resume.as_ref().map_or(0, |r| r.at.rows);
            asks.stop_at_rows(done + 1 + next() % (rows as u64 / 3 + 1));
            let offset = resume.as_ref().map_or(0, |r| r.at.offset) as usize;
            let chunks = chunks_of(&text[offset..], &mut next);
            match aggregate(chunks.into_iter(), &spec(), &side(asks), resume.take()).unwrap() {
                Parsed::Stopped(snapshot) => {
                    stops += 1;
                    resume = Some(as_saved(snapshot));
                }
                done => break written(done),
            }
        };
        assert!(
            resumed == whole,
            "case {case}, {runs} runs: {}\nvs\n{}",
            String::from_utf8_lossy(&resumed.0),
            String::from_utf8_lossy(&whole.0)
        );
    }
    assert!(stops > 300, "the cases must stop often: {stops}");
}

/// `rows` rows over `groups` groups, each line long enough to make a
/// large input quickly.
fn big_csv(rows: usize, groups: usize) -> Vec<u8> {
    let mut next = xorshift(0xD1B5_4A32_D192_ED03);
    let mut text = b"group,pad,amount\n".to_vec();
    for i in 0..rows {
        let line = format!(
            "g{},{},{}.{}\n",
            i % groups,
            "p".repeat(40),
            next() % 1000,
            next() % 100
        );
        text.extend_from_slice(line.as_bytes());
    }
    text
}

/// Runs the report on `csv` through runs of `run_time` each, as a worker
/// continues it, until it ends: the summary it wrote, how many runs, and
/// the checkpoints' groups seen in the record (inline or in an object).
async fn in_short_runs(csv: Vec<u8>, run_time: std::time::Duration) -> (Value, usize, Vec<&'static str>) {
    use longrun_core::job_types::testing::Harness;
    let h = Harness::new(json!({})).await;
    let key = h.put_input("big.csv", csv).await;
    // 4 MB/s: no run reads more than a run's time allows, on any machine.
    h.objects.throttle_reads(4_000_000);
    let input = json!({"source": {"key": key}, "group_by": ["group"], "values": ["amount"]});
    let job = super::ReportJob::new(ReportLimits::from_config(&longrun_core::fixtures::config(&[])).unwrap());
    let mut run = h.with_input(input).stopping_in(run_time);
    let (mut runs, mut kinds) = (1, Vec::new());
    loop {
        match run.run(&job).await {
            Ok(_) => break,
            Err(stop) => assert_eq!(stop.code, longrun_core::record::codes::INVOCATION_DEADLINE, "{stop:?}"),
        }
        let saved = run.job().await.checkpoint.expect("a checkpoint before the stop");
        kinds.push(if saved["groups"].get("inline").is_some() {
            "inline"
        } else {
            "object"
        });
        run = run.next_run(run_time).await;
        runs += 1;
        assert!(runs < 200, "the report must get on");
    }
    let summary = serde_json::from_slice(&run.result("summary.json").unwrap()).unwrap();
    (summary, runs, kinds)
}

#[tokio::test]
async fn a_report_over_many_short_runs_resumes_from_its_checkpoints_in_the_record_or_an_object() {
    use std::time::Duration;
    for (groups, kind) in [(20, "inline"), (2_000, "object")] {
        let csv = big_csv(36_000, groups); // 2 MB: at least half a second
        let (whole, runs, _) = in_short_runs(csv.clone(), Duration::from_secs(600)).await;
        assert_eq!(runs, 1);
        // Each run has 1.2 s: the report saves at its first look (0.2 s in)
        // once fewer than CHECKPOINT_LEAD (1 s) are left, and stops; at
        // 4 MB/s a run reads at most about 0.8 MB.
        let (resumed, runs, kinds) = in_short_runs(csv, Duration::from_millis(1_200)).await;
        assert!(runs >= 3, "{groups} groups: {runs} runs");
        assert!(kinds.iter().all(|k| *k == kind), "{groups} groups: {kinds:?}");
        assert_eq!(resumed, whole, "{groups} groups, {runs} runs");
        assert_eq!(resumed["rows"], 36_000);
    }
}

#[tokio::test]
async fn a_report_whose_input_is_replaced_between_runs_fails_input_changed() {
    use longrun_core::job_types::testing::Harness;
    use std::time::Duration;
    let h = Harness::new(json!({})).await;
    let key = h.put_input("replaced.csv", big_csv(36_000, 20)).await;
    h.objects.throttle_reads(4_000_000);
    let input = json!({"source": {"key": key}, "group_by": ["group"], "values": ["amount"]});
    let job = super::ReportJob::new(ReportLimits::from_config(&longrun_core::fixtures::config(&[])).unwrap());
    let run = h.with_input(input).stopping_in(Duration::from_millis(1_200));
    let stop = run.run(&job).await.expect_err("stopped to continue");
    assert_eq!(stop.code, longrun_core::record::codes::INVOCATION_DEADLINE, "{stop:?}");
    let saved = run.job().await.checkpoint.expect("a checkpoint");
    assert!(saved["etag"].is_string(), "the version read is kept: {saved}");
    // Another object under the same key: the run must not go on over it.
    run.put_input("replaced.csv", big_csv(36_000, 7)).await;
    let next = run.next_run(Duration::from_secs(600)).await;
    let failed = next.run(&job).await.expect_err("the input changed");
    assert_eq!(failed.code, longrun_core::record::codes::INPUT_CHANGED, "{failed:?}");
    assert!(!failed.retryable);
}
