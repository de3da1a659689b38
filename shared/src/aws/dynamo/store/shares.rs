//! [`Shares`] over the table: the `shares` map on the workflow and the share entry that lists
//! it for its user, in one transaction.

use super::*;

impl Shares for DynamoStore {
    fn put_share<'a>(
        &'a self,
        actor: &'a Principal,
        workflow: &'a Workflow,
        user_id: &'a str,
        access: ShareAccess,
    ) -> Fut<'a, Workflow> {
        Box::pin(async move {
            let first = self.try_put_share(actor, workflow, user_id, access).await;
            // The condition requires a `shares` map to set the share in. An item written before
            // sharing existed has none: give it an empty one (only if it still has none) and
            // try once more. Any other rejection stands.
            if matches!(first, Err(StoreError::WorkflowRejected(Some(_))))
                && self.add_shares_map(&workflow.id).await?
            {
                return self.try_put_share(actor, workflow, user_id, access).await;
            }
            first
        })
    }

    fn delete_share<'a>(
        &'a self,
        actor: &'a Principal,
        workflow_id: &'a str,
        user_id: &'a str,
    ) -> Fut<'a, ()> {
        Box::pin(async move {
            let mut e = Expr::default();
            let share = e.path(&["shares", user_id]);
            let condition = format!(
                "{} AND attribute_exists({share})",
                writable_by(&mut e, actor, true)
            );
            let workflow_update = UpdateParts {
                key: workflow_key(workflow_id),
                update: format!("REMOVE {share}"),
                condition,
                expr: e,
            };
            let delete = Delete::builder()
                .table_name(self.table.name())
                .set_key(Some(share_key(workflow_id, user_id)))
                .build()
                .map_err(build)?;
            let actions = vec![
                workflow_update.action(self.table.name())?,
                TransactWriteItem::builder().delete(delete).build(),
            ];
            self.transact_roles(actions, &[Role::Workflow, Role::Node])
                .await
        })
    }
}
