//! In-memory fakes of the identity ports.
