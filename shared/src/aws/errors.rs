//! The one classifier of AWS SDK errors, for every service this crate calls (DynamoDB, KMS,
//! SES): transient ones (throttling, limits that clear, the service or its dependency
//! unavailable, the network) become [`StoreError::Unavailable`] (503 with `Retry-After`), the
//! rest [`StoreError::Internal`].

use crate::ports::StoreError;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Error codes that mean "try again shortly", by service.
const TRANSIENT_CODES: &[&str] = &[
    // DynamoDB
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionInProgressException",
    // KMS: request quotas, and KMS waiting on a dependency (CloudHSM, an external key store).
    "LimitExceededException",
    "DependencyTimeoutException",
    "KMSInternalException",
    // SES v2: sending rate.
    "TooManyRequestsException",
    // Any service: the generic throttling codes.
    "Throttling",
    "ThrottledException",
    "RequestThrottled",
    "SlowDown",
];

pub fn classify<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    err: SdkError<E, R>,
) -> StoreError {
    match &err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            let code = e.code().unwrap_or("Unknown");
            let mut message = format!("{code}: {}", e.message().unwrap_or(""));
            if e.code().is_none() {
                // An answer the SDK could not read a code from: keep what came back for the log.
                let raw: String = format!("{:?}", service.raw()).chars().take(600).collect();
                message = format!("{message} (response: {raw})");
            }
            if TRANSIENT_CODES.contains(&code) {
                StoreError::Unavailable(message)
            } else {
                StoreError::Internal(message)
            }
        }
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            StoreError::Unavailable(format!("{err:?}"))
        }
        _ => StoreError::Internal(format!("{err:?}")),
    }
}

/// A request the SDK's builder refused (a missing required field): a bug, not the caller's.
pub fn build(err: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("request build: {err}"))
}
