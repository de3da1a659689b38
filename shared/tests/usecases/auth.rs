//! Identity use cases over [`shared::testing::accounts`].
