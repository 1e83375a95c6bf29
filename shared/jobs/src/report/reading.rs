//! A report's reading side: the object streamed in chunks to the parser
//! thread, progress reported and checkpoints saved beside it, and the
//! parser's answer turned into the run's (a summary, or a checkpoint and
//! the end of this run's time).

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::AsyncRead;

use longrun_core::job_types::JobContext;
use longrun_core::record::{codes, JobError};

use super::aggregate::{aggregate, Parsed, ParserSide, Resume, Spec};
use super::checkpoint::{save, Ask, Asks, Snapshot};
use super::Summary;

/// How often a running report reports progress (written at most every
/// `PROGRESS_INTERVAL_MS`) and looks at whether the run must stop (a
/// cancel, a lost lease, the deadline).
pub(super) const PROGRESS_TICK: std::time::Duration = std::time::Duration::from_millis(200);
/// Chunks of the input in flight between the reading and the parsing side.
pub(super) const CHUNKS_IN_FLIGHT: usize = 4;
/// Size of one chunk handed to the parser.
pub(super) const CHUNK_BYTES: usize = 64 * 1024;

/// Before the run's stop time, the report saves its checkpoint and stops,
/// so the next run goes on from there.
pub(super) const CHECKPOINT_LEAD: std::time::Duration = std::time::Duration::from_secs(1);

/// Streams the CSV and summarises it. Two sides, so the parsing (CPU) never
/// runs on the async runtime and overlaps with the reading (I/O): this task
/// reads the input and hands chunks through a bounded channel to
/// [`aggregate`] on a blocking thread, which parses them where they lie;
/// beside the reading, it reports progress and saves checkpoints
/// ([`report_progress`]). Memory stays at a few chunks and one record
/// whatever the input's size. If the run stops (an error, cancel, a lost
/// lease), the channel closes and the parser ends after the chunks already
/// sent. `input` starts at `resume`'s offset when there is one, and `size`
/// is what is left of it.
pub(super) async fn summarise(
    ctx: &JobContext,
    mut input: Pin<Box<dyn AsyncRead + Send>>,
    size: Option<u64>,
    spec: Spec,
    resume: Option<Resume>,
) -> Result<Summary, JobError> {
    use tokio::io::AsyncReadExt;
    let (chunks, mut received) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(CHUNKS_IN_FLIGHT);
    let (saves, mut to_save) = tokio::sync::mpsc::channel::<Snapshot>(1);
    let side = ParserSide {
        rows_read: Arc::new(AtomicU64::new(0)),
        asks: Arc::new(Asks::default()),
        saves,
    };
    let (rows, asks) = (side.rows_read.clone(), side.asks.clone());
    let every = spec.limits.checkpoint_every;
    let start = resume.as_ref().map_or(0, |r| r.at.offset);
    let parser = tokio::task::spawn_blocking(move || {
        let input = std::iter::from_fn(move || received.blocking_recv());
        aggregate(input, &spec, &side, resume)
    });
    let read = AtomicU64::new(0);
    let pump = async {
        let mut ended = false;
        while !ended {
            // Whole chunks (a read gives what one network frame holds), so
            // the parser's thread is woken once per chunk, not per read.
            let mut chunk = bytes::BytesMut::with_capacity(CHUNK_BYTES);
            let mut failed = None;
            while chunk.len() < CHUNK_BYTES {
                match input.read_buf(&mut chunk).await {
                    // A body cut short fails its read (the context's
                    // `exact_length`): this is the end of the input.
                    Ok(0) => {
                        ended = true;
                        break;
                    }
                    Ok(_) => {}
                    Err(err) => {
                        failed = Some(err);
                        break;
                    }
                }
            }
            read.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            if !chunk.is_empty() && chunks.send(Ok(chunk.freeze())).await.is_err() {
                return Ok(()); // the parser stopped: its answer says why
            }
            if let Some(err) = failed {
                // The parser reports it once it has parsed what came before.
                let _ = chunks.send(Err(err)).await;
                return Ok(());
            }
        }
        Ok(())
    };
    let total = size.map(|s| s + start);
    let percent = || percent_read(start + read.load(Ordering::Relaxed), total);
    let watch = Watch {
        rows: &rows,
        asks: &asks,
        to_save: &mut to_save,
        every,
    };
    // Progress and checkpoints beside the reading, never holding it up.
    let pumped: Result<(), JobError> = tokio::select! {
        pumped = pump => pumped,
        stop = report_progress(ctx, watch, &percent) => Err(stop),
    };
    drop(chunks);
    // Progress failing (a cancel, the deadline) stops the run first;
    // otherwise the parser's answer, reading errors included, in file order.
    pumped?;
    let parsed = match parser.await {
        Ok(parsed) => parsed?,
        // A panic is a crash, as a job handler's own would be.
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        Err(err) => {
            return Err(JobError::permanent(
                codes::INTERNAL,
                format!("the CSV parser failed: {err}"),
            ))
        }
    };
    match parsed {
        Parsed::Done(summary) => Ok(summary),
        Parsed::Stopped(snapshot) => {
            let offset = snapshot.at.offset;
            save(ctx, snapshot, percent()).await?;
            Err(JobError::retryable(
                codes::INVOCATION_DEADLINE,
                format!("the run's time is up; the report goes on from byte {offset}"),
            ))
        }
    }
}

/// How much of the input is read, as progress (up to 98: the results are
/// still to be written); 50 when the size is not known.
fn percent_read(read: u64, total: Option<u64>) -> u8 {
    total.filter(|&t| t > 0).map_or(50, |t| (read * 98 / t).min(98) as u8)
}

/// What [`report_progress`] watches and answers.
pub(super) struct Watch<'a> {
    rows: &'a AtomicU64,
    asks: &'a Asks,
    to_save: &'a mut tokio::sync::mpsc::Receiver<Snapshot>,
    /// How often a checkpoint is saved (zero: only before the stop time).
    every: std::time::Duration,
}

/// Every [`PROGRESS_TICK`]: a checkpoint saved when one is due (every
/// `every`, and once [`CHECKPOINT_LEAD`] before the run's stop time, after
/// which the parser stops), else progress if the parser has read rows since
/// the last tick (written at most every `PROGRESS_INTERVAL_MS`), else a
/// look at whether the run must stop. Answers why the run must stop, when
/// it must.
pub(super) async fn report_progress(ctx: &JobContext, watch: Watch<'_>, percent: &(dyn Fn() -> u8 + Sync)) -> JobError {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_TICK, PROGRESS_TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported_rows = 0;
    let mut last_save = tokio::time::Instant::now();
    let mut stop_asked = false;
    loop {
        ticks.tick().await;
        if !stop_asked && ctx.remaining() <= CHECKPOINT_LEAD {
            watch.asks.ask(Ask::SaveAndStop);
            stop_asked = true;
        } else if !watch.every.is_zero() && last_save.elapsed() >= watch.every {
            watch.asks.ask(Ask::Save);
            last_save = tokio::time::Instant::now();
        }
        if let Ok(snapshot) = watch.to_save.try_recv() {
            match save(ctx, snapshot, percent()).await {
                Ok(()) => continue,
                Err(stop) => return stop,
            }
        }
        let rows_now = watch.rows.load(Ordering::Relaxed);
        let reported = if rows_now == reported_rows {
            ctx.ensure_running()
        } else {
            reported_rows = rows_now;
            ctx.progress(percent(), format!("read {rows_now} rows")).await
        };
        if let Err(stop) = reported {
            return stop;
        }
    }
}
