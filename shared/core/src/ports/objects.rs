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
/// leaves it as it is. A read error comes through as it is.
pub fn throttled(reader: ObjectReader, bytes_per_second: u64) -> ObjectReader {
    if bytes_per_second == 0 {
        return reader;
    }
    ObjectReader {
        size: reader.size,
        etag: reader.etag,
        body: Box::pin(Throttled {
            inner: reader.body,
            rate: bytes_per_second,
            wait: None,
            piece: vec![0; THROTTLED_PIECE],
        }),
    }
}

/// Bytes a throttled read hands on at a time.
const THROTTLED_PIECE: usize = 16 * 1024;

/// A reader that, after each piece it hands on, waits as long as that piece
/// takes at its rate.
struct Throttled {
    inner: Pin<Box<dyn AsyncRead + Send>>,
    rate: u64,
    wait: Option<Pin<Box<tokio::time::Sleep>>>,
    piece: Vec<u8>,
}

impl AsyncRead for Throttled {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::future::Future;
        use std::task::Poll;
        let this = self.get_mut();
        if let Some(wait) = this.wait.as_mut() {
            if wait.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.wait = None;
        }
        let room = buf.remaining().min(this.piece.len());
        let mut piece = tokio::io::ReadBuf::new(&mut this.piece[..room]);
        match this.inner.as_mut().poll_read(cx, &mut piece) {
            Poll::Ready(Ok(())) => {
                let n = piece.filled().len();
                buf.put_slice(piece.filled());
                if n > 0 {
                    let time = Duration::from_secs_f64(n as f64 / this.rate as f64);
                    this.wait = Some(Box::pin(tokio::time::sleep(time)));
                }
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

/// `reader` checked against its size: a body that ends before `size` bytes
/// fails with `UnexpectedEof` (a connection cut short must not read as the
/// whole object), one that runs past it with `InvalidData`. Without a size
/// it is left as it is. [`JobContext::open_input_from`] reads every input
/// through it.
///
/// [`JobContext::open_input_from`]: crate::job_types::JobContext::open_input_from
pub fn exact_length(reader: ObjectReader) -> ObjectReader {
    let Some(size) = reader.size else {
        return reader;
    };
    ObjectReader {
        size: reader.size,
        etag: reader.etag,
        body: Box::pin(ExactLength {
            inner: reader.body,
            size,
            read: 0,
        }),
    }
}

/// A reader that counts what it hands on against the size it was promised.
struct ExactLength {
    inner: Pin<Box<dyn AsyncRead + Send>>,
    size: u64,
    read: u64,
}

impl AsyncRead for ExactLength {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        let this = self.get_mut();
        let before = buf.filled().len();
        match this.inner.as_mut().poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let n = (buf.filled().len() - before) as u64;
                this.read += n;
                let (read, size) = (this.read, this.size);
                if n == 0 && buf.remaining() > 0 && read < size {
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("the object ended after {read} of {size} bytes"),
                    )));
                }
                if read > size {
                    // An error hands on nothing: this read's bytes are dropped.
                    buf.set_filled(before);
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("the object ran past its {size} bytes"),
                    )));
                }
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn reader(body: impl AsyncRead + Send + 'static) -> ObjectReader {
        ObjectReader {
            size: None,
            etag: None,
            body: Box::pin(body),
        }
    }

    #[tokio::test]
    async fn a_body_is_read_whole_only_when_it_is_as_long_as_its_size() {
        type Case<'a> = (&'a str, &'a [u8], Option<u64>, Result<usize, std::io::ErrorKind>);
        let cases: [Case; 5] = [
            ("exactly its size", b"abcdef", Some(6), Ok(6)),
            ("empty and said so", b"", Some(0), Ok(0)),
            ("cut short", b"abc", Some(6), Err(std::io::ErrorKind::UnexpectedEof)),
            (
                "longer than said",
                b"abcdefgh",
                Some(6),
                Err(std::io::ErrorKind::InvalidData),
            ),
            ("no size to hold it to", b"abc", None, Ok(3)),
        ];
        for (case, bytes, size, expected) in cases {
            let mut checked = exact_length(ObjectReader {
                size,
                ..reader(std::io::Cursor::new(bytes.to_vec()))
            });
            let mut out = Vec::new();
            let got = checked.body.read_to_end(&mut out).await.map_err(|e| e.kind());
            assert_eq!(got, expected, "{case}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttled_read_keeps_its_rate_its_bytes_and_its_errors() {
        let body: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let started = tokio::time::Instant::now();
        let mut read = Vec::new();
        throttled(reader(std::io::Cursor::new(body.clone())), 50_000)
            .body
            .read_to_end(&mut read)
            .await
            .unwrap();
        assert_eq!(read, body);
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(1_600), "100 kB at 50 kB/s: {took:?}");

        let failing = tokio::io::AsyncReadExt::chain(std::io::Cursor::new(vec![1u8; 1_000]), failing_reader());
        let mut read = Vec::new();
        let err = throttled(reader(failing), 50_000)
            .body
            .read_to_end(&mut read)
            .await
            .expect_err("the error comes through, not an early end");
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
        assert_eq!(read.len(), 1_000);
    }

    /// A reader whose every read fails, as a body cut off mid-stream.
    fn failing_reader() -> impl AsyncRead + Send + Unpin {
        struct Failing;
        impl AsyncRead for Failing {
            fn poll_read(
                self: Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
                _: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Err(std::io::ErrorKind::ConnectionReset.into()))
            }
        }
        Failing
    }
}
