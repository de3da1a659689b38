//! Workflow use cases over [`shared::testing::workflows`].
