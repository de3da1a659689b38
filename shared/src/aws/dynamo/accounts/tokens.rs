//! [`OneTimeTokens`] over the table: stored by the hash of the secret, taken at most once.

use super::*;

impl OneTimeTokens for DynamoAccounts {
    fn put_token<'a>(&'a self, token: &'a OneTimeToken) -> Fut<'a, ()> {
        Box::pin(async move {
            self.put(
                token_item(token),
                None,
                Expr::default(),
                StoreError::Conflict,
            )
            .await
        })
    }
    fn take_token<'a>(&'a self, hash: &'a str) -> Fut<'a, Option<OneTimeToken>> {
        Box::pin(async move {
            let out = self
                .table
                .client
                .delete_item()
                .table_name(self.table.name())
                .set_key(Some(token_key(hash)))
                .return_values(ReturnValue::AllOld)
                .send()
                .await
                .map_err(classify)?;
            out.attributes
                .map(|item| token_from(&item, hash))
                .transpose()
        })
    }
}
