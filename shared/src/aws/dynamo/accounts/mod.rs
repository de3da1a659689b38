//! [`AccountStore`] and [`SigningKeyStore`] over the single table.
//!
//! # Items
//!
//! | item | `PK` | `SK` | `GSI1PK` / `GSI1SK` | TTL `expires_at` |
//! | --- | --- | --- | --- | --- |
//! | account | `USER#<user_id>` | `#ACCOUNT` | `ACCOUNTS` / `<email>` | |
//! | email guard (uniqueness) | `EMAIL#<email>` | `#EMAIL` | | |
//! | session | `USER#<user_id>` | `SESSION#<session_id>` | | 30 days after the last refresh |
//! | API key | `USER#<user_id>` | `APIKEY#<key_id>` | | its expiry, if any |
//! | one-time token (email link) | `TOKEN#<sha256 of the secret>` | `#TOKEN` | | its expiry |
//! | signing key | `SIGNING_KEYS` | `KEY#<kid>` | | set when retired |
//!
//! # Access patterns
//!
//! | pattern | request | key condition |
//! | --- | --- | --- |
//! | register | TransactWriteItems | Put account, guard and token, each `attribute_not_exists(PK)` |
//! | account by id / state per request | GetItem (consistent; projection for the state) | `PK = USER#<id> AND SK = #ACCOUNT` |
//! | account by email (login, reset) | GetItem guard, then GetItem account | `PK = EMAIL#<email>` |
//! | change an account | PutItem | conditional on `version = <read> - 1` |
//! | count a failed login | UpdateItem `ADD failed_logins 1` | `PK = USER#<id> AND SK = #ACCOUNT` |
//! | list / search accounts (admin) | Query on `GSI1` | `GSI1PK = ACCOUNTS AND begins_with(GSI1SK, <prefix>)`, status/role as filter |
//! | use a one-time token | DeleteItem, ReturnValues ALL_OLD | `PK = TOKEN#<hash>`: one caller gets the item |
//! | sessions / API keys of a user | Query | `PK = USER#<id> AND begins_with(SK, SESSION#)` (`APIKEY#`) |
//! | rotate a refresh token | PutItem | conditional on `refresh_hash = <presented>` |
//! | API key with its account's state | BatchGetItem | the key's and the account's keys |
//! | delete an account | Query `PK = USER#<id>`, then TransactWriteItems/BatchWriteItem | |
//! | signing keys | Query | `PK = SIGNING_KEYS` |

use super::expr::Expr;
use super::items::{EXPIRES_AT, Item, from_item, page_key, start_key, to_item};
use super::keys::{GSI1, GSI1PK, GSI1SK, PK, SK, sort_time};
use super::table::{Table, TxError, reason_code};
use crate::aws::errors::{build, classify};
use crate::domain::Role;
use crate::domain::account::{Account, AccountStatus, ApiKey, Session};
use crate::ports::*;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, ReturnValue, TransactWriteItem};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use std::collections::HashMap;

mod api_keys;
mod sessions;
mod signing_keys;
mod tokens;

const ACCOUNT_SK: &str = "#ACCOUNT";
const ACCOUNTS_INDEX_PK: &str = "ACCOUNTS";
const SIGNING_KEYS_PK: &str = "SIGNING_KEYS";

/// Accounts, sessions, API keys, one-time tokens and signing keys in the single table.
#[derive(Clone, Debug)]
pub struct DynamoAccounts {
    table: Table,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn internal(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(e.to_string())
}

fn key(pk: String, sk: String) -> Item {
    HashMap::from([(PK.into(), s(pk)), (SK.into(), s(sk))])
}

fn user_pk(user_id: &str) -> String {
    format!("USER#{user_id}")
}

fn account_key(user_id: &str) -> Item {
    key(user_pk(user_id), ACCOUNT_SK.into())
}

fn email_key(email: &str) -> Item {
    key(format!("EMAIL#{email}"), "#EMAIL".into())
}

fn session_key(user_id: &str, session_id: &str) -> Item {
    key(user_pk(user_id), format!("SESSION#{session_id}"))
}

fn api_key_key(user_id: &str, key_id: &str) -> Item {
    key(user_pk(user_id), format!("APIKEY#{key_id}"))
}

fn token_key(hash: &str) -> Item {
    key(format!("TOKEN#{hash}"), "#TOKEN".into())
}

fn signing_key_key(kid: &str) -> Item {
    key(SIGNING_KEYS_PK.into(), format!("KEY#{kid}"))
}

fn account_item(a: &Account) -> Result<Item, StoreError> {
    let mut item = to_item(a, account_key(&a.user_id))?;
    item.insert(GSI1PK.into(), s(ACCOUNTS_INDEX_PK));
    item.insert(GSI1SK.into(), s(a.email.as_str()));
    item.insert("type".into(), s("account"));
    Ok(item)
}

fn token_item(t: &OneTimeToken) -> Item {
    let mut item = token_key(&t.hash);
    item.insert("type".into(), s("token"));
    item.insert("purpose".into(), s(t.purpose.as_str()));
    item.insert("user_id".into(), s(t.user_id.as_str()));
    item.insert("created_at".into(), s(sort_time(t.created_at)));
    item.insert(
        EXPIRES_AT.into(),
        AttributeValue::N(t.expires_at.timestamp().to_string()),
    );
    if let Some(h) = &t.password_hash {
        item.insert("password_hash".into(), s(h.as_str()));
    }
    if let Some(n) = &t.display_name {
        item.insert("display_name".into(), s(n.as_str()));
    }
    item
}

fn token_from(item: &Item, hash: &str) -> Result<OneTimeToken, StoreError> {
    let text = |k: &str| match item.get(k) {
        Some(AttributeValue::S(v)) => Ok(v.clone()),
        _ => Err(internal(format!("token without {k}"))),
    };
    let purpose = match text("purpose")?.as_str() {
        "verify_email" => TokenPurpose::VerifyEmail,
        "reset_password" => TokenPurpose::ResetPassword,
        other => return Err(internal(format!("token purpose {other}"))),
    };
    let expires = match item.get(EXPIRES_AT) {
        Some(AttributeValue::N(n)) => n.parse::<i64>().map_err(internal)?,
        _ => 0,
    };
    Ok(OneTimeToken {
        hash: hash.to_string(),
        purpose,
        user_id: text("user_id")?,
        // A token stored before `created_at` was: as old as can be (a reset link then asks
        // for a new one if the credentials changed since, which is the safe side).
        created_at: text("created_at")
            .ok()
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map_or(DateTime::UNIX_EPOCH, |t| t.to_utc()),
        expires_at: DateTime::from_timestamp(expires, 0).unwrap_or_default(),
        password_hash: text("password_hash").ok(),
        display_name: text("display_name").ok(),
    })
}

fn state_from(item: Item) -> Result<AccountState, StoreError> {
    #[derive(serde::Deserialize)]
    struct State {
        role: Role,
        status: AccountStatus,
        tokens_valid_after: DateTime<Utc>,
    }
    let st: State = serde_dynamo::from_item(item).map_err(internal)?;
    Ok(AccountState {
        role: st.role,
        status: st.status,
        tokens_valid_after: st.tokens_valid_after,
    })
}

fn signing_key_item(k: &StoredSigningKey) -> Item {
    let mut item = signing_key_key(&k.public.kid);
    item.insert("type".into(), s("signing_key"));
    item.insert("kid".into(), s(k.public.kid.as_str()));
    item.insert("x".into(), s(k.public.x.as_str()));
    item.insert("y".into(), s(k.public.y.as_str()));
    item.insert("created_at".into(), s(k.public.created_at.to_rfc3339()));
    item.insert(
        "encrypted_private_key".into(),
        s(STANDARD.encode(&k.encrypted_private_key)),
    );
    item.insert("nonce".into(), s(STANDARD.encode(&k.nonce)));
    item.insert(
        "encrypted_data_key".into(),
        s(STANDARD.encode(&k.encrypted_data_key)),
    );
    item.insert("retired".into(), AttributeValue::Bool(k.retired));
    if let Some(t) = k.expires_at {
        item.insert(
            EXPIRES_AT.into(),
            AttributeValue::N(t.timestamp().to_string()),
        );
    }
    item
}

fn signing_key_from(item: &Item) -> Result<StoredSigningKey, StoreError> {
    let text = |k: &str| match item.get(k) {
        Some(AttributeValue::S(v)) => Ok(v.clone()),
        _ => Err(internal(format!("signing key without {k}"))),
    };
    let bytes = |k: &str| STANDARD.decode(text(k)?).map_err(internal);
    let expires_at = match item.get(EXPIRES_AT) {
        Some(AttributeValue::N(n)) => {
            DateTime::from_timestamp(n.parse::<i64>().map_err(internal)?, 0)
        }
        _ => None,
    };
    Ok(StoredSigningKey {
        public: PublicKey {
            kid: text("kid")?,
            x: text("x")?,
            y: text("y")?,
            created_at: DateTime::parse_from_rfc3339(&text("created_at")?)
                .map_err(internal)?
                .to_utc(),
            expires_at,
        },
        encrypted_private_key: bytes("encrypted_private_key")?,
        nonce: bytes("nonce")?,
        encrypted_data_key: bytes("encrypted_data_key")?,
        retired: matches!(item.get("retired"), Some(AttributeValue::Bool(true))),
        expires_at,
    })
}

impl DynamoAccounts {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoAccounts {
            table: Table::new(client, table),
        }
    }

    /// Puts `item`, conditional on `condition` (with `e`'s names and values); a failed
    /// condition is `on_fail`.
    async fn put(
        &self,
        item: Item,
        condition: Option<String>,
        e: Expr,
        on_fail: StoreError,
    ) -> Result<(), StoreError> {
        if self.table.put_if(item, condition, e).await? {
            Ok(())
        } else {
            Err(on_fail)
        }
    }

    /// Items of one user's partition whose sort key starts with `prefix` (all for "").
    async fn query_user(&self, user_id: &str, prefix: &str) -> Result<Vec<Item>, StoreError> {
        self.table.query_all(&user_pk(user_id), prefix).await
    }

    async fn delete(&self, key: Item) -> Result<bool, StoreError> {
        self.table.delete(key).await
    }
}

impl Accounts for DynamoAccounts {
    fn create_account<'a>(&'a self, account: &'a Account, token: &'a OneTimeToken) -> Fut<'a, ()> {
        Box::pin(async move {
            let guard = {
                let mut item = email_key(&account.email);
                item.insert("type".into(), s("email_guard"));
                item.insert("user_id".into(), s(account.user_id.as_str()));
                item
            };
            let mut actions = Vec::new();
            for item in [guard, account_item(account)?, token_item(token)] {
                let mut e = Expr::default();
                let condition = format!("attribute_not_exists({})", e.name(PK));
                let put = Put::builder()
                    .table_name(self.table.name())
                    .set_item(Some(item))
                    .condition_expression(condition)
                    .set_expression_attribute_names(e.names_opt())
                    .build()
                    .map_err(build)?;
                actions.push(TransactWriteItem::builder().put(put).build());
            }
            match self.table.transact(actions).await {
                Ok(()) => Ok(()),
                // The email's guard comes first: its condition failing means the email is taken.
                Err(TxError::Cancelled(reasons))
                    if reason_code(&reasons, 0) == Some("ConditionalCheckFailed") =>
                {
                    Err(StoreError::Duplicate)
                }
                Err(TxError::Cancelled(reasons)) => Err(StoreError::Internal(format!(
                    "account transaction cancelled: {:?}",
                    reasons.iter().map(|r| r.code()).collect::<Vec<_>>()
                ))),
                Err(TxError::Other(e)) => Err(e),
            }
        })
    }
    fn get_account<'a>(&'a self, user_id: &'a str) -> Fut<'a, Option<Account>> {
        Box::pin(async move {
            self.table
                .get(account_key(user_id), None)
                .await?
                .map(from_item)
                .transpose()
        })
    }
    fn find_account_by_email<'a>(&'a self, email: &'a str) -> Fut<'a, Option<Account>> {
        Box::pin(async move {
            let Some(guard) = self.table.get(email_key(email), None).await? else {
                return Ok(None);
            };
            let Some(AttributeValue::S(user_id)) = guard.get("user_id") else {
                return Err(internal("email guard without user_id"));
            };
            self.get_account(user_id).await
        })
    }
    fn update_account<'a>(&'a self, account: &'a Account) -> Fut<'a, ()> {
        Box::pin(async move {
            let mut e = Expr::default();
            let condition = format!(
                "{} = {}",
                e.name("version"),
                e.n(account.version.saturating_sub(1))
            );
            self.put(
                account_item(account)?,
                Some(condition),
                e,
                StoreError::Conflict,
            )
            .await
        })
    }
    fn record_login_failure<'a>(&'a self, user_id: &'a str, now: DateTime<Utc>) -> Fut<'a, ()> {
        Box::pin(async move {
            let mut e = Expr::default();
            let update = format!(
                "ADD {} {} SET {} = {}",
                e.name("failed_logins"),
                e.n(1),
                e.name("last_failed_at"),
                e.s(now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            );
            let condition = format!("attribute_exists({})", e.name(PK));
            // No account (deleted meanwhile): nothing to count.
            self.table
                .update_if(account_key(user_id), update, condition, e)
                .await
                .map(|_| ())
        })
    }
    fn delete_account<'a>(&'a self, account: &'a Account) -> Fut<'a, ()> {
        Box::pin(async move {
            // The account and its guard together, so the email is free exactly when the
            // account is gone; then what hangs off it.
            let deletes = [account_key(&account.user_id), email_key(&account.email)]
                .into_iter()
                .map(|k| {
                    Delete::builder()
                        .table_name(self.table.name())
                        .set_key(Some(k))
                        .build()
                        .map(|d| TransactWriteItem::builder().delete(d).build())
                        .map_err(build)
                })
                .collect::<Result<Vec<_>, _>>()?;
            match self.table.transact(deletes).await {
                Ok(()) => {}
                Err(TxError::Other(e)) => return Err(e),
                Err(TxError::Cancelled(reasons)) => {
                    return Err(StoreError::Internal(format!(
                        "account delete cancelled: {:?}",
                        reasons.iter().map(|r| r.code()).collect::<Vec<_>>()
                    )));
                }
            }
            let rest = self.query_user(&account.user_id, "").await?;
            let keys = rest
                .iter()
                .map(|item| {
                    [PK, SK]
                        .iter()
                        .filter_map(|a| item.get(*a).map(|v| (a.to_string(), v.clone())))
                        .collect()
                })
                .collect();
            self.table.batch_delete(keys).await?;
            Ok(())
        })
    }
    fn list_accounts<'a>(
        &'a self,
        filter: &'a AccountFilter,
        limit: u32,
        after: Option<&'a PageKey>,
    ) -> Fut<'a, Page<Account>> {
        Box::pin(async move {
            if let Some(k) = after {
                let ok = k.0.len() == 4
                    && k.0.get(GSI1PK).map(String::as_str) == Some(ACCOUNTS_INDEX_PK)
                    && k.0.get(SK).map(String::as_str) == Some(ACCOUNT_SK)
                    && k.0.get(PK).is_some_and(|pk| pk.starts_with("USER#"))
                    && k.0.contains_key(GSI1SK);
                // A key from a list with another prefix lies outside this query: DynamoDB would
                // refuse it as a ValidationException.
                let in_range = filter
                    .email_prefix
                    .as_deref()
                    .is_none_or(|p| k.0.get(GSI1SK).is_some_and(|sk| sk.starts_with(p)));
                if !ok || !in_range {
                    return Err(StoreError::BadPageKey);
                }
            }
            let mut e = Expr::default();
            let mut condition = format!("{} = {}", e.name(GSI1PK), e.s(ACCOUNTS_INDEX_PK));
            if let Some(prefix) = filter.email_prefix.as_deref().filter(|p| !p.is_empty()) {
                condition += &format!(" AND begins_with({}, {})", e.name(GSI1SK), e.s(prefix));
            }
            let mut filters = Vec::new();
            if let Some(st) = filter.status {
                let v = serde_json::to_value(st).map_err(internal)?;
                filters.push(format!(
                    "{} = {}",
                    e.name("status"),
                    e.s(v.as_str().unwrap_or_default())
                ));
            }
            if let Some(r) = filter.role {
                filters.push(format!("{} = {}", e.name("role"), e.s(r.as_str())));
            }
            let start = after.map(start_key);
            let out = self
                .table
                .client
                .query()
                .table_name(self.table.name())
                .index_name(GSI1)
                .key_condition_expression(condition)
                .set_filter_expression((!filters.is_empty()).then(|| filters.join(" AND ")))
                .set_expression_attribute_names(e.names_opt())
                .set_expression_attribute_values(e.values_opt())
                .limit(limit as i32)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(classify)?;
            let items = out
                .items
                .unwrap_or_default()
                .into_iter()
                .map(from_item)
                .collect::<Result<Vec<Account>, _>>()?;
            let next = page_key(out.last_evaluated_key.as_ref());
            Ok(Page { items, next })
        })
    }
}

impl AccountStates for DynamoAccounts {
    fn session_state<'a>(
        &'a self,
        user_id: &'a str,
        session_id: &'a str,
    ) -> Fut<'a, (Option<AccountState>, bool)> {
        Box::pin(async move {
            let found = self
                .table
                .batch_get(vec![account_key(user_id), session_key(user_id, session_id)])
                .await?;
            let mut state = None;
            let mut session = false;
            for item in found {
                match item.get(SK) {
                    Some(AttributeValue::S(sk)) if sk == ACCOUNT_SK => {
                        state = Some(state_from(item)?)
                    }
                    _ => session = true,
                }
            }
            Ok((state, session))
        })
    }
    fn api_key_with_state<'a>(
        &'a self,
        user_id: &'a str,
        key_id: &'a str,
    ) -> Fut<'a, (Option<ApiKey>, Option<AccountState>)> {
        Box::pin(async move {
            let found = self
                .table
                .batch_get(vec![api_key_key(user_id, key_id), account_key(user_id)])
                .await?;
            let mut key = None;
            let mut state = None;
            for item in found {
                match item.get(SK) {
                    Some(AttributeValue::S(sk)) if sk == ACCOUNT_SK => {
                        state = Some(state_from(item)?)
                    }
                    _ => key = Some(from_item(item)?),
                }
            }
            Ok((key, state))
        })
    }
}
