//! Workflow use cases over [`shared::testing::workflows`].
//!
//! Each test drives the use cases as the HTTP routes of `api-workflows` call them and checks
//! both what the caller gets (values and [`AppError`] variants, which the routes map to
//! statuses) and what the store holds afterwards. The emulator tests of the same behaviours
//! are in `functions/api-workflows/tests/api/`.

use chrono::{DateTime, Duration, Utc};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use shared::app::workflows::idempotency::IdempotencyKey;
use shared::app::workflows::requests::{
    BulkOutcome, BulkRequest, CreatedWorkflow, ListWorkflowsQuery, UpdateNodeRequest,
    UpdateWorkflowRequest,
};
use shared::app::workflows::shares::{Share, ShareList, ShareRequest};
use shared::app::workflows::transfer::{self, ExportDocument};
use shared::app::workflows::{self, bulk, nodes, shares};
use shared::app::{AppError, Outcome};
use shared::domain::account::{Account, AccountStatus};
use shared::domain::{
    Node, NodeStatus, Principal, Role, Scope, ShareAccess, Workflow, WorkflowStatus, ids,
};
use shared::ports::{AccountFilter, Accounts, Clock, Fut, OneTimeToken, Page, PageKey, StoreError};
use shared::testing::ManualClock;
use shared::testing::workflows::{MemoryWorkflowStore, Method};
use std::collections::HashMap;

// Support ---------------------------------------------------------------------------------

/// A store, a clock, and the accounts sharing by email looks up.
struct Env {
    store: MemoryWorkflowStore,
    clock: ManualClock,
    accounts: LocalAccounts,
}

fn env() -> Env {
    let start = DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z")
        .unwrap()
        .to_utc();
    Env {
        store: MemoryWorkflowStore::new(),
        clock: ManualClock::at(start),
        accounts: LocalAccounts::default(),
    }
}

/// A new user id (a ULID, as the identity service makes them).
fn user() -> String {
    ids::new_id()
}

fn editor(user_id: &str) -> Principal {
    Principal::user(user_id, Role::Editor)
}

fn body<T: DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

fn key(k: &str, request_hash: &str) -> IdempotencyKey {
    IdempotencyKey::new(k, request_hash.to_string()).unwrap()
}

fn created<T: std::fmt::Debug>(outcome: Outcome<T>) -> T {
    match outcome {
        Outcome::Created(v) => v,
        other => panic!("expected a new item, got {other:?}"),
    }
}

fn replayed<T: std::fmt::Debug>(outcome: Outcome<T>) -> (u16, String) {
    match outcome {
        Outcome::Replayed { status, body } => (status, body),
        other => panic!("expected a replay, got {other:?}"),
    }
}

fn ids_of(ws: &[Workflow]) -> Vec<String> {
    ws.iter().map(|w| w.id.clone()).collect()
}

impl Env {
    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Creates a workflow as `owner` from a create request body; the clock then moves on a
    /// second, so workflows created one after another sort by creation.
    async fn create(&self, owner: &Principal, request: Value) -> CreatedWorkflow {
        self.try_create(owner, request, None)
            .await
            .map(created)
            .unwrap()
    }

    async fn try_create(
        &self,
        owner: &Principal,
        request: Value,
        idempotency: Option<IdempotencyKey>,
    ) -> Result<Outcome<CreatedWorkflow>, AppError> {
        let r = workflows::create(
            &self.store,
            workflows::CreateWorkflow {
                principal: owner,
                body: body(request),
                idempotency,
                now: self.now(),
            },
        )
        .await;
        self.clock.advance(Duration::seconds(1));
        r
    }

    async fn named(&self, owner: &Principal, name: &str) -> Workflow {
        self.create(owner, json!({"name": name})).await.workflow
    }

    async fn add(
        &self,
        p: &Principal,
        workflow_id: &str,
        request: Value,
    ) -> Result<Node, AppError> {
        self.add_with_key(p, workflow_id, request, None)
            .await
            .map(created)
    }

    async fn add_with_key(
        &self,
        p: &Principal,
        workflow_id: &str,
        request: Value,
        idempotency: Option<IdempotencyKey>,
    ) -> Result<Outcome<Node>, AppError> {
        nodes::add(
            &self.store,
            nodes::AddNode {
                principal: p,
                workflow_id,
                body: body(request),
                idempotency,
                now: self.now(),
            },
        )
        .await
    }

    async fn update_node(
        &self,
        p: &Principal,
        workflow_id: &str,
        node_id: &str,
        if_match: Option<u64>,
        request: Value,
    ) -> Result<Node, AppError> {
        nodes::update(
            &self.store,
            nodes::UpdateNode {
                principal: p,
                workflow_id,
                node_id,
                if_match,
                body: body::<UpdateNodeRequest>(request),
                now: self.now(),
            },
        )
        .await
    }

    async fn delete_node(
        &self,
        p: &Principal,
        workflow_id: &str,
        node_id: &str,
        cascade: bool,
    ) -> Result<(), AppError> {
        nodes::delete(
            &self.store,
            nodes::DeleteNode {
                principal: p,
                workflow_id,
                node_id,
                cascade,
            },
        )
        .await
    }

    async fn update(
        &self,
        p: &Principal,
        id: &str,
        if_match: Option<u64>,
        request: Value,
    ) -> Result<Workflow, AppError> {
        workflows::update(
            &self.store,
            workflows::UpdateWorkflow {
                principal: p,
                id,
                if_match,
                body: body::<UpdateWorkflowRequest>(request),
                now: self.now(),
            },
        )
        .await
    }

    async fn status(
        &self,
        p: &Principal,
        id: &str,
        target: WorkflowStatus,
        expected_version: Option<u64>,
    ) -> Result<Workflow, AppError> {
        workflows::change_status(
            &self.store,
            workflows::ChangeStatus {
                principal: p,
                id,
                target,
                expected_version,
                now: self.now(),
            },
        )
        .await
    }

    async fn list(
        &self,
        p: &Principal,
        query: ListWorkflowsQuery,
    ) -> Result<Page<Workflow>, AppError> {
        workflows::list(&self.store, p, query).await
    }

    /// Every workflow in `p`'s list, following the page keys, `limit` per page.
    async fn list_all(&self, p: &Principal, limit: u32) -> Vec<String> {
        let mut seen = Vec::new();
        let mut cursor = None;
        for _ in 0..100 {
            let page = self
                .list(
                    p,
                    ListWorkflowsQuery {
                        limit,
                        cursor,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            assert!(page.items.len() <= limit as usize);
            seen.extend(ids_of(&page.items));
            match page.next {
                Some(next) => cursor = Some(next),
                None => return seen,
            }
        }
        panic!("the list never ended");
    }

    async fn import(
        &self,
        p: &Principal,
        document: Value,
        idempotency: Option<IdempotencyKey>,
    ) -> Result<Outcome<CreatedWorkflow>, AppError> {
        transfer::import(
            &self.store,
            transfer::Import {
                principal: p,
                document: body(document),
                idempotency,
                now: self.now(),
            },
        )
        .await
    }

    async fn share(
        &self,
        p: &Principal,
        workflow_id: &str,
        user_id: &str,
        access: ShareAccess,
    ) -> Result<ShareList, AppError> {
        self.accounts.add(user_id);
        shares::share(
            &self.store,
            &self.accounts,
            p,
            workflow_id,
            ShareRequest {
                email: None,
                user_id: Some(user_id.to_string()),
                access,
            },
        )
        .await
    }
}

fn assert_forbidden<T: std::fmt::Debug>(r: Result<T, AppError>, why: &str) {
    match r {
        Err(AppError::Forbidden(detail)) => assert!(detail.contains(why), "{detail}"),
        other => panic!("expected 403 ({why}), got {other:?}"),
    }
}

fn assert_not_found<T: std::fmt::Debug>(r: Result<T, AppError>, what: &str) {
    match r {
        Err(AppError::NotFound(w)) => assert_eq!(w, what),
        other => panic!("expected 404 ({what}), got {other:?}"),
    }
}

/// The fields of a validation error.
fn invalid_fields<T: std::fmt::Debug>(r: Result<T, AppError>) -> Vec<String> {
    match r {
        Err(AppError::Validation(errors)) => errors.into_iter().map(|e| e.field).collect(),
        other => panic!("expected 422, got {other:?}"),
    }
}

/// Accounts for sharing: active editors, found by id or by `<id lower case>@example.com`.
#[derive(Default)]
struct LocalAccounts(std::sync::Mutex<HashMap<String, Account>>);

impl LocalAccounts {
    fn add(&self, user_id: &str) {
        self.put(user_id, AccountStatus::Active);
    }

    fn put(&self, user_id: &str, status: AccountStatus) {
        let t = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        let account = Account {
            user_id: user_id.to_string(),
            email: format!("{user_id}@example.com").to_lowercase(),
            display_name: user_id.to_string(),
            role: Role::Editor,
            status,
            password_hash: String::new(),
            mfa: Default::default(),
            failed_logins: 0,
            last_failed_at: None,
            tokens_valid_after: t,
            created_at: t,
            updated_at: t,
            version: 1,
        };
        self.0.lock().unwrap().insert(user_id.to_string(), account);
    }
}

fn not_here<'a, T: Send + 'a>() -> Fut<'a, T> {
    Box::pin(async { Err(StoreError::Internal("not in this fake".into())) })
}

impl Accounts for LocalAccounts {
    fn create_account<'a>(&'a self, _: &'a Account, _: &'a OneTimeToken) -> Fut<'a, ()> {
        not_here()
    }
    fn get_account<'a>(&'a self, user_id: &'a str) -> Fut<'a, Option<Account>> {
        let found = self.0.lock().unwrap().get(user_id).cloned();
        Box::pin(async move { Ok(found) })
    }
    fn find_account_by_email<'a>(&'a self, email: &'a str) -> Fut<'a, Option<Account>> {
        let found = self
            .0
            .lock()
            .unwrap()
            .values()
            .find(|a| a.email == email)
            .cloned();
        Box::pin(async move { Ok(found) })
    }
    fn update_account<'a>(&'a self, _: &'a Account) -> Fut<'a, ()> {
        not_here()
    }
    fn record_login_failure<'a>(&'a self, _: &'a str, _: DateTime<Utc>) -> Fut<'a, ()> {
        not_here()
    }
    fn delete_account<'a>(&'a self, _: &'a Account) -> Fut<'a, ()> {
        not_here()
    }
    fn list_accounts<'a>(
        &'a self,
        _: &'a AccountFilter,
        _: u32,
        _: Option<&'a PageKey>,
    ) -> Fut<'a, Page<Account>> {
        not_here()
    }
}

/// A create request of a small tree: a -> b -> c, a -> d, and a second root e.
fn tree_request(name: &str) -> Value {
    json!({"name": name, "nodes": [
        {"ref": "a", "title": "a", "content": "Alpha opens. It goes on."},
        {"ref": "b", "parent_ref": "a", "title": "b"},
        {"parent_ref": "b", "title": "c"},
        {"parent_ref": "a", "title": "d"},
        {"title": "e"}
    ]})
}

fn by_title<'a>(nodes: &'a [Node], title: &str) -> &'a Node {
    nodes
        .iter()
        .find(|n| n.title == title)
        .unwrap_or_else(|| panic!("no node {title}"))
}

// Workflows -------------------------------------------------------------------------------

#[tokio::test]
async fn create_stores_the_tree_and_only_those_allowed_see_it() {
    let e = env();
    let alice = editor(&user());
    let now = e.now();
    let c = e.create(&alice, tree_request("Book")).await;
    assert_eq!(c.workflow.owner_id, alice.user_id);
    assert_eq!(c.workflow.status, WorkflowStatus::Draft);
    assert_eq!(c.workflow.version, 1);
    assert_eq!(c.workflow.node_count, 5);
    assert_eq!(c.workflow.created_at, now);
    assert_eq!(by_title(&c.nodes, "a").child_count, 2);
    assert_eq!(
        by_title(&c.nodes, "c").parent_id.as_ref(),
        Some(&by_title(&c.nodes, "b").id)
    );

    // Stored as returned, nodes in creation order.
    let id = &c.workflow.id;
    assert_eq!(e.store.workflow(id).as_ref(), Some(&c.workflow));
    assert_eq!(e.store.nodes(id), c.nodes);
    assert_eq!(
        workflows::get(&e.store, &alice, id).await.unwrap(),
        c.workflow
    );
    let stats = workflows::statistics(&e.store, &alice, id).await.unwrap();
    assert_eq!(
        (
            stats.node_count,
            stats.max_depth,
            stats.root_count,
            stats.leaf_count
        ),
        (5, 3, 2, 3)
    );

    // A stranger cannot tell it exists; an admin reads it; the viewer role cannot create.
    let stranger = editor(&user());
    assert_not_found(workflows::get(&e.store, &stranger, id).await, "workflow");
    assert_not_found(
        workflows::statistics(&e.store, &stranger, id).await,
        "workflow",
    );
    let admin = Principal::user(user(), Role::Admin);
    assert_eq!(workflows::get(&e.store, &admin, id).await.unwrap().id, *id);
    let before = e.store.snapshot();
    let vera = Principal::user(user(), Role::Viewer);
    assert_forbidden(
        e.try_create(&vera, json!({"name": "x"}), None).await,
        "viewer role",
    );
    assert_eq!(e.store.snapshot(), before);
}

#[tokio::test]
async fn invalid_creates_list_every_problem_and_write_nothing() {
    let e = env();
    let alice = editor(&user());
    let r = e
        .try_create(
            &alice,
            json!({"name": "", "settings": {"max_nodes": 1}, "nodes": [
                {"title": "", "ref": "x"}, {"title": "ok", "parent_ref": "nope"}
            ]}),
            None,
        )
        .await;
    assert_eq!(
        invalid_fields(r),
        ["name", "nodes", "nodes[0].title", "nodes[1].parent_ref"]
    );
    assert!(e.store.workflows().is_empty());
}

#[tokio::test]
async fn the_list_holds_own_and_shared_workflows_newest_first_with_filters_and_pages() {
    let e = env();
    let (alice, bob) = (editor(&user()), editor(&user()));
    let mut tagged = e
        .create(
            &alice,
            json!({"name": "Quarterly report", "tags": ["finance"]}),
        )
        .await
        .workflow;
    let bobs = e.named(&bob, "Bob's plan").await;
    let plain = e.named(&alice, "Annual summary").await;
    let deleted = e.named(&alice, "Doomed").await;
    e.status(&alice, &deleted.id, WorkflowStatus::Deleted, None)
        .await
        .unwrap();
    e.share(&bob, &bobs.id, &alice.user_id, ShareAccess::Viewer)
        .await
        .unwrap();
    tagged = e
        .status(&alice, &tagged.id, WorkflowStatus::Active, None)
        .await
        .unwrap();

    // Newest first by creation, own and shared alike, deleted ones gone; any page size.
    let want = vec![plain.id.clone(), bobs.id.clone(), tagged.id.clone()];
    for limit in [1, 2, 3, 4] {
        assert_eq!(e.list_all(&alice, limit).await, want, "limit {limit}");
    }
    assert_eq!(e.list_all(&bob, 10).await, vec![bobs.id.clone()]);
    let stranger = editor(&user());
    assert!(e.list_all(&stranger, 10).await.is_empty());

    // Filters apply to shared workflows as to own ones.
    let query = |q: ListWorkflowsQuery| ListWorkflowsQuery { limit: 10, ..q };
    let found = |page: Page<Workflow>| ids_of(&page.items);
    let by_tag = e
        .list(
            &alice,
            query(ListWorkflowsQuery {
                tag: Some("finance".into()),
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    assert_eq!(found(by_tag.clone()), vec![tagged.id.clone()]);
    assert_eq!(
        by_tag.items[0], tagged,
        "the list shows the workflow as stored"
    );
    let by_words = e
        .list(
            &alice,
            query(ListWorkflowsQuery {
                q: Some("PLAN".into()),
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    assert_eq!(found(by_words), vec![bobs.id.clone()]);
    let by_status = e
        .list(
            &alice,
            query(ListWorkflowsQuery {
                status: Some(WorkflowStatus::Draft),
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    assert_eq!(found(by_status), vec![plain.id.clone(), bobs.id.clone()]);
    let in_range = e
        .list(
            &alice,
            query(ListWorkflowsQuery {
                created_after: Some(tagged.created_at),
                created_before: Some(plain.created_at),
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    assert_eq!(found(in_range), vec![bobs.id.clone()]);
    let r = e
        .list(
            &alice,
            query(ListWorkflowsQuery {
                created_after: Some(plain.created_at),
                created_before: Some(plain.created_at),
                ..Default::default()
            }),
        )
        .await;
    assert_eq!(invalid_fields(r), ["created_before"]);

    // A page key only continues the list it came from.
    let first = e
        .list(
            &alice,
            ListWorkflowsQuery {
                limit: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let alices_key = first.next.expect("a second page");
    let r = e
        .list(
            &bob,
            ListWorkflowsQuery {
                limit: 1,
                cursor: Some(alices_key.clone()),
                ..Default::default()
            },
        )
        .await;
    assert!(matches!(r, Err(AppError::BadCursor)), "{r:?}");
    let nodes_key = {
        let c = e.create(&alice, tree_request("T")).await;
        nodes::list(&e.store, &alice, &c.workflow.id, 1, None)
            .await
            .unwrap()
            .next
            .unwrap()
    };
    let r = e
        .list(
            &alice,
            ListWorkflowsQuery {
                limit: 1,
                cursor: Some(nodes_key),
                ..Default::default()
            },
        )
        .await;
    assert!(matches!(r, Err(AppError::BadCursor)), "{r:?}");
    let second = e
        .list(
            &alice,
            ListWorkflowsQuery {
                limit: 1,
                cursor: Some(alices_key),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(ids_of(&second.items), vec![bobs.id.clone()]);

    // An API key without the read scope lists nothing.
    let mut key = alice.clone();
    key.scopes = Some(vec![Scope::WorkflowsWrite]);
    assert_forbidden(
        e.list(
            &key,
            ListWorkflowsQuery {
                limit: 10,
                ..Default::default()
            },
        )
        .await,
        "workflows:read",
    );
}

#[tokio::test]
async fn update_needs_the_version_merges_settings_and_bumps_the_version() {
    let e = env();
    let alice = editor(&user());
    let w = e
        .create(
            &alice,
            json!({"name": "Plan", "settings": {"model": "openai:m1", "max_nodes": 5}, "nodes": [{"title": "1"}, {"title": "2"}]}),
        )
        .await
        .workflow;
    let r = e.update(&alice, &w.id, None, json!({"name": "x"})).await;
    assert!(matches!(r, Err(AppError::PreconditionRequired)), "{r:?}");
    let r = e
        .update(
            &alice,
            &w.id,
            Some(1),
            json!({"name": "x", "expected_version": 2}),
        )
        .await;
    assert_eq!(invalid_fields(r), ["expected_version"]);

    e.clock.advance(Duration::minutes(5));
    let changed = e
        .update(
            &alice,
            &w.id,
            Some(1),
            json!({"name": "Plan B", "tags": ["b"], "settings": {"model": null, "timeout_s": 30}}),
        )
        .await
        .unwrap();
    assert_eq!(changed.version, 2);
    assert_eq!(changed.updated_at, e.now());
    assert_eq!(changed.created_at, w.created_at);
    assert_eq!(
        serde_json::to_value(&changed.settings).unwrap(),
        json!({"max_nodes": 5, "timeout_s": 30})
    );
    assert_eq!(e.store.workflow(&w.id).as_ref(), Some(&changed));

    // A stale version: 409 with the current one; nothing written.
    let before = e.store.snapshot();
    match e
        .update(&alice, &w.id, Some(1), json!({"name": "stale"}))
        .await
    {
        Err(AppError::VersionConflict { current_version }) => assert_eq!(current_version, 2),
        other => panic!("{other:?}"),
    }
    match e
        .update(
            &alice,
            &w.id,
            Some(1),
            json!({"settings": {"model": "openai:m2"}}),
        )
        .await
    {
        Err(AppError::VersionConflict { current_version }) => assert_eq!(current_version, 2),
        other => panic!("{other:?}"),
    }
    // max_nodes below the node count.
    match e
        .update(
            &alice,
            &w.id,
            Some(2),
            json!({"settings": {"max_nodes": 1}}),
        )
        .await
    {
        Err(AppError::MaxNodesBelowCount { node_count }) => assert_eq!(node_count, 2),
        other => panic!("{other:?}"),
    }
    let r = e
        .update(
            &alice,
            &w.id,
            Some(2),
            json!({"settings": {"max_nodes": 0}}),
        )
        .await;
    assert_eq!(invalid_fields(r), ["settings.max_nodes"]);
    assert_eq!(e.store.snapshot(), before);
}

#[tokio::test]
async fn a_node_added_between_the_settings_read_and_the_write_is_max_nodes_below_count() {
    let e = env();
    let alice = editor(&user());
    let w = e
        .create(&alice, json!({"name": "Plan", "nodes": [{"title": "1"}]}))
        .await
        .workflow;
    // Someone adds a node after the use case read the workflow at version 1.
    let id = w.id.clone();
    e.store.before(Method::ChangeWorkflow, move |s| {
        s.edit_workflow(&id, |w| w.node_count = 2)
    });
    match e
        .update(
            &alice,
            &w.id,
            Some(1),
            json!({"settings": {"max_nodes": 1}}),
        )
        .await
    {
        Err(AppError::MaxNodesBelowCount { node_count }) => assert_eq!(node_count, 2),
        other => panic!("{other:?}"),
    }
    let stored = e.store.workflow(&w.id).unwrap();
    assert_eq!((stored.version, stored.settings.max_nodes()), (1, 1000));
}

#[tokio::test]
async fn status_changes_follow_the_machine_and_delete_hides_the_workflow() {
    let e = env();
    let alice = editor(&user());
    let w = e.named(&alice, "Flow").await;
    let keep = e.named(&alice, "Kept").await;
    let active = e
        .status(&alice, &w.id, WorkflowStatus::Active, None)
        .await
        .unwrap();
    assert_eq!((active.status, active.version), (WorkflowStatus::Active, 2));
    match e.status(&alice, &w.id, WorkflowStatus::Draft, None).await {
        Err(AppError::IllegalTransition { from, to, allowed }) => {
            assert_eq!((from, to), ("active", "draft"));
            assert_eq!(allowed, ["paused", "completed", "cancelled", "deleted"]);
        }
        other => panic!("{other:?}"),
    }
    match e
        .status(&alice, &w.id, WorkflowStatus::Paused, Some(1))
        .await
    {
        Err(AppError::VersionConflict { current_version }) => assert_eq!(current_version, 2),
        other => panic!("{other:?}"),
    }
    assert_eq!(e.store.workflow(&w.id).unwrap(), active);

    // Delete: soft, out of every read and the list, the item kept as deleted.
    e.status(&alice, &w.id, WorkflowStatus::Deleted, Some(2))
        .await
        .unwrap();
    let stored = e.store.workflow(&w.id).unwrap();
    assert_eq!(
        (stored.status, stored.version),
        (WorkflowStatus::Deleted, 3)
    );
    assert_not_found(workflows::get(&e.store, &alice, &w.id).await, "workflow");
    assert_not_found(
        e.status(&alice, &w.id, WorkflowStatus::Deleted, None).await,
        "workflow",
    );
    assert_not_found(
        e.add(&alice, &w.id, json!({"title": "t"})).await,
        "workflow",
    );
    assert_eq!(e.list_all(&alice, 10).await, vec![keep.id.clone()]);
    match e
        .status(&alice, &keep.id, WorkflowStatus::Deleted, Some(7))
        .await
    {
        Err(AppError::VersionConflict { current_version }) => assert_eq!(current_version, 1),
        other => panic!("{other:?}"),
    }
}

// Nodes -----------------------------------------------------------------------------------

#[tokio::test]
async fn nodes_are_added_under_parents_and_counted() {
    let e = env();
    let alice = editor(&user());
    let w = e.named(&alice, "Tree").await;
    let root = e
        .add(
            &alice,
            &w.id,
            json!({"title": "Root", "content": "Hello there. General Kenobi!"}),
        )
        .await
        .unwrap();
    assert_eq!(
        (root.version, root.child_count, root.metrics.words),
        (1, 0, 4)
    );
    let child = e
        .add(
            &alice,
            &w.id,
            json!({"title": "Child", "parent_id": root.id, "prompt": "Continue"}),
        )
        .await
        .unwrap();
    assert_eq!(child.parent_id.as_ref(), Some(&root.id));

    assert_eq!(
        e.store.node(&w.id, &root.id),
        Some(Node {
            child_count: 1,
            ..root.clone()
        })
    );
    assert_eq!(e.store.node(&w.id, &child.id).as_ref(), Some(&child));
    assert_eq!(e.store.nodes(&w.id).len(), 2);
    let stored = e.store.workflow(&w.id).unwrap();
    assert_eq!(stored.node_count, 2);
    assert_eq!(
        (stored.version, stored.updated_at),
        (1, w.updated_at),
        "adding nodes does not change the workflow's own version"
    );
    let read = nodes::get(&e.store, &alice, &w.id, &root.id).await.unwrap();
    assert_eq!(read.child_count, 1);
    assert_not_found(
        nodes::get(&e.store, &alice, &w.id, &ids::new_id()).await,
        "node",
    );
}

#[tokio::test]
async fn a_missing_parent_is_a_parent_id_error_and_writes_nothing() {
    let e = env();
    let alice = editor(&user());
    let w = e.named(&alice, "Tree").await;
    let other = e.named(&alice, "Other").await;
    let elsewhere = e
        .add(&alice, &other.id, json!({"title": "x"}))
        .await
        .unwrap();
    let before = e.store.snapshot();
    for parent in [ids::new_id(), elsewhere.id.clone(), "nope".to_string()] {
        let r = e
            .add(
                &alice,
                &w.id,
                json!({"title": "Orphan", "parent_id": parent}),
            )
            .await;
        assert_eq!(invalid_fields(r), ["parent_id"], "{parent}");
    }
    assert_eq!(e.store.snapshot(), before);
    assert_eq!(e.store.workflow(&w.id).unwrap().node_count, 0);
}

#[tokio::test]
async fn max_nodes_is_enforced() {
    let e = env();
    let alice = editor(&user());
    let w = e
        .create(
            &alice,
            json!({"name": "Small", "settings": {"max_nodes": 2}}),
        )
        .await
        .workflow;
    e.add(&alice, &w.id, json!({"title": "1"})).await.unwrap();
    e.add(&alice, &w.id, json!({"title": "2"})).await.unwrap();
    match e.add(&alice, &w.id, json!({"title": "3"})).await {
        Err(AppError::NodeLimitReached { max_nodes }) => assert_eq!(max_nodes, 2),
        other => panic!("{other:?}"),
    }
    assert_eq!(e.store.workflow(&w.id).unwrap().node_count, 2);
    assert_eq!(e.store.nodes(&w.id).len(), 2);
    // More nodes than max_nodes at create is a validation error.
    let r = e
        .try_create(
            &alice,
            json!({"name": "x", "settings": {"max_nodes": 1}, "nodes": [{"title": "a"}, {"title": "b"}]}),
            None,
        )
        .await;
    assert_eq!(invalid_fields(r), ["nodes"]);
}

#[tokio::test]
async fn node_updates_recompute_metrics_and_refuse_stale_versions() {
    let e = env();
    let alice = editor(&user());
    let c = e
        .create(
            &alice,
            json!({"name": "T", "nodes": [{"title": "N", "content": "one", "metadata": {"a": 1, "b": 2}}]}),
        )
        .await;
    let (id, node) = (&c.workflow.id, &c.nodes[0]);
    let r = e
        .update_node(&alice, id, &node.id, None, json!({"title": "x"}))
        .await;
    assert!(matches!(r, Err(AppError::PreconditionRequired)), "{r:?}");

    let n = e
        .update_node(
            &alice,
            id,
            &node.id,
            Some(1),
            json!({"content": "Two words. Then three more words.", "status": "completed", "metadata": {"a": null, "c": 3}}),
        )
        .await
        .unwrap();
    assert_eq!((n.metrics.words, n.metrics.sentences), (6, 2));
    assert_eq!((n.status, n.version), (NodeStatus::Completed, 2));
    assert_eq!(Value::Object(n.metadata.clone()), json!({"b": 2, "c": 3}));
    assert_eq!(e.store.node(id, &node.id).as_ref(), Some(&n));

    // Stale: 409 with the current version, nothing written.
    let before = e.store.snapshot();
    match e
        .update_node(&alice, id, &node.id, Some(1), json!({"title": "stale"}))
        .await
    {
        Err(AppError::VersionConflict { current_version }) => assert_eq!(current_version, 2),
        other => panic!("{other:?}"),
    }
    let r = e
        .update_node(&alice, id, &node.id, Some(2), json!({"title": ""}))
        .await;
    assert_eq!(invalid_fields(r), ["title"]);
    assert_eq!(e.store.snapshot(), before);

    // A write landing between the read and the write loses nothing: 409 with its version.
    let (wid, nid) = (id.clone(), node.id.clone());
    e.store.before(Method::UpdateNode, move |s| {
        s.edit_node(&wid, &nid, |n| {
            n.title = "theirs".into();
            n.version = 3;
        })
    });
    match e
        .update_node(&alice, id, &node.id, Some(2), json!({"title": "mine"}))
        .await
    {
        Err(AppError::VersionConflict { current_version }) => assert_eq!(current_version, 3),
        other => panic!("{other:?}"),
    }
    assert_eq!(e.store.node(id, &node.id).unwrap().title, "theirs");
}

#[tokio::test]
async fn a_node_update_keeps_the_child_count_the_store_maintains() {
    let e = env();
    let alice = editor(&user());
    let c = e
        .create(&alice, json!({"name": "T", "nodes": [{"title": "N"}]}))
        .await;
    let (id, node) = (&c.workflow.id, &c.nodes[0]);
    // A child is added after the update read the node (child_count 0).
    let (wid, nid) = (id.clone(), node.id.clone());
    e.store.before(Method::UpdateNode, move |s| {
        s.edit_node(&wid, &nid, |n| n.child_count = 1)
    });
    let n = e
        .update_node(&alice, id, &node.id, Some(1), json!({"title": "Renamed"}))
        .await
        .unwrap();
    assert_eq!(n.child_count, 0, "the use case answers what it read");
    let stored = e.store.node(id, &node.id).unwrap();
    assert_eq!((stored.title.as_str(), stored.child_count), ("Renamed", 1));
}

#[tokio::test]
async fn deletes_refuse_children_unless_cascade_and_keep_the_counters() {
    let e = env();
    let alice = editor(&user());
    let c = e.create(&alice, tree_request("T")).await;
    let id = &c.workflow.id;
    let node = |t: &str| by_title(&c.nodes, t).id.clone();

    match e.delete_node(&alice, id, &node("a"), false).await {
        Err(AppError::NodeHasChildren { child_count }) => assert_eq!(child_count, 2),
        other => panic!("{other:?}"),
    }
    e.delete_node(&alice, id, &node("d"), false).await.unwrap();
    assert_eq!(e.store.node(id, &node("a")).unwrap().child_count, 1);
    assert_eq!(e.store.workflow(id).unwrap().node_count, 4);
    assert_not_found(nodes::get(&e.store, &alice, id, &node("d")).await, "node");

    // The subtree of a: a, b, c; the parent-less root e stays.
    e.delete_node(&alice, id, &node("a"), true).await.unwrap();
    let left: Vec<String> = e.store.nodes(id).into_iter().map(|n| n.title).collect();
    assert_eq!(left, ["e"]);
    let w = e.store.workflow(id).unwrap();
    assert_eq!((w.node_count, w.version), (1, 1));
    assert_not_found(e.delete_node(&alice, id, &node("a"), true).await, "node");
    assert_not_found(e.delete_node(&alice, id, &node("a"), false).await, "node");

    // Deleting a child lowers its parent's count.
    let c = e
        .create(&alice, json!({"name": "T2", "nodes": [{"ref": "a", "title": "a"}, {"parent_ref": "a", "title": "b"}]}))
        .await;
    let (a, b) = (&c.nodes[0].id, &c.nodes[1].id);
    e.delete_node(&alice, &c.workflow.id, b, false)
        .await
        .unwrap();
    assert_eq!(e.store.node(&c.workflow.id, a).unwrap().child_count, 0);
    e.delete_node(&alice, &c.workflow.id, a, false)
        .await
        .unwrap();
    assert_eq!(e.store.workflow(&c.workflow.id).unwrap().node_count, 0);
    assert!(e.store.nodes(&c.workflow.id).is_empty());
}

#[tokio::test]
async fn a_child_added_during_a_cascade_delete_stops_it() {
    let e = env();
    let alice = editor(&user());
    let c = e.create(&alice, tree_request("T")).await;
    let id = c.workflow.id.clone();
    let b = by_title(&c.nodes, "b").clone();
    // Between the read of the tree and the deletion, someone adds a child under b.
    let late = Node {
        id: ids::new_id(),
        parent_id: Some(b.id.clone()),
        title: "late".into(),
        child_count: 0,
        ..b.clone()
    };
    {
        let (id, b, late) = (id.clone(), b.id.clone(), late.clone());
        e.store.before(Method::DeleteNodes, move |s| {
            s.put_node(late);
            s.edit_node(&id, &b, |n| n.child_count += 1);
            s.edit_workflow(&id, |w| w.node_count += 1);
        });
    }
    let r = e
        .delete_node(&alice, &id, &by_title(&c.nodes, "a").id, true)
        .await;
    assert!(matches!(r, Err(AppError::TreeChanged)), "{r:?}");
    assert_eq!(
        e.store.nodes(&id).len(),
        6,
        "nothing was deleted: 5 and the late one"
    );
    assert!(
        e.store.node(&id, &late.id).is_some(),
        "the late child is not orphaned"
    );
    assert_eq!(e.store.workflow(&id).unwrap().node_count, 6);

    // A child added meanwhile under a node deleted without cascade: 409 with its count.
    let leaf = by_title(&c.nodes, "d").id.clone();
    {
        let (id, leaf) = (id.clone(), leaf.clone());
        e.store.before(Method::DeleteNodes, move |s| {
            s.edit_node(&id, &leaf, |n| n.child_count = 1)
        });
    }
    match e.delete_node(&alice, &id, &leaf, false).await {
        Err(AppError::NodeHasChildren { child_count }) => assert_eq!(child_count, 1),
        other => panic!("{other:?}"),
    }
    assert!(e.store.node(&id, &leaf).is_some());
}

#[tokio::test]
async fn a_cascade_of_more_than_one_transaction_deletes_the_whole_subtree() {
    let e = env();
    let alice = editor(&user());
    // 150 nodes in a chain under one root, imported (a create takes at most 98).
    let nodes: Vec<Value> = (0..150)
        .map(|i| {
            if i == 0 {
                json!({"id": "n0", "title": "n0"})
            } else {
                json!({"id": format!("n{i}"), "parent_id": format!("n{}", i - 1), "title": format!("n{i}")})
            }
        })
        .collect();
    let doc = json!({"format_version": 1, "workflow": {"name": "Chain", "status": "draft"}, "nodes": nodes});
    let c = created(e.import(&alice, doc, None).await.unwrap());
    let second = by_title(&c.nodes, "n1").id.clone();
    e.delete_node(&alice, &c.workflow.id, &second, true)
        .await
        .unwrap();
    let left = e.store.nodes(&c.workflow.id);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].child_count, 0);
    assert_eq!(e.store.workflow(&c.workflow.id).unwrap().node_count, 1);
}

#[tokio::test]
async fn node_lists_page_in_creation_order() {
    let e = env();
    let alice = editor(&user());
    let nodes: Vec<Value> = (0..5)
        .map(|i| {
            if i == 0 {
                json!({"ref": "r", "title": "n0"})
            } else {
                json!({"parent_ref": "r", "title": format!("n{i}")})
            }
        })
        .collect();
    let c = e.create(&alice, json!({"name": "T", "nodes": nodes})).await;
    let id = &c.workflow.id;
    let mut titles = Vec::new();
    let mut cursor = None;
    for _ in 0..10 {
        let page = nodes::list(&e.store, &alice, id, 2, cursor).await.unwrap();
        assert!(page.items.len() <= 2);
        titles.extend(page.items.into_iter().map(|n| n.title));
        cursor = page.next;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(titles, ["n0", "n1", "n2", "n3", "n4"]);

    // A key of one workflow's nodes does not page another's.
    let other = e.named(&alice, "Other").await;
    let key = nodes::list(&e.store, &alice, id, 1, None)
        .await
        .unwrap()
        .next
        .unwrap();
    let r = nodes::list(&e.store, &alice, &other.id, 1, Some(key)).await;
    assert!(matches!(r, Err(AppError::BadCursor)), "{r:?}");
    let stranger = editor(&user());
    assert_not_found(
        nodes::list(&e.store, &stranger, id, 10, None).await,
        "workflow",
    );
}

#[tokio::test]
async fn read_only_callers_are_refused_every_node_change_and_write_nothing() {
    let e = env();
    let (alice, bob) = (editor(&user()), editor(&user()));
    let c = e
        .create(
            &alice,
            json!({"name": "Shared", "nodes": [{"title": "Root"}]}),
        )
        .await;
    let (id, root) = (&c.workflow.id, &c.nodes[0].id);
    e.share(&alice, id, &bob.user_id, ShareAccess::Viewer)
        .await
        .unwrap();
    let vera = Principal::user(alice.user_id.clone(), Role::Viewer);
    let mut read_key = alice.clone();
    read_key.scopes = Some(vec![Scope::WorkflowsRead]);
    // The root has a child, so a delete without cascade would be a 409 for a writer.
    e.add(&alice, id, json!({"title": "Child", "parent_id": root}))
        .await
        .unwrap();

    let before = e.store.snapshot();
    // A read-only share learns nothing more before its 403: a stale version is no 409.
    assert_forbidden(
        e.update_node(&bob, id, root, Some(7), json!({"title": "Changed"}))
            .await,
        "shared with you read-only",
    );
    assert_forbidden(
        e.update(
            &bob,
            id,
            Some(7),
            json!({"settings": {"model": "openai:m"}}),
        )
        .await,
        "shared with you read-only",
    );
    for (who, why) in [
        (&bob, "shared with you read-only"),
        (&vera, "viewer role"),
        (&read_key, "scopes do not include workflows:write"),
    ] {
        // They read ...
        assert_eq!(nodes::get(&e.store, who, id, root).await.unwrap().id, *root);
        assert_eq!(
            nodes::list(&e.store, who, id, 10, None)
                .await
                .unwrap()
                .items
                .len(),
            2
        );
        // ... and change nothing.
        assert_forbidden(
            e.add(who, id, json!({"title": "Added", "parent_id": root}))
                .await,
            why,
        );
        assert_forbidden(
            e.update_node(who, id, root, Some(1), json!({"title": "Changed"}))
                .await,
            why,
        );
        assert_forbidden(e.delete_node(who, id, root, true).await, why);
        assert_forbidden(e.delete_node(who, id, root, false).await, why);
        assert_forbidden(
            e.update(who, id, Some(1), json!({"name": "Changed"})).await,
            why,
        );
        assert_forbidden(
            e.status(who, id, WorkflowStatus::Active, Some(1)).await,
            why,
        );
        assert_forbidden(e.status(who, id, WorkflowStatus::Deleted, None).await, why);
    }
    // A stranger cannot tell the workflow exists.
    let stranger = editor(&user());
    assert_not_found(
        e.add(&stranger, id, json!({"title": "x"})).await,
        "workflow",
    );
    assert_not_found(
        e.update_node(&stranger, id, root, Some(1), json!({"title": "x"}))
            .await,
        "workflow",
    );
    assert_not_found(e.delete_node(&stranger, id, root, true).await, "workflow");
    assert_not_found(
        e.update(&stranger, id, Some(1), json!({"name": "x"})).await,
        "workflow",
    );
    assert_eq!(e.store.snapshot(), before);
}

// Bulk ------------------------------------------------------------------------------------

fn bulk_request(action: &str, ids: &[&str]) -> BulkRequest {
    body(json!({"action": action, "ids": ids}))
}

#[tokio::test]
async fn bulk_reports_each_id_and_applies_the_legal_changes() {
    let e = env();
    let (alice, bob) = (editor(&user()), editor(&user()));
    let draft = e.named(&alice, "draft").await;
    let active = e.named(&alice, "active").await;
    e.status(&alice, &active.id, WorkflowStatus::Active, None)
        .await
        .unwrap();
    let cancelled = e.named(&alice, "cancelled").await;
    e.status(&alice, &cancelled.id, WorkflowStatus::Active, None)
        .await
        .unwrap();
    e.status(&alice, &cancelled.id, WorkflowStatus::Cancelled, None)
        .await
        .unwrap();
    let bobs = e.named(&bob, "bob's").await;
    let missing = ids::new_id();

    let r = bulk::apply(
        &e.store,
        &alice,
        bulk_request(
            "activate",
            &[
                &draft.id,
                &active.id,
                &cancelled.id,
                &bobs.id,
                &missing,
                "junk",
            ],
        ),
        e.now(),
    )
    .await
    .unwrap();
    let outcomes: Vec<BulkOutcome> = r.results.iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        [
            BulkOutcome::Ok,
            BulkOutcome::Conflict,
            BulkOutcome::Conflict,
            BulkOutcome::NotFound,
            BulkOutcome::NotFound,
            BulkOutcome::NotFound
        ]
    );
    assert_eq!((r.succeeded, r.failed), (1, 5));
    assert_eq!(r.results[0].status, Some(WorkflowStatus::Active));
    assert_eq!(r.results[0].version, Some(2));
    assert!(
        r.results[2]
            .detail
            .as_deref()
            .unwrap()
            .contains("allowed: deleted")
    );
    assert_eq!(r.results[4].id, missing);

    let stored = e.store.workflow(&draft.id).unwrap();
    assert_eq!((stored.status, stored.version), (WorkflowStatus::Active, 2));
    assert_eq!(e.store.workflow(&bobs.id).unwrap(), bobs);
    assert_eq!(
        e.store.workflow(&cancelled.id).unwrap().status,
        WorkflowStatus::Cancelled
    );

    let r = bulk::apply(
        &e.store,
        &alice,
        bulk_request("delete", &[&draft.id, &cancelled.id]),
        e.now(),
    )
    .await
    .unwrap();
    assert_eq!(r.succeeded, 2);
    assert_not_found(
        workflows::get(&e.store, &alice, &draft.id).await,
        "workflow",
    );
    assert_eq!(e.list_all(&alice, 10).await, vec![active.id.clone()]);
}

#[tokio::test]
async fn a_bulk_change_that_loses_a_race_is_a_conflict_and_the_rest_apply() {
    let e = env();
    let alice = editor(&user());
    let (one, two) = (e.named(&alice, "one").await, e.named(&alice, "two").await);
    let raced = two.id.clone();
    e.store.before(Method::ChangeWorkflows, move |s| {
        s.edit_workflow(&raced, |w| {
            w.status = WorkflowStatus::Active;
            w.version += 1;
        })
    });
    let r = bulk::apply(
        &e.store,
        &alice,
        bulk_request("activate", &[&one.id, &two.id]),
        e.now(),
    )
    .await
    .unwrap();
    assert_eq!(r.results[0].outcome, BulkOutcome::Ok);
    assert_eq!(r.results[1].outcome, BulkOutcome::Conflict);
    assert_eq!((r.results[1].status, r.results[1].version), (None, None));
    assert_eq!((r.succeeded, r.failed), (1, 1));
    assert_eq!(e.store.workflow(&one.id).unwrap().version, 2);
    assert_eq!(
        e.store.workflow(&two.id).unwrap().version,
        2,
        "changed once, by the other writer"
    );
}

#[tokio::test]
async fn bad_bulk_requests_and_read_only_callers_change_nothing() {
    let e = env();
    let (alice, bob) = (editor(&user()), editor(&user()));
    let w = e.named(&alice, "w").await;
    let before = e.store.snapshot();
    let many: Vec<&str> = (0..101).map(|_| w.id.as_str()).collect();
    for request in [
        bulk_request("delete", &[]),
        bulk_request("delete", &[&w.id, &w.id]),
        bulk_request("delete", &many),
    ] {
        let r = bulk::apply(&e.store, &alice, request, e.now()).await;
        assert!(matches!(r, Err(AppError::Validation(_))), "{r:?}");
    }
    assert_eq!(e.store.snapshot(), before);
    // Shared read-only: not found, as a workflow the caller may not change.
    e.share(&alice, &w.id, &bob.user_id, ShareAccess::Viewer)
        .await
        .unwrap();
    let before_bulk = e.store.snapshot();
    let r = bulk::apply(&e.store, &bob, bulk_request("pause", &[&w.id]), e.now())
        .await
        .unwrap();
    assert_eq!(r.results[0].outcome, BulkOutcome::NotFound);
    assert_eq!(e.store.snapshot(), before_bulk);
    let vera = Principal::user(alice.user_id.clone(), Role::Viewer);
    assert_forbidden(
        bulk::apply(&e.store, &vera, bulk_request("delete", &[&w.id]), e.now()).await,
        "viewer role",
    );
    assert_eq!(e.store.snapshot(), before_bulk);
    assert_eq!(
        e.store.workflow(&w.id).unwrap().status,
        WorkflowStatus::Draft
    );
}

// Shares ----------------------------------------------------------------------------------

#[tokio::test]
async fn a_share_puts_the_workflow_in_the_users_list_until_it_is_unshared() {
    let e = env();
    let (alice, bob) = (editor(&user()), editor(&user()));
    let c = e
        .create(
            &alice,
            json!({"name": "Shared plan", "nodes": [{"title": "Root"}]}),
        )
        .await;
    let id = &c.workflow.id;
    let bobs_own = e.named(&bob, "Bob's own").await;

    let list = e
        .share(&alice, id, &bob.user_id, ShareAccess::Viewer)
        .await
        .unwrap();
    assert_eq!(
        list,
        ShareList {
            workflow_id: id.clone(),
            items: vec![Share {
                user_id: bob.user_id.clone(),
                access: ShareAccess::Viewer
            }],
        }
    );
    let stored = e.store.workflow(id).unwrap();
    assert_eq!(stored.shares.get(&bob.user_id), Some(&ShareAccess::Viewer));
    assert_eq!(
        stored.version, 1,
        "sharing does not change the workflow's version"
    );
    assert_eq!(
        e.store.share_entries(&bob.user_id),
        [(id.clone(), ShareAccess::Viewer)]
    );

    // Bob reads it, its nodes and shares, and finds it in his list beside his own.
    assert_eq!(
        workflows::get(&e.store, &bob, id).await.unwrap().owner_id,
        alice.user_id
    );
    assert_eq!(
        nodes::list(&e.store, &bob, id, 10, None)
            .await
            .unwrap()
            .items,
        c.nodes
    );
    assert_eq!(shares::list(&e.store, &bob, id).await.unwrap(), list);
    assert!(transfer::export(&e.store, &bob, id, e.now()).await.is_ok());
    assert_eq!(
        e.list_all(&bob, 10).await,
        vec![bobs_own.id.clone(), id.clone()]
    );

    // Sharing again changes the access, still one entry.
    e.share(&alice, id, &bob.user_id, ShareAccess::Editor)
        .await
        .unwrap();
    assert_eq!(
        e.store.share_entries(&bob.user_id),
        [(id.clone(), ShareAccess::Editor)]
    );

    // Unshared: gone for Bob at once; unsharing again is 404.
    shares::unshare(&e.store, &alice, id, &bob.user_id)
        .await
        .unwrap();
    assert!(e.store.workflow(id).unwrap().shares.is_empty());
    assert!(e.store.share_entries(&bob.user_id).is_empty());
    assert_not_found(workflows::get(&e.store, &bob, id).await, "workflow");
    assert_eq!(e.list_all(&bob, 10).await, vec![bobs_own.id.clone()]);
    let before = e.store.snapshot();
    assert_not_found(
        shares::unshare(&e.store, &alice, id, &bob.user_id).await,
        "share",
    );
    assert_not_found(
        shares::unshare(&e.store, &alice, id, &user()).await,
        "share",
    );
    assert_eq!(e.store.snapshot(), before);
}

#[tokio::test]
async fn sharing_by_email_and_bad_share_requests() {
    let e = env();
    let alice = editor(&user());
    let dora = user();
    e.accounts.add(&dora);
    let w = e.named(&alice, "Plan").await;
    let share = |request: Value| shares::share(&e.store, &e.accounts, &alice, &w.id, body(request));

    // By email as typed: trimmed and lower-cased before the look-up.
    let list = share(json!({"email": format!("  {dora}@Example.COM "), "access": "viewer"}))
        .await
        .unwrap();
    assert_eq!(
        list.items,
        [Share {
            user_id: dora.clone(),
            access: ShareAccess::Viewer
        }]
    );
    assert_eq!(
        e.store.share_entries(&dora),
        [(w.id.clone(), ShareAccess::Viewer)]
    );

    let before = e.store.snapshot();
    let suspended = user();
    e.accounts.put(&suspended, AccountStatus::Suspended);
    e.accounts.add(&alice.user_id);
    for (request, field) in [
        (
            json!({"email": "nobody@example.com", "access": "viewer"}),
            "email",
        ),
        (
            json!({"email": "not an email", "access": "viewer"}),
            "email",
        ),
        (json!({"user_id": user(), "access": "viewer"}), "user_id"),
        (
            json!({"user_id": "not-a-ulid", "access": "viewer"}),
            "user_id",
        ),
        (json!({"user_id": suspended, "access": "viewer"}), "user_id"),
        (
            json!({"user_id": alice.user_id, "access": "editor"}),
            "user_id",
        ),
        (
            json!({"email": format!("{dora}@example.com"), "user_id": dora, "access": "viewer"}),
            "email",
        ),
        (json!({"access": "viewer"}), "email"),
    ] {
        let r = share(request.clone()).await;
        assert_eq!(invalid_fields(r), [field], "{request}");
    }
    assert_eq!(e.store.snapshot(), before);
}

#[tokio::test]
async fn only_the_owner_or_an_admin_shares_and_unshares() {
    let e = env();
    let (alice, bob, carol) = (editor(&user()), editor(&user()), editor(&user()));
    let w = e.named(&alice, "Team plan").await;
    e.share(&alice, &w.id, &bob.user_id, ShareAccess::Editor)
        .await
        .unwrap();
    e.share(&alice, &w.id, &carol.user_id, ShareAccess::Viewer)
        .await
        .unwrap();

    // Bob, an editor of it, changes it but does not share, unshare or delete it.
    let changed = e
        .update(&bob, &w.id, Some(1), json!({"name": "Revised"}))
        .await
        .unwrap();
    assert_eq!(
        (changed.version, changed.owner_id.as_str()),
        (2, alice.user_id.as_str())
    );
    let before = e.store.snapshot();
    let why = "only the workflow's owner";
    assert_forbidden(
        e.share(&bob, &w.id, &user(), ShareAccess::Viewer).await,
        why,
    );
    assert_forbidden(
        e.share(&bob, &w.id, &bob.user_id, ShareAccess::Editor)
            .await,
        why,
    );
    assert_forbidden(
        shares::unshare(&e.store, &bob, &w.id, &carol.user_id).await,
        why,
    );
    assert_forbidden(
        shares::unshare(&e.store, &bob, &w.id, &bob.user_id).await,
        why,
    );
    assert_forbidden(
        e.status(&bob, &w.id, WorkflowStatus::Deleted, None).await,
        "only the owner can delete",
    );
    // Carol, a viewer of it, is refused as read-only; a stranger gets 404.
    assert_forbidden(
        e.share(&carol, &w.id, &user(), ShareAccess::Viewer).await,
        why,
    );
    let stranger = editor(&user());
    assert_not_found(
        e.share(&stranger, &w.id, &user(), ShareAccess::Viewer)
            .await,
        "workflow",
    );
    assert_not_found(
        shares::unshare(&e.store, &stranger, &w.id, &bob.user_id).await,
        "workflow",
    );
    assert_not_found(shares::list(&e.store, &stranger, &w.id).await, "workflow");
    assert_eq!(e.store.snapshot(), before);

    // An admin shares and unshares anyone's workflow.
    let admin = Principal::user(user(), Role::Admin);
    let dave = user();
    e.share(&admin, &w.id, &dave, ShareAccess::Viewer)
        .await
        .unwrap();
    assert!(e.store.workflow(&w.id).unwrap().shares.contains_key(&dave));
    shares::unshare(&e.store, &admin, &w.id, &dave)
        .await
        .unwrap();
    assert!(!e.store.workflow(&w.id).unwrap().shares.contains_key(&dave));
}

#[tokio::test]
async fn a_read_only_share_cannot_change_the_workflow() {
    let e = env();
    let (alice, bob) = (editor(&user()), editor(&user()));
    let w = e.named(&alice, "Plan").await;
    e.share(&alice, &w.id, &bob.user_id, ShareAccess::Viewer)
        .await
        .unwrap();
    let before = e.store.snapshot();
    let why = "shared with you read-only";
    assert_forbidden(
        e.update(&bob, &w.id, Some(1), json!({"name": "x"})).await,
        why,
    );
    assert_forbidden(
        e.update(
            &bob,
            &w.id,
            Some(1),
            json!({"settings": {"model": "openai:x"}}),
        )
        .await,
        why,
    );
    assert_forbidden(
        e.status(&bob, &w.id, WorkflowStatus::Active, None).await,
        why,
    );
    assert_eq!(e.store.snapshot(), before);
    assert_eq!(
        workflows::get(&e.store, &bob, &w.id).await.unwrap(),
        w_with_share(&w, &bob)
    );

    // Revoked between the read and the write: the store's condition refuses the write.
    e.share(&alice, &w.id, &bob.user_id, ShareAccess::Editor)
        .await
        .unwrap();
    let (id, b) = (w.id.clone(), bob.user_id.clone());
    e.store.before(Method::ChangeWorkflow, move |s| {
        s.edit_workflow(&id, |w| {
            w.shares.insert(b, ShareAccess::Viewer);
        })
    });
    assert_forbidden(
        e.update(&bob, &w.id, Some(1), json!({"name": "late"}))
            .await,
        why,
    );
    assert_eq!(e.store.workflow(&w.id).unwrap().name, "Plan");
}

fn w_with_share(w: &Workflow, user: &Principal) -> Workflow {
    let mut w = w.clone();
    w.shares.insert(user.user_id.clone(), ShareAccess::Viewer);
    w
}

#[tokio::test]
async fn a_shared_workflow_deleted_by_its_owner_leaves_the_users_list() {
    let e = env();
    let (alice, bob) = (editor(&user()), editor(&user()));
    let w = e.named(&alice, "Plan").await;
    let kept = e.named(&alice, "Kept").await;
    for id in [&w.id, &kept.id] {
        e.share(&alice, id, &bob.user_id, ShareAccess::Viewer)
            .await
            .unwrap();
    }
    e.status(&alice, &w.id, WorkflowStatus::Deleted, None)
        .await
        .unwrap();
    assert_not_found(workflows::get(&e.store, &bob, &w.id).await, "workflow");
    assert_eq!(e.list_all(&bob, 1).await, vec![kept.id.clone()]);
    // The share entry stays behind; the list leaves it out.
    assert_eq!(e.store.share_entries(&bob.user_id).len(), 2);
}

// Transfer --------------------------------------------------------------------------------

/// The document with the export time removed and node ids replaced by their position.
fn normalised(doc: &ExportDocument) -> Value {
    let mut doc = serde_json::to_value(doc).unwrap();
    doc.as_object_mut().unwrap().remove("exported_at");
    let index: HashMap<String, usize> = doc["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, n)| (n["id"].as_str().unwrap().to_string(), i))
        .collect();
    for n in doc["nodes"].as_array_mut().unwrap() {
        n["id"] = json!(index[n["id"].as_str().unwrap()]);
        if let Some(p) = n["parent_id"].as_str() {
            n["parent_id"] = json!(index[p]);
        }
    }
    doc
}

#[tokio::test]
async fn export_then_import_gives_the_same_tree_under_new_ids() {
    let e = env();
    let alice = editor(&user());
    let c = e
        .create(
            &alice,
            json!({"name": "Saga", "description": "d", "tags": ["t"], "settings": {"model": "openai:m", "extra": {"k": [1, 2]}}, "nodes": [
                {"ref": "a", "title": "A", "content": "Alpha text.", "priority": 4, "metadata": {"x": 1}},
                {"ref": "b", "parent_ref": "a", "title": "B", "prompt": "continue", "status": "completed", "tags": ["n"]},
                {"parent_ref": "b", "title": "C"},
                {"title": "Root 2"}
            ]}),
        )
        .await;
    let id = &c.workflow.id;
    e.status(&alice, id, WorkflowStatus::Active, None)
        .await
        .unwrap();
    let first = transfer::export(&e.store, &alice, id, e.now())
        .await
        .unwrap();
    assert_eq!(first.exported_at, Some(e.now()));
    assert_eq!(first.workflow.status, WorkflowStatus::Active);
    assert_eq!(first.nodes.len(), 4);

    let document = serde_json::to_value(&first).unwrap();
    let imported = created(e.import(&alice, document, None).await.unwrap());
    let new_id = &imported.workflow.id;
    assert_ne!(new_id, id);
    assert_eq!(imported.workflow.node_count, 4);
    assert_eq!(imported.workflow.version, 1);
    assert_eq!(e.store.workflow(new_id).as_ref(), Some(&imported.workflow));
    assert_eq!(e.store.nodes(new_id), imported.nodes);
    let counts: Vec<u64> = imported.nodes.iter().map(|n| n.child_count).collect();
    let old_counts: Vec<u64> = c.nodes.iter().map(|n| n.child_count).collect();
    assert_eq!(counts, old_counts);

    let second = transfer::export(&e.store, &alice, new_id, e.now())
        .await
        .unwrap();
    assert_eq!(normalised(&second), normalised(&first));
    let old_ids: Vec<&String> = first.nodes.iter().map(|n| &n.id).collect();
    assert!(second.nodes.iter().all(|n| !old_ids.contains(&&n.id)));
    // The original is untouched.
    assert_eq!(e.store.nodes(id), c.nodes);
}

#[tokio::test]
async fn import_refuses_bad_documents_and_read_only_callers() {
    let e = env();
    let alice = editor(&user());
    let ok_workflow = json!({"name": "W", "status": "draft"});
    let cases = [
        (
            json!({"format_version": 2, "workflow": ok_workflow, "nodes": []}),
            "format_version",
        ),
        (
            json!({"format_version": 1, "workflow": {"name": "W", "status": "deleted"}, "nodes": []}),
            "workflow.status",
        ),
        (
            json!({"format_version": 1, "workflow": ok_workflow, "nodes": [{"id": "a", "parent_id": "zz", "title": "a"}]}),
            "nodes[0].parent_id",
        ),
        (
            json!({"format_version": 1, "workflow": ok_workflow, "nodes": [{"id": "a", "title": "a"}, {"id": "a", "title": "b"}]}),
            "nodes[1].id",
        ),
    ];
    for (doc, field) in cases {
        let fields = invalid_fields(e.import(&alice, doc.clone(), None).await);
        assert_eq!(fields[0], field, "{doc}");
    }
    let vera = Principal::user(user(), Role::Viewer);
    assert_forbidden(
        e.import(
            &vera,
            json!({"format_version": 1, "workflow": ok_workflow, "nodes": []}),
            None,
        )
        .await,
        "viewer role",
    );
    assert!(e.store.workflows().is_empty());
}

#[tokio::test]
async fn import_with_an_idempotency_key_replays() {
    let e = env();
    let alice = editor(&user());
    let doc = json!({"format_version": 1, "workflow": {"name": "Big", "status": "draft"}, "nodes": [
        {"id": "r", "title": "root"}, {"id": "c", "parent_id": "r", "title": "child"}
    ]});
    let import = |document: Value, k: IdempotencyKey| e.import(&alice, document, Some(k));
    let first = created(import(doc.clone(), key("imp-1", "h1")).await.unwrap());
    let record = e.store.idempotency_record(&alice.user_id, "imp-1").unwrap();
    assert_eq!(record.location, first.workflow.id);
    assert_eq!((record.status, record.request_hash.as_str()), (201, "h1"));
    assert_eq!(record.expires_at, e.now() + Duration::hours(24));

    e.clock.advance(Duration::minutes(10));
    let (status, replay) = replayed(import(doc.clone(), key("imp-1", "h1")).await.unwrap());
    assert_eq!(status, 201);
    assert_eq!(
        serde_json::from_str::<CreatedWorkflow>(&replay).unwrap(),
        first
    );
    assert_eq!(
        e.store.workflows().len(),
        1,
        "one import, however often sent"
    );

    let r = import(doc.clone(), key("imp-1", "h2")).await;
    assert!(matches!(r, Err(AppError::IdempotencyKeyReused)), "{r:?}");
    assert_eq!(e.store.workflows().len(), 1);

    // A day later the key is free again.
    e.clock.advance(Duration::hours(24));
    let again = created(import(doc, key("imp-1", "h2")).await.unwrap());
    assert_ne!(again.workflow.id, first.workflow.id);
    assert_eq!(e.store.workflows().len(), 2);
    assert_eq!(
        e.store
            .idempotency_record(&alice.user_id, "imp-1")
            .unwrap()
            .location,
        again.workflow.id
    );
}

// Idempotency -----------------------------------------------------------------------------

#[tokio::test]
async fn a_create_replays_with_the_same_request_and_refuses_another() {
    let e = env();
    let alice = editor(&user());
    let request = json!({"name": "Once", "nodes": [{"title": "n"}]});
    let first = created(
        e.try_create(&alice, request.clone(), Some(key("k-1", "h1")))
            .await
            .unwrap(),
    );
    let (status, replay) = replayed(
        e.try_create(&alice, request.clone(), Some(key("k-1", "h1")))
            .await
            .unwrap(),
    );
    assert_eq!(status, 201);
    assert_eq!(
        serde_json::from_str::<CreatedWorkflow>(&replay).unwrap(),
        first
    );
    let before = e.store.snapshot();
    let r = e
        .try_create(&alice, json!({"name": "Other"}), Some(key("k-1", "h2")))
        .await;
    assert!(matches!(r, Err(AppError::IdempotencyKeyReused)), "{r:?}");
    assert_eq!(e.store.snapshot(), before);
    assert_eq!(e.store.workflows(), std::slice::from_ref(&first.workflow));

    // Keys are per user: Bob's "k-1" is his own.
    let bob = editor(&user());
    let bobs = created(
        e.try_create(&bob, request, Some(key("k-1", "h1")))
            .await
            .unwrap(),
    );
    assert_eq!(bobs.workflow.owner_id, bob.user_id);
    assert_eq!(e.store.workflows().len(), 2);
}

#[tokio::test]
async fn a_replay_too_large_to_keep_reads_the_workflow_again() {
    let e = env();
    let alice = editor(&user());
    let big = "word ".repeat(8000);
    let request = json!({"name": "Big", "nodes": [{"title": "a", "content": big}, {"title": "b", "content": big}]});
    let first = created(
        e.try_create(&alice, request.clone(), Some(key("big", "h")))
            .await
            .unwrap(),
    );
    let record = e.store.idempotency_record(&alice.user_id, "big").unwrap();
    assert!(record.body.is_empty(), "the response was too large to keep");
    assert_eq!(record.location, first.workflow.id);

    let (status, replay) = replayed(
        e.try_create(&alice, request.clone(), Some(key("big", "h")))
            .await
            .unwrap(),
    );
    assert_eq!(status, 201);
    assert_eq!(
        serde_json::from_str::<CreatedWorkflow>(&replay).unwrap(),
        first
    );

    // Read again, the replay shows the workflow as it is now.
    let active = e
        .status(&alice, &first.workflow.id, WorkflowStatus::Active, None)
        .await
        .unwrap();
    let (_, replay) = replayed(
        e.try_create(&alice, request, Some(key("big", "h")))
            .await
            .unwrap(),
    );
    assert_eq!(
        serde_json::from_str::<CreatedWorkflow>(&replay)
            .unwrap()
            .workflow,
        active
    );
    assert_eq!(e.store.workflows().len(), 1);
}

#[tokio::test]
async fn a_node_add_replays_with_the_same_request_and_refuses_another() {
    let e = env();
    let alice = editor(&user());
    let w = e.named(&alice, "Tree").await;
    let first = created(
        e.add_with_key(
            &alice,
            &w.id,
            json!({"title": "Once"}),
            Some(key("node-1", "h1")),
        )
        .await
        .unwrap(),
    );
    let record = e
        .store
        .idempotency_record(&alice.user_id, "node-1")
        .unwrap();
    assert_eq!(record.location, format!("{}/{}", w.id, first.id));
    let (status, replay) = replayed(
        e.add_with_key(
            &alice,
            &w.id,
            json!({"title": "Once"}),
            Some(key("node-1", "h1")),
        )
        .await
        .unwrap(),
    );
    assert_eq!(status, 201);
    assert_eq!(serde_json::from_str::<Node>(&replay).unwrap(), first);
    let r = e
        .add_with_key(
            &alice,
            &w.id,
            json!({"title": "Other"}),
            Some(key("node-1", "h2")),
        )
        .await;
    assert!(matches!(r, Err(AppError::IdempotencyKeyReused)), "{r:?}");
    assert_eq!(e.store.workflow(&w.id).unwrap().node_count, 1);
    assert_eq!(e.store.nodes(&w.id), [first]);
}

// Failures of the store ------------------------------------------------------------------

#[tokio::test]
async fn an_unavailable_store_is_unavailable_to_the_caller_and_nothing_is_written() {
    let e = env();
    let alice = editor(&user());
    let w = e.named(&alice, "Plan").await;

    e.store.fail_next("throttled");
    match workflows::get(&e.store, &alice, &w.id).await {
        Err(AppError::Unavailable(m)) => assert_eq!(m, "throttled"),
        other => panic!("{other:?}"),
    }
    // Only the next call fails.
    assert_eq!(workflows::get(&e.store, &alice, &w.id).await.unwrap(), w);

    let before = e.store.snapshot();
    e.store.fail_next("throttled");
    let r = e
        .try_create(&alice, json!({"name": "x"}), Some(key("k", "h")))
        .await;
    assert!(matches!(r, Err(AppError::Unavailable(_))), "{r:?}");
    e.store.fail_next("throttled");
    let r = e.add(&alice, &w.id, json!({"title": "n"})).await;
    assert!(matches!(r, Err(AppError::Unavailable(_))), "{r:?}");
    // A write failing after its read: the read went through, the write did not.
    e.store
        .before(Method::ChangeWorkflow, |s| s.fail_next("unreachable"));
    let r = e
        .update(
            &alice,
            &w.id,
            Some(1),
            json!({"settings": {"model": "openai:m"}}),
        )
        .await;
    assert!(matches!(r, Err(AppError::Unavailable(_))), "{r:?}");
    assert_eq!(e.store.snapshot(), before);
    assert!(e.store.idempotency_record(&alice.user_id, "k").is_none());
}
