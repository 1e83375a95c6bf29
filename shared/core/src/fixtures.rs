//! Support for unit tests of the functions: a complete configuration over
//! made-up resource names, built through the same parser the functions use,
//! and a freshly submitted job record.

use std::collections::BTreeMap;

use crate::config::Config;

/// A valid configuration (queues `fast`, `slow`, `urgent` for high and
/// `bulk` for low priority, thumbnails routed to `slow`, the `sleep` job
/// enabled), with `overrides` applied on top.
pub fn config(overrides: &[(&str, &str)]) -> Config {
    let mut vars: BTreeMap<String, String> = [
        ("JOBS_TABLE", "jobs"),
        ("JOBS_BUCKET", "bucket"),
        (
            "QUEUE_URLS",
            "fast=http://sqs.local/1/longrun-fast,slow=http://sqs.local/1/longrun-slow,\
             urgent=http://sqs.local/1/longrun-urgent,bulk=http://sqs.local/1/longrun-bulk",
        ),
        ("JOB_QUEUES", "thumbnail=slow"),
        ("PRIORITY_QUEUES", "high=urgent,low=bulk"),
        ("ENABLE_SLEEP_JOB", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (k, v) in overrides {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    Config::from_lookup(move |name| vars.get(name).cloned()).expect("test configuration is valid")
}

/// A freshly submitted job of `owner` (queue `fast`, 3 attempts, 1 h
/// timeout), as submit would write it now.
pub fn queued_job(owner: &str, job_type: &str, input: serde_json::Value) -> crate::JobRecord {
    queued_job_at(owner, job_type, input, crate::time::now_ms())
}

/// [`queued_job`] as submitted at `now_ms`: due one minute (the enqueue
/// grace) later, its record living an hour.
pub fn queued_job_at(owner: &str, job_type: &str, input: serde_json::Value, now_ms: i64) -> crate::JobRecord {
    crate::JobRecord::new_queued(
        crate::record::NewJob {
            id: crate::JobId::random(),
            owner: owner.into(),
            job_type: job_type.into(),
            queue: "fast".into(),
            priority: crate::record::Priority::Normal,
            input,
            request_hash: "request-hash".into(),
            max_attempts: 3,
            timeout_seconds: 3600,
            delay_seconds: 0,
            callback: None,
            chain: None,
            limit: None,
            schedule: None,
            run_at: None,
        },
        now_ms,
        3600,
        60_000,
    )
}

/// A PNG a few dozen bytes long whose header declares an 8-bit RGBA image
/// of `width` × `height`; its pixel data is junk, so decoding it could only
/// fail. For tests of what is refused from an image's header alone.
pub fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        out.extend((data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend(kind);
        out.extend(data);
        let crc = crc32(&out[start..]);
        out.extend(crc.to_be_bytes());
    };
    let mut header = Vec::new();
    header.extend(width.to_be_bytes());
    header.extend(height.to_be_bytes());
    header.extend([8, 6, 0, 0, 0]);
    chunk(b"IHDR", &header);
    chunk(b"IDAT", &[0x78, 0x9c, 0x01, 0x02, 0x03]);
    chunk(b"IEND", &[]);
    out
}

/// CRC-32 (ISO-HDLC), as PNG chunks carry it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
