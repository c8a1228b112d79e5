//! The PostgreSQL backend's plumbing: its own tokio runtime (so no actix event loop owns the
//! pool's connections) and statement caching per pooled connection.

use std::future::Future;

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{StoreError, StoreFuture, StoreResult};

/// The store's runtime; shut down in the background when the last handle goes, so dropping
/// the store inside an async context never panics.
pub struct Runtime(Option<tokio::runtime::Runtime>);

impl Runtime {
    pub(super) fn new() -> StoreResult<Self> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("store-pg")
            .enable_all()
            .build()
            .map(|rt| Self(Some(rt)))
            .map_err(|e| StoreError(format!("cannot start the store runtime: {e}")))
    }

    /// Runs `fut` on the store's runtime; the returned future may be awaited from any runtime.
    pub fn spawn<T: Send + 'static>(
        &self,
        fut: impl Future<Output = StoreResult<T>> + Send + 'static,
    ) -> StoreFuture<T> {
        let handle = self.0.as_ref().map(|rt| rt.spawn(fut));
        Box::pin(async move {
            match handle {
                Some(h) => h
                    .await
                    .map_err(|e| StoreError(format!("store task failed: {e}")))?,
                None => Err(StoreError("the store runtime has stopped".into())),
            }
        })
    }

    /// A handle for spawning background tasks (the cluster's listener and heartbeat).
    pub fn handle(&self) -> Option<tokio::runtime::Handle> {
        self.0.as_ref().map(|rt| rt.handle().clone())
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Queries through each connection's statement cache: a statement is parsed once per pooled
/// connection, then every call is one round trip (tokio-postgres would prepare a `&str` query
/// anew on every call).
pub trait Cached: GenericClient + Sync {
    fn cquery<'a>(
        &'a self,
        sql: &'a str,
        params: &'a [&'a (dyn tokio_postgres::types::ToSql + Sync)],
    ) -> impl Future<Output = Result<Vec<Row>, tokio_postgres::Error>> + Send + 'a {
        async move {
            let stmt = self.prepare_cached(sql).await?;
            self.query(&stmt, params).await
        }
    }

    fn cquery_opt<'a>(
        &'a self,
        sql: &'a str,
        params: &'a [&'a (dyn tokio_postgres::types::ToSql + Sync)],
    ) -> impl Future<Output = Result<Option<Row>, tokio_postgres::Error>> + Send + 'a {
        async move {
            let stmt = self.prepare_cached(sql).await?;
            self.query_opt(&stmt, params).await
        }
    }

    fn cquery_one<'a>(
        &'a self,
        sql: &'a str,
        params: &'a [&'a (dyn tokio_postgres::types::ToSql + Sync)],
    ) -> impl Future<Output = Result<Row, tokio_postgres::Error>> + Send + 'a {
        async move {
            let stmt = self.prepare_cached(sql).await?;
            self.query_one(&stmt, params).await
        }
    }

    fn cexecute<'a>(
        &'a self,
        sql: &'a str,
        params: &'a [&'a (dyn tokio_postgres::types::ToSql + Sync)],
    ) -> impl Future<Output = Result<u64, tokio_postgres::Error>> + Send + 'a {
        async move {
            let stmt = self.prepare_cached(sql).await?;
            self.execute(&stmt, params).await
        }
    }
}

impl<T: GenericClient + Sync> Cached for T {}
