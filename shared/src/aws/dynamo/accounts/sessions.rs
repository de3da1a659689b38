//! [`Sessions`] over the table: one item per session under its user.

use super::*;

impl Sessions for DynamoAccounts {
    fn put_session<'a>(&'a self, session: &'a Session) -> Fut<'a, ()> {
        Box::pin(async move {
            let mut item = to_item(session, session_key(&session.user_id, &session.session_id))?;
            item.insert("type".into(), s("session"));
            self.put(item, None, Expr::default(), StoreError::Conflict)
                .await
        })
    }
    fn get_session<'a>(
        &'a self,
        user_id: &'a str,
        session_id: &'a str,
    ) -> Fut<'a, Option<Session>> {
        Box::pin(async move {
            self.table
                .get(session_key(user_id, session_id), None)
                .await?
                .map(from_item)
                .transpose()
        })
    }
    fn rotate_session<'a>(&'a self, session: &'a Session, expected_hash: &'a str) -> Fut<'a, ()> {
        Box::pin(async move {
            let mut item = to_item(session, session_key(&session.user_id, &session.session_id))?;
            item.insert("type".into(), s("session"));
            let mut e = Expr::default();
            let condition = format!("{} = {}", e.name("refresh_hash"), e.s(expected_hash));
            self.put(item, Some(condition), e, StoreError::Conflict)
                .await
        })
    }
    fn list_sessions<'a>(&'a self, user_id: &'a str) -> Fut<'a, Vec<Session>> {
        Box::pin(async move {
            self.query_user(user_id, "SESSION#")
                .await?
                .into_iter()
                .map(from_item)
                .collect()
        })
    }
    fn delete_session<'a>(&'a self, user_id: &'a str, session_id: &'a str) -> Fut<'a, bool> {
        Box::pin(async move { self.delete(session_key(user_id, session_id)).await })
    }
}
