//! Connection secrets kept in memory for a while, so a warm function does not call Secrets
//! Manager on every webhook. A rotated secret reaches a warm function at the latest after the
//! time to live, or at once when a webhook fails to verify with the cached one (or a send is
//! refused for its credentials): the pipelines then ask for [`SecretStore::get_fresh_secrets`].
//! Fresh reads are rationed to one per connection per [`MIN_REFRESH_INTERVAL`], so a flood of
//! forged webhooks cannot turn into a flood of Secrets Manager calls that throttles the real ones.

use super::{SecretStore, StoreError};
use crate::domain::ConnectionSecrets;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// At most one read past the cache per connection in this interval.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(10);

type Key = (String, String);

pub struct CachedSecrets {
    inner: Arc<dyn SecretStore>,
    ttl: Duration,
    min_refresh: Duration,
    entries: Mutex<HashMap<Key, (Instant, ConnectionSecrets)>>,
    /// When each connection's secrets were last read past the cache on request.
    refreshed: Mutex<HashMap<Key, Instant>>,
}

impl CachedSecrets {
    pub fn new(inner: Arc<dyn SecretStore>, ttl: Duration) -> Self {
        Self::with_refresh_interval(inner, ttl, MIN_REFRESH_INTERVAL)
    }

    pub fn with_refresh_interval(
        inner: Arc<dyn SecretStore>,
        ttl: Duration,
        min_refresh: Duration,
    ) -> Self {
        CachedSecrets {
            inner,
            ttl,
            min_refresh,
            entries: Mutex::new(HashMap::new()),
            refreshed: Mutex::new(HashMap::new()),
        }
    }

    fn key(org_id: &str, connection_id: &str) -> Key {
        (org_id.to_string(), connection_id.to_string())
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<Key, (Instant, ConnectionSecrets)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn read_through(
        &self,
        org_id: &str,
        connection_id: &str,
    ) -> Result<Option<ConnectionSecrets>, StoreError> {
        let secrets = self.inner.get_secrets(org_id, connection_id).await?;
        self.remember(Self::key(org_id, connection_id), &secrets);
        Ok(secrets)
    }

    fn remember(&self, key: Key, secrets: &Option<ConnectionSecrets>) {
        match secrets {
            Some(s) => self.entries().insert(key, (Instant::now(), s.clone())),
            None => self.entries().remove(&key),
        };
    }
}

#[async_trait]
impl SecretStore for CachedSecrets {
    async fn put_secrets(
        &self,
        org_id: &str,
        connection_id: &str,
        secrets: &ConnectionSecrets,
    ) -> Result<(), StoreError> {
        self.inner
            .put_secrets(org_id, connection_id, secrets)
            .await?;
        self.remember(Self::key(org_id, connection_id), &Some(secrets.clone()));
        Ok(())
    }

    async fn get_secrets(
        &self,
        org_id: &str,
        connection_id: &str,
    ) -> Result<Option<ConnectionSecrets>, StoreError> {
        let key = Self::key(org_id, connection_id);
        if let Some((at, secrets)) = self.entries().get(&key)
            && at.elapsed() < self.ttl
        {
            return Ok(Some(secrets.clone()));
        }
        self.read_through(org_id, connection_id).await
    }

    /// The secrets as stored now; but when a read past the cache was already asked for this
    /// connection less than the refresh interval ago, the cached ones (that read's).
    async fn get_fresh_secrets(
        &self,
        org_id: &str,
        connection_id: &str,
    ) -> Result<Option<ConnectionSecrets>, StoreError> {
        let key = Self::key(org_id, connection_id);
        let rationed = {
            let mut refreshed = self.refreshed.lock().unwrap_or_else(|p| p.into_inner());
            match refreshed.get(&key) {
                Some(at) if at.elapsed() < self.min_refresh => true,
                _ => {
                    refreshed.insert(key.clone(), Instant::now());
                    false
                }
            }
        };
        if rationed && let Some((_, secrets)) = self.entries().get(&key) {
            return Ok(Some(secrets.clone()));
        }
        self.read_through(org_id, connection_id).await
    }

    async fn delete_secrets(&self, org_id: &str, connection_id: &str) -> Result<(), StoreError> {
        self.inner.delete_secrets(org_id, connection_id).await?;
        self.remember(Self::key(org_id, connection_id), &None);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stores::sqlite::SqliteStore;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// The embedded store, counting reads.
    struct Counting {
        store: SqliteStore,
        reads: AtomicUsize,
    }

    #[async_trait]
    impl SecretStore for Counting {
        async fn put_secrets(
            &self,
            o: &str,
            c: &str,
            s: &ConnectionSecrets,
        ) -> Result<(), StoreError> {
            self.store.put_secrets(o, c, s).await
        }
        async fn get_secrets(
            &self,
            o: &str,
            c: &str,
        ) -> Result<Option<ConnectionSecrets>, StoreError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            self.store.get_secrets(o, c).await
        }
        async fn delete_secrets(&self, o: &str, c: &str) -> Result<(), StoreError> {
            self.store.delete_secrets(o, c).await
        }
    }

    fn token(value: &str) -> ConnectionSecrets {
        let mut s = ConnectionSecrets::default();
        s.insert("authToken", value.into());
        s
    }

    #[tokio::test]
    async fn reads_once_per_ttl_and_refreshes_on_demand() {
        let dir = tempfile::tempdir().unwrap();
        let inner = Arc::new(Counting {
            store: SqliteStore::open(dir.path()).unwrap(),
            reads: AtomicUsize::new(0),
        });
        inner.put_secrets("O", "c", &token("old")).await.unwrap();
        let cache = CachedSecrets::with_refresh_interval(
            inner.clone(),
            Duration::from_secs(60),
            Duration::ZERO,
        );
        for _ in 0..3 {
            let s = cache.get_secrets("O", "c").await.unwrap().unwrap();
            assert_eq!(s.expose("authToken"), Some("old"));
        }
        assert_eq!(inner.reads.load(Ordering::SeqCst), 1);

        // Rotated behind the cache's back: served stale until a fresh read is asked for.
        inner.put_secrets("O", "c", &token("new")).await.unwrap();
        assert_eq!(
            cache
                .get_secrets("O", "c")
                .await
                .unwrap()
                .unwrap()
                .expose("authToken"),
            Some("old")
        );
        assert_eq!(
            cache
                .get_fresh_secrets("O", "c")
                .await
                .unwrap()
                .unwrap()
                .expose("authToken"),
            Some("new")
        );
        assert_eq!(
            cache
                .get_secrets("O", "c")
                .await
                .unwrap()
                .unwrap()
                .expose("authToken"),
            Some("new")
        );

        cache.delete_secrets("O", "c").await.unwrap();
        assert!(cache.get_secrets("O", "c").await.unwrap().is_none());

        let expiring =
            CachedSecrets::with_refresh_interval(inner.clone(), Duration::ZERO, Duration::ZERO);
        let before = inner.reads.load(Ordering::SeqCst);
        expiring.get_secrets("O", "missing").await.unwrap();
        expiring.get_secrets("O", "missing").await.unwrap();
        assert_eq!(inner.reads.load(Ordering::SeqCst), before + 2);
    }

    #[tokio::test]
    async fn fresh_reads_are_rationed_per_connection() {
        let dir = tempfile::tempdir().unwrap();
        let inner = Arc::new(Counting {
            store: SqliteStore::open(dir.path()).unwrap(),
            reads: AtomicUsize::new(0),
        });
        inner.put_secrets("O", "a", &token("a")).await.unwrap();
        inner.put_secrets("O", "b", &token("b")).await.unwrap();
        let cache = CachedSecrets::new(inner.clone(), Duration::from_secs(300));
        cache.get_secrets("O", "a").await.unwrap();
        cache.get_secrets("O", "b").await.unwrap();
        // A hundred forged webhooks ask for fresh secrets: one read each, the rest rationed.
        for _ in 0..100 {
            cache.get_fresh_secrets("O", "a").await.unwrap();
            cache.get_fresh_secrets("O", "b").await.unwrap();
        }
        assert_eq!(inner.reads.load(Ordering::SeqCst), 4);
    }
}
