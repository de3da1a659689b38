//! Real-time over WebSockets: a client's connection, the commands it sends on it and the
//! replies it gets on the same connection (the specification's names: `subscribe_workflow`,
//! `unsubscribe_workflow`, `ping`, `get_stats`).

use super::ids;
use super::principal::{Principal, Role, Scope};
use chrono::{DateTime, Duration, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// API Gateway closes a WebSocket connection after 2 hours at most: a connection's items expire
/// with it (TTL), whether or not `$disconnect` came.
pub fn connection_lifetime() -> Duration {
    Duration::hours(2)
}

/// Workflows one connection may follow at once.
pub const MAX_SUBSCRIPTIONS: u64 = 100;

/// The largest command read (API Gateway takes frames up to 128 KB; a command is a few dozen
/// bytes).
pub const MAX_COMMAND_BYTES: usize = 4096;

/// An open WebSocket connection and who opened it (as authenticated at `$connect`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    /// API Gateway's `connectionId`.
    pub id: String,
    pub user_id: String,
    pub role: Role,
    /// `Some` when an API key opened it: the key's scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<Scope>>,
    pub connected_at: DateTime<Utc>,
    /// When API Gateway will have closed it at the latest (the items' TTL).
    pub expires_at: DateTime<Utc>,
}

impl Connection {
    /// The connection `id` that `principal` opens at `now`.
    pub fn open(id: &str, principal: &Principal, now: DateTime<Utc>) -> Connection {
        Connection {
            id: id.to_string(),
            user_id: principal.user_id.clone(),
            role: principal.role,
            scopes: principal.scopes.clone(),
            connected_at: now,
            // Whole seconds, as the TTL attribute keeps it.
            expires_at: (now + connection_lifetime()).trunc_subsecs(0),
        }
    }

    /// Who sends on this connection, for access checks.
    pub fn principal(&self) -> Principal {
        let mut p = Principal::user(self.user_id.clone(), self.role);
        p.scopes = self.scopes.clone();
        p
    }
}

/// What a client sends on its connection: `{"action": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Command {
    /// Receive the changes of a workflow the caller may read.
    SubscribeWorkflow { workflow_id: String },
    /// Stop receiving them.
    UnsubscribeWorkflow { workflow_id: String },
    /// Answered with `pong`.
    Ping,
    /// The caller's open connections and this connection's subscriptions.
    GetStats,
}

/// What a client receives in answer to a command: `{"type": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    /// The connection now receives the workflow's changes.
    Subscribed { workflow_id: String },
    /// The connection no longer receives the workflow's changes (also when it did not).
    Unsubscribed { workflow_id: String },
    /// Answer to `ping`.
    Pong {
        /// The server's time.
        timestamp: DateTime<Utc>,
    },
    /// Answer to `get_stats`.
    Stats {
        /// The caller's open connections (this one included).
        connections: u64,
        /// The workflows this connection follows.
        subscriptions: u64,
    },
    /// The command was not carried out; the connection stays open.
    Error {
        /// `bad_request`, `unknown_action`, `not_found`, `too_many_subscriptions`,
        /// `unauthorized`, `unavailable`.
        code: String,
        message: String,
    },
}

impl Reply {
    pub fn error(code: &str, message: impl Into<String>) -> Reply {
        Reply::Error {
            code: code.to_string(),
            message: message.into(),
        }
    }
}

const ACTIONS: [&str; 4] = [
    "subscribe_workflow",
    "unsubscribe_workflow",
    "ping",
    "get_stats",
];

/// Reads a client's message: a command, or the error reply that explains why it is not one.
pub fn parse(body: &str) -> Result<Command, Reply> {
    if body.len() > MAX_COMMAND_BYTES {
        return Err(Reply::error(
            "bad_request",
            format!("a command is at most {MAX_COMMAND_BYTES} bytes"),
        ));
    }
    let value: serde_json::Value = serde_json::from_str(body)
        .map_err(|_| Reply::error("bad_request", "a command is a JSON object"))?;
    let action = match value.get("action") {
        Some(serde_json::Value::String(a)) => a.clone(),
        _ => {
            return Err(Reply::error(
                "bad_request",
                "a command names its `action` (a string)",
            ));
        }
    };
    if !ACTIONS.contains(&action.as_str()) {
        return Err(Reply::error(
            "unknown_action",
            format!("unknown action; one of: {}", ACTIONS.join(", ")),
        ));
    }
    let command: Command = serde_json::from_value(value).map_err(|e| {
        Reply::error(
            "bad_request",
            format!(
                "{action}: {}",
                e.to_string().split(" at line").next().unwrap_or("")
            ),
        )
    })?;
    match &command {
        Command::SubscribeWorkflow { workflow_id }
        | Command::UnsubscribeWorkflow { workflow_id }
            if !ids::is_valid_id(workflow_id) =>
        {
            Err(Reply::error("not_found", "no such workflow"))
        }
        _ => Ok(command),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn commands_parse_by_their_action() {
        let id = ids::new_id();
        assert_eq!(
            parse(&json!({"action": "subscribe_workflow", "workflow_id": id}).to_string()),
            Ok(Command::SubscribeWorkflow {
                workflow_id: id.clone()
            })
        );
        assert_eq!(
            parse(&json!({"action": "unsubscribe_workflow", "workflow_id": id}).to_string()),
            Ok(Command::UnsubscribeWorkflow { workflow_id: id })
        );
        assert_eq!(parse(r#"{"action":"ping"}"#), Ok(Command::Ping));
        assert_eq!(parse(r#"{"action":"get_stats"}"#), Ok(Command::GetStats));
    }

    fn code(r: Result<Command, Reply>) -> String {
        match r {
            Err(Reply::Error { code, .. }) => code,
            other => panic!("not an error reply: {other:?}"),
        }
    }

    #[test]
    fn anything_else_is_an_error_reply_naming_why() {
        for body in [
            "",
            "ping",
            "[]",
            r#"{"action": 3}"#,
            r#"{"workflow_id": "x"}"#,
            r#"{"action": "subscribe_workflow"}"#,
            r#"{"action": "subscribe_workflow", "workflow_id": 7}"#,
        ] {
            assert_eq!(code(parse(body)), "bad_request", "{body}");
        }
        assert_eq!(code(parse(r#"{"action": "sudo"}"#)), "unknown_action");
        let long = format!(r#"{{"action": "ping", "pad": "{}"}}"#, "x".repeat(5000));
        assert_eq!(code(parse(&long)), "bad_request");
        // An id that no workflow can have is not found, as any other missing workflow.
        assert_eq!(
            code(parse(
                r#"{"action": "subscribe_workflow", "workflow_id": "../x"}"#
            )),
            "not_found"
        );
    }

    #[test]
    fn replies_carry_their_type() {
        assert_eq!(
            serde_json::to_value(Reply::Stats {
                connections: 2,
                subscriptions: 1
            })
            .unwrap(),
            json!({"type": "stats", "connections": 2, "subscriptions": 1})
        );
        assert_eq!(
            serde_json::to_value(Reply::error("not_found", "no such workflow")).unwrap(),
            json!({"type": "error", "code": "not_found", "message": "no such workflow"})
        );
    }

    #[test]
    fn a_connection_expires_with_api_gateways_two_hours_and_keeps_its_principal() {
        let now = Utc::now();
        let mut p = Principal::user("u1", Role::Editor);
        p.scopes = Some(vec![Scope::WorkflowsRead]);
        let c = Connection::open("c1", &p, now);
        let lifetime = c.expires_at - c.connected_at;
        assert!(
            lifetime <= Duration::hours(2) && lifetime > Duration::hours(2) - Duration::seconds(1)
        );
        let back = c.principal();
        assert_eq!(
            (back.user_id, back.role, back.scopes),
            (
                "u1".to_string(),
                Role::Editor,
                Some(vec![Scope::WorkflowsRead])
            )
        );
    }
}
