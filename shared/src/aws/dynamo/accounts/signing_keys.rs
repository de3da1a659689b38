//! [`SigningKeyStore`] over the table: one partition of keys, the private halves encrypted.

use super::*;

impl SigningKeyStore for DynamoAccounts {
    fn signing_keys<'a>(&'a self, now: DateTime<Utc>) -> Fut<'a, Vec<StoredSigningKey>> {
        Box::pin(async move {
            let mut e = Expr::default();
            let condition = format!("{} = {}", e.name(PK), e.s(SIGNING_KEYS_PK));
            let out = self
                .table
                .client
                .query()
                .table_name(self.table.name())
                .key_condition_expression(condition)
                .set_expression_attribute_names(e.names_opt())
                .set_expression_attribute_values(e.values_opt())
                .consistent_read(true)
                .send()
                .await
                .map_err(classify)?;
            let mut keys = out
                .items
                .unwrap_or_default()
                .iter()
                .map(signing_key_from)
                .collect::<Result<Vec<_>, _>>()?;
            keys.retain(|k| k.expires_at.is_none_or(|t| t > now));
            keys.sort_by_key(|k| std::cmp::Reverse(k.public.created_at));
            Ok(keys)
        })
    }
    fn put_signing_key<'a>(&'a self, key: &'a StoredSigningKey) -> Fut<'a, ()> {
        Box::pin(async move {
            let mut e = Expr::default();
            let condition = format!("attribute_not_exists({})", e.name(PK));
            self.put(
                signing_key_item(key),
                Some(condition),
                e,
                StoreError::Duplicate,
            )
            .await
        })
    }
    fn retire_signing_key<'a>(&'a self, kid: &'a str, expires_at: DateTime<Utc>) -> Fut<'a, ()> {
        Box::pin(async move {
            let mut e = Expr::default();
            let update = format!(
                "SET {} = {}, {} = {}",
                e.name("retired"),
                e.value(AttributeValue::Bool(true)),
                e.name(EXPIRES_AT),
                e.n(expires_at.timestamp())
            );
            let condition = format!("attribute_exists({})", e.name(PK));
            self.table
                .client
                .update_item()
                .table_name(self.table.name())
                .set_key(Some(signing_key_key(kid)))
                .update_expression(update)
                .condition_expression(condition)
                .set_expression_attribute_names(e.names_opt())
                .set_expression_attribute_values(e.values_opt())
                .send()
                .await
                .map_err(classify)?;
            Ok(())
        })
    }
}
