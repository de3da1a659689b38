//! Use cases of chain runs: the worker's step execution ([`worker`]).

pub mod worker;
