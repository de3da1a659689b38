//! [`Workflows`] over the table: create (with nodes), read, list and conditional changes.

use super::*;

impl Workflows for DynamoStore {
    fn create_workflow<'a>(
        &'a self,
        workflow: &'a Workflow,
        nodes: &'a [Node],
        idempotency: Option<&'a IdempotencyRecord>,
    ) -> Fut<'a, ()> {
        Box::pin(async move {
            if 1 + nodes.len() + usize::from(idempotency.is_some()) > TX_MAX {
                return self.create_in_chunks(workflow, nodes, idempotency).await;
            }
            let mut actions = vec![self.put_new(workflow_item(workflow, true)?)?];
            let mut roles = vec![Role::Workflow];
            for node in nodes {
                actions.push(self.put_new(node_item(node)?)?);
                roles.push(Role::Node);
            }
            if let Some(r) = idempotency {
                actions.push(self.put_idempotency(r)?);
                roles.push(Role::Idempotency);
            }
            self.transact_roles(actions, &roles).await
        })
    }
    fn get_workflow<'a>(&'a self, id: &'a str) -> Fut<'a, Option<Workflow>> {
        Box::pin(async move {
            match self.table.get(workflow_key(id), None).await? {
                Some(item) => workflow_from(item),
                None => Ok(None),
            }
        })
    }
    fn get_workflows<'a>(&'a self, ids: &'a [String]) -> Fut<'a, Vec<Workflow>> {
        Box::pin(async move {
            if ids.is_empty() {
                return Ok(vec![]);
            }
            let items = self
                .table
                .batch_get(ids.iter().map(|id| workflow_key(id)).collect())
                .await?;
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                out.extend(workflow_from(item)?);
            }
            Ok(out)
        })
    }
    fn get_tree<'a>(&'a self, id: &'a str) -> Fut<'a, Option<(Workflow, Vec<Node>)>> {
        Box::pin(async move {
            let mut workflow = None;
            let mut nodes = Vec::new();
            let mut start = None;
            loop {
                let (items, last) = self.query_partition(id, None, start).await?;
                for item in items {
                    if is_node(&item) {
                        nodes.push(node_from(item)?);
                    } else {
                        match workflow_from(item)? {
                            Some(w) => workflow = Some(w),
                            None => return Ok(None),
                        }
                    }
                }
                if workflow.is_none() || last.is_none() {
                    break;
                }
                start = last;
            }
            Ok(workflow.map(|w| (w, nodes)))
        })
    }
    fn list_workflows<'a>(
        &'a self,
        owner_id: &'a str,
        filter: &'a WorkflowFilter,
        limit: u32,
        after: Option<&'a PageKey>,
    ) -> Fut<'a, Page<Workflow>> {
        Box::pin(async move {
            let owner = owner_pk(owner_id);
            let low = owner_sk_after(filter.created_after);
            let high = owner_sk_before(filter.created_before);
            if let Some(key) = after {
                // A key from this owner's list and inside this query's time range (DynamoDB
                // refuses a start key outside the key condition, e.g. a cursor reused with other
                // filters).
                let own = key.0.get(SK).map(String::as_str) == Some(WORKFLOW_SK)
                    && key.0.get(PK).is_some_and(|pk| pk.starts_with("WF#"));
                let shared = key.0.get(SK).is_some_and(|sk| sk.starts_with("USER#"))
                    && key
                        .0
                        .get(PK)
                        .is_some_and(|pk| pk.starts_with(SHARE_PK_PREFIX));
                let ok = key.0.len() == 4
                    && key.0.get(GSI1PK) == Some(&owner)
                    && (own || shared)
                    && key
                        .0
                        .get(GSI1SK)
                        .is_some_and(|sk| *sk >= low && *sk <= high);
                if !ok {
                    return Err(StoreError::BadPageKey);
                }
            }
            let mut e = Expr::default();
            let condition = format!(
                "{} = {} AND {} BETWEEN {} AND {}",
                e.name(GSI1PK),
                e.s(owner),
                e.name(GSI1SK),
                e.s(low),
                e.s(high),
            );
            let mut filters = Vec::new();
            if let Some(st) = filter.status {
                filters.push(format!("{} = {}", e.name("status"), e.s(st.as_str())));
            }
            if let Some(tag) = &filter.tag {
                filters.push(format!(
                    "contains({}, {})",
                    e.name("tags"),
                    e.s(tag.as_str())
                ));
            }
            for word in &filter.name_words {
                filters.push(format!(
                    "contains({}, {})",
                    e.name(SEARCH_TEXT),
                    e.s(format!(" {word}"))
                ));
            }
            // Share entries (workflows shared with this user) have none of the filtered
            // attributes: they pass here and are filtered once their workflow is read.
            if !filters.is_empty() {
                filters = vec![format!(
                    "({}) OR attribute_exists({})",
                    filters.join(" AND "),
                    e.name(SHARE_ACCESS)
                )];
            }
            // Only what a workflow is made of: keys and search text are not sent back, which
            // saves parsing them for every item of the page.
            let projection = WORKFLOW_FIELDS
                .iter()
                .chain([&SHARE_ACCESS])
                .map(|f| e.name(f))
                .collect::<Vec<_>>()
                .join(", ");
            let response = self
                .table
                .client
                .query()
                .table_name(self.table.name())
                .index_name(GSI1)
                .key_condition_expression(condition)
                .projection_expression(projection)
                .set_filter_expression((!filters.is_empty()).then(|| filters.join(" AND ")))
                .set_expression_attribute_names(e.names_opt())
                .set_expression_attribute_values(e.values_opt())
                .scan_index_forward(false)
                .limit(limit as i32)
                .set_exclusive_start_key(after.map(start_key))
                .send()
                .await
                .map_err(classify)?;
            let next = page_key(response.last_evaluated_key.as_ref());
            let found = response.items.unwrap_or_default();
            // Shared workflows are read in one more request, only when the page has some.
            let shared_ids: Vec<String> = found
                .iter()
                .filter(|item| item.contains_key(SHARE_ACCESS))
                .filter_map(|item| item.get("id").and_then(|v| v.as_s().ok()).cloned())
                .collect();
            let mut shared: HashMap<String, Workflow> = if shared_ids.is_empty() {
                HashMap::new()
            } else {
                self.get_workflows(&shared_ids)
                    .await?
                    .into_iter()
                    .filter(|w| {
                        w.status != WorkflowStatus::Deleted
                            && w.shares.contains_key(owner_id)
                            && filter.matches(w)
                    })
                    .map(|w| (w.id.clone(), w))
                    .collect()
            };
            let mut items = Vec::new();
            for item in found {
                if item.contains_key(SHARE_ACCESS) {
                    if let Some(AttributeValue::S(id)) = item.get("id") {
                        items.extend(shared.remove(id));
                    }
                } else {
                    items.extend(workflow_from(item)?);
                }
            }
            Ok(Page { items, next })
        })
    }
    fn change_workflow<'a>(&'a self, change: &'a WorkflowChange) -> Fut<'a, Workflow> {
        Box::pin(async move {
            let p = workflow_update_parts(change)?;
            let (mut update, mut names, mut values) =
                (p.update, p.expr.names_opt(), p.expr.values_opt());
            crate::aws::dynamo::stamp::update(&p.key, &mut update, &mut names, &mut values);
            let result = self
                .table
                .client
                .update_item()
                .table_name(self.table.name())
                .set_key(Some(p.key))
                .update_expression(update)
                .condition_expression(p.condition)
                .set_expression_attribute_names(names)
                .set_expression_attribute_values(values)
                .return_values(ReturnValue::AllNew)
                .return_values_on_condition_check_failure(ALL_OLD)
                .send()
                .await;
            match result {
                Ok(out) => match out.attributes.map(workflow_from).transpose()?.flatten() {
                    Some(w) => Ok(w),
                    None => Err(StoreError::Internal("update returned no workflow".into())),
                },
                Err(err) => match err.as_service_error() {
                    Some(UpdateItemError::ConditionalCheckFailedException(c)) => {
                        Err(StoreError::WorkflowRejected(match c.item() {
                            Some(item) => workflow_from(item.clone())?.map(Box::new),
                            None => None,
                        }))
                    }
                    _ => Err(classify(err)),
                },
            }
        })
    }
    fn change_workflows<'a>(
        &'a self,
        changes: &'a [WorkflowChange],
    ) -> Fut<'a, Vec<ChangeOutcome>> {
        Box::pin(async move {
            let mut rejected = vec![false; changes.len()];
            let mut pending: Vec<usize> = (0..changes.len()).collect();
            for _ in 0..TX_ATTEMPTS {
                if pending.is_empty() {
                    break;
                }
                let mut actions = Vec::with_capacity(pending.len());
                for &i in &pending {
                    actions.push(workflow_update_parts(&changes[i])?.action(self.table.name())?);
                }
                match self.table.transact(actions).await {
                    Ok(()) => pending.clear(),
                    Err(TxError::Other(e)) => return Err(e),
                    Err(TxError::Cancelled(reasons)) => {
                        let failed: Vec<usize> = pending
                            .iter()
                            .zip(&reasons)
                            .filter(|(_, r)| r.code() == Some("ConditionalCheckFailed"))
                            .map(|(&i, _)| i)
                            .collect();
                        for &i in &failed {
                            rejected[i] = true;
                        }
                        pending.retain(|i| !failed.contains(i));
                    }
                }
            }
            if !pending.is_empty() {
                return Err(StoreError::Unavailable(
                    "bulk change kept conflicting".into(),
                ));
            }
            Ok(rejected
                .into_iter()
                .map(|r| {
                    if r {
                        ChangeOutcome::Rejected
                    } else {
                        ChangeOutcome::Done
                    }
                })
                .collect())
        })
    }
}
