//! In-memory fakes of the workflow ports.
