//! Use cases of the WebSocket API (`ws-connect`): opening a connection for an authenticated
//! caller, a client's commands on it, and closing it. Every command is answered on the same
//! connection, errors included: a bad message never closes a connection.

use crate::app::AppError;
use crate::app::workflows::visible;
use crate::domain::Principal;
use crate::domain::principal::Scope;
use crate::domain::realtime::{self, Command, Connection, MAX_SUBSCRIPTIONS, Reply};
use crate::ports::{Connections, StoreError, Workflows};
use chrono::{DateTime, Utc};

/// Records the connection `connection_id` that `principal` opens (an API key needs
/// `workflows:read`: what a connection carries is workflows' changes).
pub async fn connect(
    store: &(impl Connections + ?Sized),
    principal: &Principal,
    connection_id: &str,
    now: DateTime<Utc>,
) -> Result<Connection, AppError> {
    if !principal.has(Scope::WorkflowsRead) {
        return Err(AppError::Forbidden(
            "this API key lacks the workflows:read scope",
        ));
    }
    let connection = Connection::open(connection_id, principal, now);
    store.add_connection(&connection).await?;
    Ok(connection)
}

/// Forgets a closed connection and its subscriptions.
pub async fn disconnect(
    store: &(impl Connections + ?Sized),
    connection_id: &str,
) -> Result<(), AppError> {
    Ok(store.remove_connection(connection_id).await?)
}

/// Carries out the client's message `body` on `connection_id` and says what came of it.
pub async fn command(
    store: &(impl Workflows + Connections + ?Sized),
    connection_id: &str,
    body: &str,
    now: DateTime<Utc>,
) -> Reply {
    let command = match realtime::parse(body) {
        Ok(c) => c,
        Err(reply) => return reply,
    };
    let connection = match store.get_connection(connection_id, now).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return Reply::error(
                "unauthorized",
                "this connection is not open (or has expired): connect again",
            );
        }
        Err(e) => return unavailable(e),
    };
    match command {
        Command::Ping => Reply::Pong { timestamp: now },
        Command::GetStats => {
            match store
                .connection_stats(&connection.user_id, &connection.id, now)
                .await
            {
                Ok((connections, subscriptions)) => Reply::Stats {
                    connections,
                    subscriptions,
                },
                Err(e) => unavailable(e),
            }
        }
        Command::SubscribeWorkflow { workflow_id } => {
            let workflow = match store.get_workflow(&workflow_id).await {
                Ok(w) => w,
                Err(e) => return unavailable(e),
            };
            // A workflow the caller may not read is as missing as one that does not exist.
            if visible(workflow, &connection.principal()).is_err() {
                return Reply::error("not_found", "no such workflow");
            }
            match store
                .subscribe(&connection, &workflow_id, MAX_SUBSCRIPTIONS)
                .await
            {
                Ok(true) => Reply::Subscribed { workflow_id },
                Ok(false) => Reply::error(
                    "too_many_subscriptions",
                    format!(
                        "a connection follows at most {MAX_SUBSCRIPTIONS} workflows: unsubscribe from one first"
                    ),
                ),
                Err(e) => unavailable(e),
            }
        }
        Command::UnsubscribeWorkflow { workflow_id } => {
            match store.unsubscribe(&connection.id, &workflow_id).await {
                // Not following it is the state asked for: the answer is the same.
                Ok(_) => Reply::Unsubscribed { workflow_id },
                Err(e) => unavailable(e),
            }
        }
    }
}

fn unavailable(e: StoreError) -> Reply {
    tracing::warn!(error = %e, "a WebSocket command could not reach the store");
    Reply::error(
        "unavailable",
        "the service is briefly unavailable: send the command again",
    )
}
