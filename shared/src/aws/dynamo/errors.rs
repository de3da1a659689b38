//! Maps SDK errors to [`StoreError`]: transient ones to `Unavailable` (503 with a retry hint),
//! the rest to `Internal`.

use crate::ports::StoreError;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

const TRANSIENT_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionInProgressException",
];

pub fn classify<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    err: SdkError<E, R>,
) -> StoreError {
    match &err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            let code = e.code().unwrap_or("Unknown");
            let message = format!("{code}: {}", e.message().unwrap_or(""));
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

pub fn build(err: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("request build: {err}"))
}
