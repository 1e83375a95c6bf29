//! Job inputs and results.

use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::AsyncRead;

/// The content type every upload is signed for (and sent with).
pub const UPLOAD_CONTENT_TYPE: &str = "application/octet-stream";

/// An object failure.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// No object has this key.
    #[error("object {0} not found")]
    NotFound(String),
    /// The store could not be reached or refused the call; try again later.
    #[error("object store unavailable: {0}")]
    Unavailable(String),
    /// The object is no longer the version a read was made against (its
    /// entity tag changed: it was replaced).
    #[error("object {0} changed")]
    Changed(String),
}

/// A stream over one object's bytes.
pub struct ObjectReader {
    /// Size in bytes when the store knows it.
    pub size: Option<u64>,
    /// The version read (S3's `ETag`), when the store says; `None` for a
    /// read from past the end.
    pub etag: Option<String>,
    /// The object's bytes, read as they arrive.
    pub body: Pin<Box<dyn AsyncRead + Send>>,
}

/// Job inputs (`inputs/…`) and results (`results/<job_id>/…`).
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// Writes `body` under `key` with `content_type`, replacing any object there.
    async fn put(&self, key: &str, body: Bytes, content_type: &str) -> Result<(), ObjectError>;

    /// Opens an object for streaming reads.
    async fn open(&self, key: &str) -> Result<ObjectReader, ObjectError>;

    /// Opens an object for streaming reads from byte `offset` on (a run
    /// resuming where a checkpoint left off): its `size` is the bytes from
    /// there to the end; an offset at or past the end reads nothing. With
    /// `if_match`, only that version ([`ObjectReader::etag`] of an earlier
    /// read) is read: another is [`ObjectError::Changed`].
    async fn open_from(&self, key: &str, offset: u64, if_match: Option<&str>) -> Result<ObjectReader, ObjectError>;

    /// A URL anyone holding it may GET the object with, for `ttl`.
    async fn presign_get(&self, key: &str, ttl: Duration) -> Result<String, ObjectError>;

    /// A URL anyone holding it may PUT exactly `bytes` bytes of
    /// `application/octet-stream` to `key` with, for `ttl` (both headers
    /// are signed, so S3 refuses another length).
    async fn presign_put(&self, key: &str, bytes: u64, ttl: Duration) -> Result<String, ObjectError>;
}

/// `reader` served at most `bytes_per_second`, as over a slow network (a
/// test's job then reads no faster than that, whatever the machine); 0
/// leaves it as it is.
pub fn throttled(reader: ObjectReader, bytes_per_second: u64) -> ObjectReader {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if bytes_per_second == 0 {
        return reader;
    }
    const PIECE: usize = 16 * 1024;
    let (mut writer, slow) = tokio::io::duplex(PIECE);
    let mut body = reader.body;
    tokio::spawn(async move {
        let mut piece = vec![0u8; PIECE];
        loop {
            let n = match body.read(&mut piece).await {
                Ok(0) | Err(_) => return, // the end (a failed read ends it short)
                Ok(n) => n,
            };
            tokio::time::sleep(Duration::from_secs_f64(n as f64 / bytes_per_second as f64)).await;
            if writer.write_all(&piece[..n]).await.is_err() {
                return; // the reader was dropped
            }
        }
    });
    ObjectReader {
        size: reader.size,
        etag: reader.etag,
        body: Box::pin(slow),
    }
}
