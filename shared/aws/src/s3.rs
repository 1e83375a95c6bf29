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
}

impl S3ObjectStore {
    /// The store on `bucket`, through `client`.
    pub fn new(client: aws_sdk_s3::Client, bucket: &str) -> Self {
        S3ObjectStore {
            client,
            bucket: bucket.to_owned(),
        }
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
        let result = self.client.get_object().bucket(&self.bucket).key(key).send().await;
        match result {
            Ok(output) => Ok(ObjectReader {
                size: output.content_length().and_then(|n| u64::try_from(n).ok()),
                body: Box::pin(output.body.into_async_read()),
            }),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                Err(ObjectError::NotFound(key.to_owned()))
            }
            Err(err) => Err(ObjectError::Unavailable(describe(&err))),
        }
    }

    async fn open_from(&self, key: &str, offset: u64) -> Result<ObjectReader, ObjectError> {
        if offset == 0 {
            return self.open(key).await;
        }
        let range = format!("bytes={offset}-");
        let result = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(range)
            .send()
            .await;
        match result {
            Ok(output) => Ok(ObjectReader {
                size: output.content_length().and_then(|n| u64::try_from(n).ok()),
                body: Box::pin(output.body.into_async_read()),
            }),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                Err(ObjectError::NotFound(key.to_owned()))
            }
            // 416: the offset is at or past the end, so nothing is left to read.
            Err(err) if err.raw_response().is_some_and(|r| r.status().as_u16() == 416) => Ok(ObjectReader {
                size: Some(0),
                body: Box::pin(tokio::io::empty()),
            }),
            Err(err) => Err(ObjectError::Unavailable(describe(&err))),
        }
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
