//! WebSocket connections and the workflows each follows (the subscriptions), kept so that a
//! change of a workflow reaches its followers with one Query.

use super::Fut;
use crate::domain::realtime::Connection;

/// The connections API Gateway holds open, as `ws-connect` records them.
pub trait Connections: Send + Sync {
    /// Records a connection opened by an authenticated caller.
    fn add_connection<'a>(&'a self, connection: &'a Connection) -> Fut<'a, ()>;
    /// A connection, if it is recorded and has not expired by `now`.
    fn get_connection<'a>(
        &'a self,
        id: &'a str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Fut<'a, Option<Connection>>;
    /// Forgets a connection and its subscriptions (a repeat finds nothing and succeeds).
    fn remove_connection<'a>(&'a self, id: &'a str) -> Fut<'a, ()>;
    /// `connection` follows `workflow_id` until it expires: `Ok(false)` when it already holds
    /// `max` subscriptions (a repeat of one it holds is `Ok(true)` and changes nothing) or is no
    /// longer recorded.
    fn subscribe<'a>(
        &'a self,
        connection: &'a Connection,
        workflow_id: &'a str,
        max: u64,
    ) -> Fut<'a, bool>;
    /// `connection_id` stops following `workflow_id`; whether it did.
    fn unsubscribe<'a>(&'a self, connection_id: &'a str, workflow_id: &'a str) -> Fut<'a, bool>;
    /// The connections of `user_id` and the subscriptions of `connection_id`, as counted now
    /// (expired ones left out).
    fn connection_stats<'a>(
        &'a self,
        user_id: &'a str,
        connection_id: &'a str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Fut<'a, (u64, u64)>;
    /// The connections that follow `workflow_id` (one Query), expired ones left out.
    fn subscribers<'a>(
        &'a self,
        workflow_id: &'a str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Fut<'a, Vec<String>>;
    /// The live connections of `user_id` (one Query of the user's index partition; eventually
    /// consistent).
    fn user_connections<'a>(
        &'a self,
        user_id: &'a str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Fut<'a, Vec<String>>;
}

/// Why a message did not reach a connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostError {
    /// The connection is closed (API Gateway's 410 `GoneException`): forget it.
    #[error("connection gone")]
    Gone,
    /// Too many requests (429 `LimitExceededException`): try again later.
    #[error("throttled")]
    Throttled,
    /// Anything else (network, 5xx, a frame refused).
    #[error("post failed: {0}")]
    Failed(String),
}

/// Sends frames to WebSocket connections (API Gateway's Management API `PostToConnection`).
pub trait Poster: Send + Sync {
    fn post<'a>(
        &'a self,
        connection_id: &'a str,
        frame: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), PostError>> + Send + 'a>>;
}

impl<P: Poster + ?Sized> Poster for std::sync::Arc<P> {
    fn post<'a>(
        &'a self,
        connection_id: &'a str,
        frame: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), PostError>> + Send + 'a>>
    {
        (**self).post(connection_id, frame)
    }
}
