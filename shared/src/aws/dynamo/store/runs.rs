//! [`Runs`] over the table. A run is one item that holds its steps as a list (at most 100
//! steps of a few hundred bytes: far below the item limit), so reading a run is one GetItem (one
//! BatchGetItem with its workflow and a step's nodes, for an attempt), claiming a step one conditional UpdateItem on `steps[i]`, and committing a step one
//! transaction of the run item (conditional on the claim and the run's version) with the node.
//!
//! | item | `PK` | `SK` | `GSI1PK` | `GSI1SK` | `GSI2PK` | `GSI2SK` |
//! | --- | --- | --- | --- | --- | --- | --- |
//! | run with its steps | `RUN#<run_id>` | `#RUN` | `RUNS#<workflow_id>` | `RUN#<created_at>#<run_id>` | `ACTIVE_RUNS#<0..3>` while not over | `<run_id>` |
//!
//! `GSI2` is sparse: a run is in it from its start until it succeeds, fails or is cancelled
//! (every write of the run sets or removes its keys), spread over 4 partitions by the run id's
//! last character. It projects `workflow_id` only. The scheduler's sweep reads it (4 Queries)
//! to find runs whose step messages were lost ([`crate::app::runs::sweep`]), so no Scan.

use super::*;
use crate::domain::run::{Run, StatusMachine, Step, StepStatus};

const RUN_SK: &str = "#RUN";
const STEPS: &str = "steps";

fn run_key(run_id: &str) -> Item {
    HashMap::from([
        (PK.into(), s(format!("RUN#{run_id}"))),
        (SK.into(), s(RUN_SK)),
    ])
}

fn runs_pk(workflow_id: &str) -> String {
    format!("RUNS#{workflow_id}")
}

fn step_value(step: &Step) -> Result<AttributeValue, StoreError> {
    Ok(AttributeValue::M(to_item(step, HashMap::new())?))
}

/// The run item: the run's attributes, its steps, and its place in its workflow's list.
fn run_item(run: &Run, steps: &[Step]) -> Result<Item, StoreError> {
    let mut item = to_item(run, run_key(&run.id))?;
    item.insert("type".into(), s("run"));
    item.insert(
        STEPS.into(),
        AttributeValue::L(steps.iter().map(step_value).collect::<Result<_, _>>()?),
    );
    item.insert(GSI1PK.into(), s(runs_pk(&run.workflow_id)));
    item.insert(
        GSI1SK.into(),
        s(format!("RUN#{}#{}", sort_time(run.created_at), run.id)),
    );
    if active(run) {
        item.insert(GSI2PK.into(), s(active_pk(&run.id)));
        item.insert(GSI2SK.into(), s(run.id.as_str()));
    }
    Ok(item)
}

fn run_from(mut item: Item) -> Result<(Run, Vec<Step>), StoreError> {
    let steps = match item.remove(STEPS) {
        Some(AttributeValue::L(list)) => list
            .into_iter()
            .map(|v| match v {
                AttributeValue::M(m) => from_item::<Step>(m),
                _ => Err(StoreError::Internal("a step that is not a map".into())),
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => Vec::new(),
    };
    Ok((from_item::<Run>(item)?, steps))
}

/// The run of `item` with its steps in plan order.
pub(crate) fn run_with_steps(item: Item) -> Result<(Run, Vec<Step>), StoreError> {
    let (run, mut steps) = run_from(item)?;
    steps.sort_by_key(|s| s.position);
    Ok((run, steps))
}

/// The run of `item` with its steps in plan order, if it belongs to `workflow_id`.
fn run_of(item: Item, workflow_id: &str) -> Result<Option<(Run, Vec<Step>)>, StoreError> {
    let (run, steps) = run_with_steps(item)?;
    Ok((run.workflow_id == workflow_id).then_some((run, steps)))
}

/// The runs that are not over, in the sparse index `GSI2`.
const ACTIVE_RUNS: &str = "ACTIVE_RUNS";

/// `GSI2PK` of an active run.
fn active_pk(run_id: &str) -> String {
    sparse_pk(ACTIVE_RUNS, run_id)
}

/// Whether a run belongs in the index of runs that are not over (the sweep's): anything but
/// succeeded, failed and cancelled.
fn active(run: &Run) -> bool {
    !run.status.is_terminal()
}

/// The update expression writing every attribute of `run` plus `extra` `SET`s, keeping it in
/// the active-runs index while it is not over and taking it out when it is.
fn run_update(e: &mut Expr, run: &Run, extra: Vec<String>) -> Result<String, StoreError> {
    let mut sets = run_sets(e, run)?;
    sets.extend(extra);
    if active(run) {
        sets.push(format!("{} = {}", e.name(GSI2PK), e.s(active_pk(&run.id))));
        sets.push(format!("{} = {}", e.name(GSI2SK), e.s(run.id.as_str())));
        Ok(format!("SET {}", sets.join(", ")))
    } else {
        Ok(format!(
            "SET {} REMOVE {}, {}",
            sets.join(", "),
            e.name(GSI2PK),
            e.name(GSI2SK)
        ))
    }
}

/// `SET` of every attribute of `run` (not its keys or steps).
fn run_sets(e: &mut Expr, run: &Run) -> Result<Vec<String>, StoreError> {
    Ok(to_item(run, HashMap::new())?
        .into_iter()
        .map(|(k, v)| format!("{} = {}", e.name(&k), e.value(v)))
        .collect())
}

/// The path of step `i`'s attribute `field` (`#steps[i].#field`).
fn step_path(e: &mut Expr, i: u32, field: &str) -> String {
    format!("{}[{i}].{}", e.name(STEPS), e.name(field))
}

impl Runs for DynamoStore {
    fn create_run<'a>(
        &'a self,
        actor: &'a Principal,
        run: &'a Run,
        steps: &'a [Step],
        new_nodes: &'a [Node],
        max: u64,
        idempotency: Option<&'a IdempotencyRecord>,
    ) -> Fut<'a, ()> {
        Box::pin(async move {
            let mut actions = vec![self.put_new(run_item(run, steps)?)?];
            let mut roles = vec![Role::Node];
            if !new_nodes.is_empty() {
                // Room for the new nodes below the limit the caller read, held by the condition
                // (a limit changed since fails it; more nodes than the limit make the room
                // negative, which no count meets).
                let n = new_nodes.len() as u64;
                let room = max as i128 - n as i128;
                let grow = counter_parts(
                    workflow_key(&run.workflow_id),
                    "node_count",
                    n as i64,
                    |e| {
                        format!(
                            "{} AND {} <= {} AND {} = {}",
                            writable(e, actor),
                            e.name("node_count"),
                            e.n(room),
                            e.path(&["settings", "max_nodes"]),
                            e.n(max)
                        )
                    },
                );
                actions.insert(0, grow.action(self.table.name())?);
                roles.insert(0, Role::Workflow);
                let new_ids: Vec<&str> = new_nodes.iter().map(|n| n.id.as_str()).collect();
                for node in new_nodes {
                    let mut node = node.clone();
                    node.child_count = new_nodes
                        .iter()
                        .filter(|c| c.parent_id.as_deref() == Some(node.id.as_str()))
                        .count() as u64;
                    match &node.parent_id {
                        Some(parent) if !new_ids.contains(&parent.as_str()) => {
                            let parent = counter_parts(
                                node_key(&run.workflow_id, parent),
                                "child_count",
                                1,
                                |e| format!("attribute_exists({})", e.name(PK)),
                            );
                            actions.push(parent.action(self.table.name())?);
                            roles.push(Role::Parent);
                        }
                        _ => {}
                    }
                    actions.push(self.put_new(node_item(&node)?)?);
                    roles.push(Role::Node);
                }
            } else {
                actions.insert(0, self.workflow_check(actor, &run.workflow_id)?);
                roles.insert(0, Role::Workflow);
            }
            if let Some(r) = idempotency {
                actions.push(self.put_idempotency(r)?);
                roles.push(Role::Idempotency);
            }
            self.transact_roles(actions, &roles).await
        })
    }

    fn get_run<'a>(
        &'a self,
        workflow_id: &'a str,
        run_id: &'a str,
    ) -> Fut<'a, Option<(Run, Vec<Step>)>> {
        Box::pin(async move {
            match self.table.get(run_key(run_id), None).await? {
                Some(item) => run_of(item, workflow_id),
                None => Ok(None),
            }
        })
    }

    fn get_run_with<'a>(
        &'a self,
        workflow_id: &'a str,
        run_id: &'a str,
        node_id: Option<&'a str>,
        parent_id: Option<&'a str>,
    ) -> Fut<'a, RunWith> {
        Box::pin(async move {
            let mut keys = vec![run_key(run_id), workflow_key(workflow_id)];
            keys.extend(node_id.map(|n| node_key(workflow_id, n)));
            keys.extend(parent_id.map(|p| node_key(workflow_id, p)));
            let mut inputs = RunWith::default();
            for item in self.table.batch_get(keys).await? {
                if is_node(&item) {
                    let n = node_from(item)?;
                    if Some(n.id.as_str()) == node_id {
                        inputs.node = Some(n);
                    } else {
                        inputs.parent = Some(n);
                    }
                } else if item.get(SK).and_then(|v| v.as_s().ok()).map(String::as_str)
                    == Some(RUN_SK)
                {
                    inputs.run = run_of(item, workflow_id)?;
                } else {
                    inputs.workflow = workflow_from(item)?;
                }
            }
            Ok(inputs)
        })
    }

    fn list_runs<'a>(
        &'a self,
        workflow_id: &'a str,
        limit: u32,
        after: Option<&'a PageKey>,
    ) -> Fut<'a, Page<Run>> {
        Box::pin(async move {
            let pk = runs_pk(workflow_id);
            if let Some(k) = after {
                let ok = k.0.len() == 4
                    && k.0.get(GSI1PK) == Some(&pk)
                    && k.0.get(SK).map(String::as_str) == Some(RUN_SK)
                    && k.0.get(PK).is_some_and(|p| p.starts_with("RUN#"))
                    && k.0.get(GSI1SK).is_some_and(|p| p.starts_with("RUN#"));
                if !ok {
                    return Err(StoreError::BadPageKey);
                }
            }
            let mut e = Expr::default();
            let condition = format!("{} = {}", e.name(GSI1PK), e.s(pk));
            let out = self
                .table
                .client
                .query()
                .table_name(self.table.name())
                .index_name(GSI1)
                .key_condition_expression(condition)
                .set_expression_attribute_names(e.names_opt())
                .set_expression_attribute_values(e.values_opt())
                .scan_index_forward(false)
                .limit(limit as i32)
                .set_exclusive_start_key(after.map(start_key))
                .send()
                .await
                .map_err(classify)?;
            let items = out
                .items
                .unwrap_or_default()
                .into_iter()
                .map(|i| run_from(i).map(|(r, _)| r))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Page {
                items,
                next: page_key(out.last_evaluated_key.as_ref()),
            })
        })
    }

    fn update_run<'a>(
        &'a self,
        run: &'a Run,
        expected_version: u64,
        steps: &'a [(Step, StepStatus)],
    ) -> Fut<'a, ()> {
        Box::pin(async move {
            let mut written = run.clone();
            written.version = expected_version + 1;
            let mut e = Expr::default();
            let mut sets = Vec::new();
            let mut conditions = vec![format!("{} = {}", e.name("version"), e.n(expected_version))];
            for (step, status) in steps {
                let path = format!("{}[{}]", e.name(STEPS), step.position);
                sets.push(format!("{path} = {}", e.value(step_value(step)?)));
                let id = step_path(&mut e, step.position, "id");
                let st = step_path(&mut e, step.position, "status");
                conditions.push(format!(
                    "{id} = {} AND {st} = {}",
                    e.s(step.id.as_str()),
                    e.s(status.as_str())
                ));
            }
            let held = self
                .table
                .update_if(
                    run_key(&run.id),
                    run_update(&mut e, &written, sets)?,
                    conditions.join(" AND "),
                    e,
                )
                .await?;
            if held {
                Ok(())
            } else {
                Err(StoreError::Conflict)
            }
        })
    }

    fn claim_step<'a>(
        &'a self,
        step: &'a Step,
        from: StepStatus,
        expected_attempts: u32,
        now: DateTime<Utc>,
    ) -> Fut<'a, bool> {
        Box::pin(async move {
            let mut e = Expr::default();
            let id = step_path(&mut e, step.position, "id");
            let status = step_path(&mut e, step.position, "status");
            let attempts = step_path(&mut e, step.position, "attempts");
            let lease = step_path(&mut e, step.position, "lease_until");
            let condition = format!(
                "{id} = {} AND {status} = {} AND {attempts} = {} AND (attribute_not_exists({lease}) OR attribute_type({lease}, {null}) OR {lease} <= {now})",
                e.s(step.id.as_str()),
                e.s(from.as_str()),
                e.n(expected_attempts),
                null = e.s("NULL"),
                now = e.s(sort_time(now)),
            );
            let update = format!(
                "SET {}[{}] = {}",
                e.name(STEPS),
                step.position,
                e.value(step_value(step)?)
            );
            self.table
                .update_if(run_key(&step.run_id), update, condition, e)
                .await
        })
    }

    fn active_runs<'a>(&'a self, limit: usize) -> Fut<'a, Vec<(String, String)>> {
        Box::pin(async move {
            let text = |item: &Item, k: &str| match item.get(k) {
                Some(AttributeValue::S(v)) => Some(v.clone()),
                _ => None,
            };
            Ok(self
                .sparse_index(ACTIVE_RUNS, limit)
                .await?
                .iter()
                .filter_map(|item| Some((text(item, "workflow_id")?, text(item, GSI2SK)?)))
                .collect())
        })
    }

    fn commit_step<'a>(&'a self, commit: &'a StepCommit) -> Fut<'a, bool> {
        Box::pin(async move {
            let step = &commit.step;
            let mut written = commit.run.clone();
            written.version = commit.run_version + 1;
            let mut e = Expr::default();
            let step_set = format!(
                "{}[{}] = {}",
                e.name(STEPS),
                step.position,
                e.value(step_value(step)?)
            );
            let id = step_path(&mut e, step.position, "id");
            let status = step_path(&mut e, step.position, "status");
            let attempts = step_path(&mut e, step.position, "attempts");
            let condition = format!(
                "{id} = {} AND {status} = {} AND {attempts} = {} AND {} = {}",
                e.s(step.id.as_str()),
                e.s(StepStatus::Running.as_str()),
                e.n(commit.attempt),
                e.name("version"),
                e.n(commit.run_version),
            );
            let run_write = UpdateParts {
                key: run_key(&step.run_id),
                update: run_update(&mut e, &written, vec![step_set])?,
                condition,
                expr: e,
            };
            let mut actions = vec![run_write.action(self.table.name())?];
            if let Some(node) = &commit.node {
                let update =
                    node_own_fields_update(node, |e| format!("attribute_exists({})", e.name(PK)))?;
                actions.push(update.action(self.table.name())?);
            }
            match self.table.transact(actions).await {
                Ok(()) => Ok(true),
                Err(TxError::Other(e)) => Err(e),
                Err(TxError::Cancelled(reasons)) => {
                    let Some(first) = reasons.first() else {
                        return Err(StoreError::Internal("cancelled without reasons".into()));
                    };
                    if first.code() != Some("ConditionalCheckFailed") {
                        return match reasons.get(1).and_then(|r| r.code()) {
                            Some("ConditionalCheckFailed") => Err(StoreError::NodeRejected(None)),
                            _ => Err(StoreError::Internal(format!(
                                "commit cancelled: {:?}",
                                reasons.iter().map(|r| r.code()).collect::<Vec<_>>()
                            ))),
                        };
                    }
                    // The claim is gone unless the stored step is still this attempt.
                    let Some(old) = first.item().cloned() else {
                        return Err(StoreError::Conflict);
                    };
                    let (_, steps) = run_from(old)?;
                    let held = steps.iter().any(|s| {
                        s.id == step.id
                            && s.status == StepStatus::Running
                            && s.attempts == commit.attempt
                    });
                    if held {
                        Err(StoreError::Conflict)
                    } else {
                        Ok(false)
                    }
                }
            }
        })
    }
}
