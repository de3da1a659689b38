//! Adapter behaviour the emulator cannot produce, with `aws-smithy-mocks` answering for AWS:
//! throttling and service limits (503 with `Retry-After`), transactions cancelled by concurrent
//! ones (retried, then reported), and keys DynamoDB leaves unprocessed (asked for again).
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use aws_sdk_dynamodb::operation::batch_get_item::{BatchGetItemError, BatchGetItemOutput};
use aws_sdk_dynamodb::operation::transact_write_items::{
    TransactWriteItemsError, TransactWriteItemsOutput,
};
use aws_sdk_dynamodb::types::error::{
    ProvisionedThroughputExceededException, TransactionCanceledException,
};
use aws_sdk_dynamodb::types::{AttributeValue, CancellationReason, KeysAndAttributes};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_types::error::ErrorMetadata;
use chrono::Utc;
use http::StatusCode;
use shared::app::AppError;
use shared::aws::dynamo::DynamoAccounts;
use shared::aws::kms::KmsVault;
use shared::aws::ses::SesMailer;
use shared::domain::Role;
use shared::domain::account::{Account, AccountStatus};
use shared::http::Problem;
use shared::ports::{
    AccountStates, Accounts, Email, KeyVault, Mailer, OneTimeToken, StoreError, TokenPurpose,
};
use std::collections::HashMap;

const TABLE: &str = "dwc-mocked";

fn account() -> (Account, OneTimeToken) {
    let now = Utc::now();
    let account = Account {
        user_id: "01ARZ3NDEKTSV4RRFFQ69G5FAV".into(),
        email: "ada@example.com".into(),
        display_name: "Ada".into(),
        role: Role::Editor,
        status: AccountStatus::Pending,
        password_hash: String::new(),
        mfa: Default::default(),
        failed_logins: 0,
        last_failed_at: None,
        tokens_valid_after: now,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    let token = OneTimeToken {
        hash: "h".into(),
        purpose: TokenPurpose::VerifyEmail,
        user_id: account.user_id.clone(),
        created_at: now,
        expires_at: now,
        password_hash: None,
        display_name: None,
    };
    (account, token)
}

fn cancelled(codes: &[&str]) -> TransactWriteItemsError {
    TransactWriteItemsError::TransactionCanceledException(
        TransactionCanceledException::builder()
            .set_cancellation_reasons(Some(
                codes
                    .iter()
                    .map(|c| CancellationReason::builder().code(*c).build())
                    .collect(),
            ))
            .build(),
    )
}

/// The metadata the SDK reads off an error response (its code): what the classifier sees.
fn wire(code: &str) -> ErrorMetadata {
    ErrorMetadata::builder()
        .code(code)
        .message("from the mock")
        .build()
}

/// What a client sees of a store error: the problem the handlers answer with.
fn problem(e: StoreError) -> Problem {
    Problem::from(AppError::from(e))
}

#[tokio::test]
async fn a_transaction_cancelled_by_a_concurrent_one_is_tried_again() {
    let conflict = mock!(aws_sdk_dynamodb::Client::transact_write_items)
        .sequence()
        .error(|| cancelled(&["TransactionConflict", "None", "None"]))
        .times(2)
        .output(|| TransactWriteItemsOutput::builder().build())
        .build();
    let accounts = DynamoAccounts::new(
        mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&conflict]),
        TABLE,
    );
    let (a, t) = account();
    accounts.create_account(&a, &t).await.unwrap();
    assert_eq!(conflict.num_calls(), 3, "two conflicts, then the write");
}

#[tokio::test]
async fn conflicts_that_persist_are_unavailable_not_a_failed_condition() {
    let conflict = mock!(aws_sdk_dynamodb::Client::transact_write_items)
        .then_error(|| cancelled(&["TransactionConflict", "None", "None"]));
    let accounts = DynamoAccounts::new(
        mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&conflict]),
        TABLE,
    );
    let (a, t) = account();
    let err = accounts.create_account(&a, &t).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert_eq!(conflict.num_calls(), 4, "bounded attempts");
    let p = problem(err);
    assert_eq!(p.status_code(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn a_failed_guard_is_a_duplicate_and_is_not_retried() {
    let taken = mock!(aws_sdk_dynamodb::Client::transact_write_items)
        .then_error(|| cancelled(&["ConditionalCheckFailed", "None", "None"]));
    let accounts = DynamoAccounts::new(
        mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&taken]),
        TABLE,
    );
    let (a, t) = account();
    let err = accounts.create_account(&a, &t).await.unwrap_err();
    assert!(matches!(err, StoreError::Duplicate), "{err:?}");
    assert_eq!(taken.num_calls(), 1);
}

#[tokio::test]
async fn unprocessed_keys_are_asked_for_again() {
    let unprocessed = |keys: usize| {
        let mut k = KeysAndAttributes::builder();
        for i in 0..keys {
            k = k.keys(HashMap::from([
                ("PK".to_string(), AttributeValue::S(format!("USER#{i}"))),
                ("SK".to_string(), AttributeValue::S("#ACCOUNT".into())),
            ]));
        }
        k.build().unwrap()
    };
    let partial = mock!(aws_sdk_dynamodb::Client::batch_get_item)
        .sequence()
        .output(move || {
            BatchGetItemOutput::builder()
                .unprocessed_keys(TABLE, unprocessed(2))
                .build()
        })
        .output(|| {
            BatchGetItemOutput::builder()
                .responses(TABLE, vec![])
                .build()
        })
        .build();
    let accounts = DynamoAccounts::new(
        mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&partial]),
        TABLE,
    );
    let (key, state) = accounts
        .api_key_with_state("01ARZ3NDEKTSV4RRFFQ69G5FAV", "01ARZ3NDEKTSV4RRFFQ69G5FAW")
        .await
        .unwrap();
    assert!(key.is_none() && state.is_none());
    assert_eq!(partial.num_calls(), 2);

    // Keys that stay unprocessed: a bounded number of attempts, then 503.
    let stuck = mock!(aws_sdk_dynamodb::Client::batch_get_item).then_output(move || {
        BatchGetItemOutput::builder()
            .unprocessed_keys(TABLE, unprocessed(2))
            .build()
    });
    let accounts = DynamoAccounts::new(
        mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&stuck]),
        TABLE,
    );
    let err = accounts
        .api_key_with_state("01ARZ3NDEKTSV4RRFFQ69G5FAV", "01ARZ3NDEKTSV4RRFFQ69G5FAW")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert_eq!(stuck.num_calls(), 4);
}

#[tokio::test]
async fn dynamodb_throttling_is_503_with_retry_after() {
    let throttled = mock!(aws_sdk_dynamodb::Client::batch_get_item).then_error(|| {
        BatchGetItemError::ProvisionedThroughputExceededException(
            ProvisionedThroughputExceededException::builder()
                .message("slow down")
                .meta(wire("ProvisionedThroughputExceededException"))
                .build(),
        )
    });
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&throttled], |c| c
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled()));
    let accounts = DynamoAccounts::new(client, TABLE);
    let err = accounts
        .session_state("01ARZ3NDEKTSV4RRFFQ69G5FAV", "01ARZ3NDEKTSV4RRFFQ69G5FAW")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let response = problem(err).into_response();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().get("retry-after").is_some());
}

#[tokio::test]
async fn kms_limits_and_dependency_timeouts_are_503() {
    use aws_sdk_kms::operation::decrypt::DecryptError;
    use aws_sdk_kms::operation::generate_data_key::GenerateDataKeyError;
    use aws_sdk_kms::types::error::DependencyTimeoutException;
    // KMS request quotas: a LimitExceededException the GenerateDataKey model does not name.
    let limited = mock!(aws_sdk_kms::Client::generate_data_key)
        .then_error(|| GenerateDataKeyError::generic(wire("LimitExceededException")));
    let slow = mock!(aws_sdk_kms::Client::decrypt).then_error(|| {
        DecryptError::DependencyTimeoutException(
            DependencyTimeoutException::builder()
                .message("hsm")
                .meta(wire("DependencyTimeoutException"))
                .build(),
        )
    });
    let vault = KmsVault::with_client(
        mock_client!(aws_sdk_kms, RuleMode::MatchAny, [&limited, &slow], |c| c
            .retry_config(aws_sdk_kms::config::retry::RetryConfig::disabled())),
        "alias/dwc",
    );
    let Err(err) = vault.generate_data_key().await else {
        panic!("a data key from a throttled KMS")
    };
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert_eq!(problem(err).status_code(), StatusCode::SERVICE_UNAVAILABLE);
    let err = vault.decrypt_data_key(b"ciphertext").await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}

fn ses_throttled() -> aws_sdk_sesv2::operation::send_email::SendEmailError {
    aws_sdk_sesv2::operation::send_email::SendEmailError::TooManyRequestsException(
        aws_sdk_sesv2::types::error::TooManyRequestsException::builder()
            .message("rate")
            .meta(wire("TooManyRequestsException"))
            .build(),
    )
}

fn ses_rejected() -> aws_sdk_sesv2::operation::send_email::SendEmailError {
    aws_sdk_sesv2::operation::send_email::SendEmailError::MessageRejected(
        aws_sdk_sesv2::types::error::MessageRejected::builder()
            .message("Email address is not verified.")
            .meta(wire("MessageRejected"))
            .build(),
    )
}

#[tokio::test]
async fn ses_sending_rate_is_503() {
    let throttled = mock!(aws_sdk_sesv2::Client::send_email)
        .sequence()
        .error(ses_throttled)
        .error(ses_rejected)
        .build();
    let mailer = SesMailer::with_client(
        // The SDK's own retries are off, so each send meets one answer of the sequence.
        mock_client!(aws_sdk_sesv2, RuleMode::Sequential, [&throttled], |c| c
            .retry_config(aws_sdk_sesv2::config::retry::RetryConfig::disabled())),
        "noreply@example.com",
    );
    let email = Email {
        to: "ada@example.com".into(),
        subject: "s".into(),
        text: "t".into(),
    };
    let err = mailer.send(&email).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    // A rejected message is not a reason to try again later.
    let err = mailer.send(&email).await.unwrap_err();
    assert!(matches!(err, StoreError::Internal(_)), "{err:?}");
}

/// The notifier's sender: which SES and SNS errors are the recipient's (permanent: the channel
/// is marked failed) and which are the service's or the account's own (tried again, never
/// blamed on the user's channel); the delivery log shows the code, not the raw response.
#[tokio::test]
async fn notification_sends_tell_a_refused_recipient_from_a_service_problem() {
    use aws_sdk_sesv2::operation::send_email::SendEmailError;
    use aws_sdk_sesv2::types::error::SendingPausedException;
    use aws_sdk_sns::operation::publish::PublishError;
    use aws_sdk_sns::types::error::{AuthorizationErrorException, EndpointDisabledException};
    use shared::aws::notify::AwsSender;
    use shared::domain::notify::retry::Verdict;
    use shared::ports::{Outgoing, Sender};

    let mail = mock!(aws_sdk_sesv2::Client::send_email)
        .sequence()
        .error(ses_throttled)
        .error(|| {
            SendEmailError::SendingPausedException(
                SendingPausedException::builder()
                    .message("paused")
                    .meta(wire("SendingPausedException"))
                    .build(),
            )
        })
        .error(ses_rejected)
        .build();
    let push = mock!(aws_sdk_sns::Client::publish)
        .sequence()
        .error(|| {
            PublishError::AuthorizationErrorException(
                AuthorizationErrorException::builder()
                    .message("not allowed")
                    .meta(wire("AuthorizationError"))
                    .build(),
            )
        })
        .error(|| {
            PublishError::EndpointDisabledException(
                EndpointDisabledException::builder()
                    .message("Endpoint is disabled")
                    .meta(wire("EndpointDisabled"))
                    .build(),
            )
        })
        .build();
    let sender = AwsSender::with_clients(
        mock_client!(aws_sdk_sesv2, RuleMode::Sequential, [&mail], |c| c
            .retry_config(aws_sdk_sesv2::config::retry::RetryConfig::disabled())),
        mock_client!(aws_sdk_sns, RuleMode::Sequential, [&push], |c| c
            .retry_config(aws_sdk_sns::config::retry::RetryConfig::disabled())),
    );
    let email = Outgoing::Email {
        to: "ada@example.com".into(),
        subject: "s".into(),
        html: "<p>h</p>".into(),
        text: "t".into(),
    };
    let retried = |v: &Verdict| matches!(v, Verdict::Retry { .. });
    let throttled = sender.send(&email).await;
    assert!(retried(&throttled.verdict), "{throttled:?}");
    let paused = sender.send(&email).await;
    assert!(
        retried(&paused.verdict),
        "the account's problem: {paused:?}"
    );
    let rejected = sender.send(&email).await;
    assert_eq!(rejected.verdict, Verdict::Permanent, "{rejected:?}");
    // The code and the service's message (the mock's), nothing of the raw response.
    assert_eq!(
        rejected.detail.as_deref(),
        Some("MessageRejected: from the mock")
    );
    let endpoint = Outgoing::Push {
        endpoint_arn: "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/app/00000000-0000-0000-0000-000000000000".into(),
        message: "{}".into(),
    };
    let denied = sender.send(&endpoint).await;
    assert!(retried(&denied.verdict), "the role's problem: {denied:?}");
    let disabled = sender.send(&endpoint).await;
    assert_eq!(disabled.verdict, Verdict::Permanent, "{disabled:?}");
}
