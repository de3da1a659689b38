//! [`ApiKeys`] over the table: one item per key under its user.

use super::*;

impl ApiKeys for DynamoAccounts {
    fn put_api_key<'a>(&'a self, key: &'a ApiKey) -> Fut<'a, ()> {
        Box::pin(async move {
            let mut item = to_item(key, api_key_key(&key.user_id, &key.key_id))?;
            item.insert("type".into(), s("api_key"));
            let mut e = Expr::default();
            let condition = format!("attribute_not_exists({})", e.name(PK));
            self.put(item, Some(condition), e, StoreError::Duplicate)
                .await
        })
    }
    fn list_api_keys<'a>(&'a self, user_id: &'a str) -> Fut<'a, Vec<ApiKey>> {
        Box::pin(async move {
            self.query_user(user_id, "APIKEY#")
                .await?
                .into_iter()
                .map(from_item)
                .collect()
        })
    }
    fn delete_api_key<'a>(&'a self, user_id: &'a str, key_id: &'a str) -> Fut<'a, bool> {
        Box::pin(async move { self.delete(api_key_key(user_id, key_id)).await })
    }
}
