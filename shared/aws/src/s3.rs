//! [`ObjectStore`] on one S3 bucket: streaming reads, puts, presigned GETs.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;

use super::describe;
use longrun_core::ports::{ObjectError, ObjectReader, ObjectStore, UPLOAD_CONTENT_TYPE};

/// The jobs bucket as an [`ObjectStore`].
pub struct S3ObjectStore {
    client: aws_sdk_s3::Client,
    bucket: String,
    /// Bytes per second reads are served at (0: as they come), for tests
    /// of slow reads (`FAULT_INJECTION`'s `SlowReads`).
    read_rate: u64,
}

impl S3ObjectStore {
    /// The store on `bucket`, through `client`.
    pub fn new(client: aws_sdk_s3::Client, bucket: &str) -> Self {
        S3ObjectStore {
            client,
            bucket: bucket.to_owned(),
            read_rate: 0,
        }
    }

    /// The store with every read served at most `bytes_per_second` (0: as
    /// fast as S3 sends).
    pub fn with_read_rate(mut self, bytes_per_second: u64) -> Self {
        self.read_rate = bytes_per_second;
        self
    }
}

#[async_trait]
impl ObjectStore for S3ObjectStore {
    async fn put(&self, key: &str, body: Bytes, content_type: &str) -> Result<(), ObjectError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| ObjectError::Unavailable(describe(&e)))?;
        Ok(())
    }

    async fn open(&self, key: &str) -> Result<ObjectReader, ObjectError> {
        self.open_from(key, 0, None).await
    }

    async fn open_from(&self, key: &str, offset: u64, if_match: Option<&str>) -> Result<ObjectReader, ObjectError> {
        let result = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_range((offset > 0).then(|| format!("bytes={offset}-")))
            .set_if_match(if_match.map(str::to_owned))
            .send()
            .await;
        let reader = match result {
            Ok(output) => ObjectReader {
                size: output.content_length().and_then(|n| u64::try_from(n).ok()),
                etag: output.e_tag().map(str::to_owned),
                body: Box::pin(output.body.into_async_read()),
            },
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                return Err(ObjectError::NotFound(key.to_owned()))
            }
            Err(err) => match err.raw_response().map(|r| r.status().as_u16()) {
                // Not the version asked for: it was replaced.
                Some(412) => return Err(ObjectError::Changed(key.to_owned())),
                // The offset is at or past the end, so nothing is left to read.
                Some(416) => ObjectReader {
                    size: Some(0),
                    etag: None,
                    body: Box::pin(tokio::io::empty()),
                },
                _ => return Err(ObjectError::Unavailable(describe(&err))),
            },
        };
        Ok(longrun_core::ports::throttled(reader, self.read_rate))
    }

    async fn presign_put(&self, key: &str, bytes: u64, ttl: Duration) -> Result<String, ObjectError> {
        let presigning = PresigningConfig::expires_in(ttl).map_err(|e| ObjectError::Unavailable(e.to_string()))?;
        let length = i64::try_from(bytes).map_err(|e| ObjectError::Unavailable(e.to_string()))?;
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(UPLOAD_CONTENT_TYPE)
            .content_length(length)
            .presigned(presigning)
            .await
            .map_err(|e| ObjectError::Unavailable(describe(&e)))?;
        Ok(request.uri().to_owned())
    }

    async fn presign_get(&self, key: &str, ttl: Duration) -> Result<String, ObjectError> {
        let presigning = PresigningConfig::expires_in(ttl).map_err(|e| ObjectError::Unavailable(e.to_string()))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(presigning)
            .await
            .map_err(|e| ObjectError::Unavailable(describe(&e)))?;
        Ok(request.uri().to_owned())
    }
}
