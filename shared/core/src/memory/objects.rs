//! [`MemoryObjectStore`]: objects in a map, in place of S3.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::ports::{ObjectError, ObjectReader, ObjectStore};

/// Objects in a map.
#[derive(Default)]
pub struct MemoryObjectStore {
    objects: Mutex<HashMap<String, (Bytes, String)>>,
}

impl MemoryObjectStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The bytes and content type stored under `key`.
    pub fn object(&self, key: &str) -> Option<(Bytes, String)> {
        self.objects.lock().unwrap().get(key).cloned()
    }

    /// Every stored key, sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.objects.lock().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    }
}

#[async_trait]
impl ObjectStore for MemoryObjectStore {
    async fn put(&self, key: &str, body: Bytes, content_type: &str) -> Result<(), ObjectError> {
        self.objects
            .lock()
            .unwrap()
            .insert(key.to_owned(), (body, content_type.to_owned()));
        Ok(())
    }

    async fn open(&self, key: &str) -> Result<ObjectReader, ObjectError> {
        let (body, _) = self.object(key).ok_or_else(|| ObjectError::NotFound(key.to_owned()))?;
        Ok(ObjectReader {
            size: Some(body.len() as u64),
            body: Box::pin(std::io::Cursor::new(body)),
        })
    }

    async fn presign_get(&self, key: &str, ttl: Duration) -> Result<String, ObjectError> {
        // Like S3, presigning does not look the object up.
        Ok(format!("memory://{key}?expires_in={}", ttl.as_secs()))
    }

    async fn presign_put(&self, key: &str, bytes: u64, ttl: Duration) -> Result<String, ObjectError> {
        Ok(format!("memory://{key}?put&bytes={bytes}&expires_in={}", ttl.as_secs()))
    }
}
