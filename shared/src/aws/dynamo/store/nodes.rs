//! [`Nodes`] over the table: each write a transaction with its workflow's condition.

use super::*;

impl Nodes for DynamoStore {
    fn add_node<'a>(
        &'a self,
        actor: &'a Principal,
        node: &'a Node,
        idempotency: Option<&'a IdempotencyRecord>,
    ) -> Fut<'a, ()> {
        Box::pin(async move {
            let workflow = counter_parts(workflow_key(&node.workflow_id), "node_count", 1, |e| {
                let w = writable(e, actor);
                format!(
                    "{w} AND {} < {}",
                    e.name("node_count"),
                    e.path(&["settings", "max_nodes"])
                )
            });
            let mut actions = vec![workflow.action(self.table.name())?];
            let mut roles = vec![Role::Workflow];
            if let Some(parent) = &node.parent_id {
                let parent =
                    counter_parts(node_key(&node.workflow_id, parent), "child_count", 1, |e| {
                        format!("attribute_exists({})", e.name(PK))
                    });
                actions.push(parent.action(self.table.name())?);
                roles.push(Role::Parent);
            }
            actions.push(self.put_new(node_item(node)?)?);
            roles.push(Role::Node);
            if let Some(r) = idempotency {
                actions.push(self.put_idempotency(r)?);
                roles.push(Role::Idempotency);
            }
            self.transact_roles(actions, &roles).await
        })
    }
    fn get_node<'a>(
        &'a self,
        workflow_id: &'a str,
        node_id: &'a str,
    ) -> Fut<'a, (Option<Workflow>, Option<Node>)> {
        Box::pin(async move {
            let items = self
                .table
                .batch_get(vec![
                    workflow_key(workflow_id),
                    node_key(workflow_id, node_id),
                ])
                .await?;
            let mut workflow = None;
            let mut node = None;
            for item in items {
                if is_node(&item) {
                    node = Some(node_from(item)?);
                } else {
                    workflow = workflow_from(item)?;
                }
            }
            Ok((workflow, node))
        })
    }
    fn list_nodes<'a>(
        &'a self,
        workflow_id: &'a str,
        limit: u32,
        after: Option<&'a PageKey>,
    ) -> Fut<'a, (Option<Workflow>, Page<Node>)> {
        Box::pin(async move {
            let (workflow, items, last) = match after {
                None => {
                    // The workflow item sorts first: one Query answers the first page.
                    let (mut items, last) = self
                        .query_partition(workflow_id, Some(limit as i32 + 1), None)
                        .await?;
                    let workflow = match items.first() {
                        Some(first) if !is_node(first) => workflow_from(items.remove(0))?,
                        _ => None,
                    };
                    (workflow, items, last)
                }
                Some(key) => {
                    let ok = key.0.len() == 2
                        && key.0.get(PK) == Some(&workflow_pk(workflow_id))
                        && key
                            .0
                            .get(SK)
                            .is_some_and(|sk| sk.starts_with(NODE_SK_PREFIX));
                    if !ok {
                        return Err(StoreError::BadPageKey);
                    }
                    let (workflow, page) = tokio::join!(
                        self.table.get(workflow_key(workflow_id), None),
                        self.query_partition(workflow_id, Some(limit as i32), Some(start_key(key)))
                    );
                    let workflow = match workflow? {
                        Some(item) => workflow_from(item)?,
                        None => None,
                    };
                    let (items, last) = page?;
                    (workflow, items, last)
                }
            };
            let nodes = items
                .into_iter()
                .filter(is_node)
                .map(node_from)
                .collect::<Result<Vec<_>, _>>()?;
            Ok((
                workflow,
                Page {
                    items: nodes,
                    next: page_key(last.as_ref()),
                },
            ))
        })
    }
    fn update_node<'a>(
        &'a self,
        actor: &'a Principal,
        node: &'a Node,
        expected_version: u64,
    ) -> Fut<'a, ()> {
        Box::pin(async move {
            // Only the node's own fields are written, if the stored node is at the version read.
            let update = node_own_fields_update(node, |e| {
                format!(
                    "attribute_exists({}) AND {} = {}",
                    e.name(PK),
                    e.name("version"),
                    e.n(expected_version)
                )
            })?;
            let actions = vec![
                self.workflow_check(actor, &node.workflow_id)?,
                update.action(self.table.name())?,
            ];
            self.transact_roles(actions, &[Role::Workflow, Role::Node])
                .await
        })
    }
    fn delete_nodes<'a>(
        &'a self,
        actor: &'a Principal,
        workflow_id: &'a str,
        plan: &'a [NodeDeletion],
        parent_id: Option<&'a str>,
    ) -> Fut<'a, ()> {
        Box::pin(async move {
            // Two actions of each transaction are the counters; the rest deletes nodes.
            let chunks: Vec<&[NodeDeletion]> = plan.chunks(TX_MAX - 2).collect();
            for (i, chunk) in chunks.iter().enumerate() {
                let workflow = counter_parts(
                    workflow_key(workflow_id),
                    "node_count",
                    -(chunk.len() as i64),
                    |e| writable(e, actor),
                );
                let mut actions = vec![workflow.action(self.table.name())?];
                let mut roles = vec![Role::Workflow];
                for d in chunk.iter() {
                    let mut e = Expr::default();
                    let condition = format!(
                        "attribute_exists({}) AND {} = {}",
                        e.name(PK),
                        e.name("child_count"),
                        e.n(d.child_count)
                    );
                    let delete = Delete::builder()
                        .table_name(self.table.name())
                        .set_key(Some(node_key(workflow_id, &d.id)))
                        .condition_expression(condition)
                        .set_expression_attribute_names(e.names_opt())
                        .set_expression_attribute_values(e.values_opt())
                        .return_values_on_condition_check_failure(ALL_OLD)
                        .build()
                        .map_err(build)?;
                    actions.push(TransactWriteItem::builder().delete(delete).build());
                    roles.push(Role::Node);
                }
                if let (true, Some(parent)) = (i + 1 == chunks.len(), parent_id) {
                    let parent =
                        counter_parts(node_key(workflow_id, parent), "child_count", -1, |e| {
                            format!("attribute_exists({})", e.name(PK))
                        });
                    actions.push(parent.action(self.table.name())?);
                    roles.push(Role::Parent);
                }
                self.transact_roles(actions, &roles).await?;
            }
            Ok(())
        })
    }
}
