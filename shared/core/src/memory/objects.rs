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
    /// Body, content type, and the version (a count of puts) per key.
    objects: Mutex<HashMap<String, (Bytes, String, u64)>>,
    puts: std::sync::atomic::AtomicU64,
    /// Bytes per second reads are served at; 0: at once.
    read_rate: std::sync::atomic::AtomicU64,
}

impl MemoryObjectStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The bytes and content type stored under `key`.
    pub fn object(&self, key: &str) -> Option<(Bytes, String)> {
        self.objects
            .lock()
            .unwrap()
            .get(key)
            .map(|(body, content_type, _)| (body.clone(), content_type.clone()))
    }

    /// Serves every read from now on at `bytes_per_second` (0: at once),
    /// as a slow network would: a test's job then reads no faster than
    /// that, whatever the machine.
    pub fn throttle_reads(&self, bytes_per_second: u64) {
        self.read_rate
            .store(bytes_per_second, std::sync::atomic::Ordering::SeqCst);
    }

    /// A reader of `body` (of version `etag`), at the read rate.
    fn reader(&self, body: Bytes, etag: String) -> ObjectReader {
        let rate = self.read_rate.load(std::sync::atomic::Ordering::SeqCst);
        let reader = ObjectReader {
            size: Some(body.len() as u64),
            etag: Some(etag),
            body: Box::pin(std::io::Cursor::new(body)),
        };
        crate::ports::throttled(reader, rate)
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
        let version = self.puts.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        self.objects
            .lock()
            .unwrap()
            .insert(key.to_owned(), (body, content_type.to_owned(), version));
        Ok(())
    }

    async fn open(&self, key: &str) -> Result<ObjectReader, ObjectError> {
        self.open_from(key, 0, None).await
    }

    async fn open_from(&self, key: &str, offset: u64, if_match: Option<&str>) -> Result<ObjectReader, ObjectError> {
        let (body, _, version) = self
            .objects
            .lock()
            .unwrap()
            .get(key)
            .cloned()
            .ok_or_else(|| ObjectError::NotFound(key.to_owned()))?;
        // As S3's, quoted; every put makes a new one.
        let etag = format!("\"v{version}\"");
        if if_match.is_some_and(|expected| expected != etag) {
            return Err(ObjectError::Changed(key.to_owned()));
        }
        let rest = body.slice(usize::try_from(offset).unwrap_or(usize::MAX).min(body.len())..);
        Ok(self.reader(rest, etag))
    }

    async fn presign_get(&self, key: &str, ttl: Duration) -> Result<String, ObjectError> {
        // Like S3, presigning does not look the object up.
        Ok(format!("memory://{key}?expires_in={}", ttl.as_secs()))
    }

    async fn presign_put(&self, key: &str, bytes: u64, ttl: Duration) -> Result<String, ObjectError> {
        Ok(format!("memory://{key}?put&bytes={bytes}&expires_in={}", ttl.as_secs()))
    }
}
