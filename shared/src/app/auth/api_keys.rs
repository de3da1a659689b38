//! API keys: created with scopes within the owner's role, shown once, stored hashed.

use super::*;

impl Identity {
    pub async fn create_api_key(
        &self,
        principal: &Principal,
        body: CreateApiKeyRequest,
    ) -> Result<CreatedApiKey, AppError> {
        require_session(principal)?;
        let name = account::validate_api_key_name(&body.name)?;
        let mut scopes = body.scopes.clone();
        scopes.sort();
        scopes.dedup();
        if scopes.is_empty() {
            return Err(AppError::field("scopes", "name at least one scope"));
        }
        if let Some(s) = scopes.iter().find(|s| !principal.role.scopes().contains(s)) {
            return Err(AppError::field(
                "scopes",
                format!(
                    "{} is beyond your role ({})",
                    s.as_str(),
                    principal.role.as_str()
                ),
            ));
        }
        let now = self.now();
        if body.expires_at.is_some_and(|t| t <= now) {
            return Err(AppError::field("expires_at", "must be in the future"));
        }
        if self.accounts.list_api_keys(&principal.user_id).await?.len() >= account::MAX_API_KEYS {
            return Err(AppError::Conflict {
                slug: "too-many-api-keys",
                detail: "an account holds at most 50 API keys; delete one first",
            });
        }
        let secret = new_secret()?;
        let key = ApiKey {
            key_id: ids::new_id(),
            user_id: principal.user_id.clone(),
            name,
            scopes,
            created_at: now,
            expires_at: body.expires_at,
            secret_hash: crypto::sha256_hex(&secret),
        };
        self.accounts.put_api_key(&key).await?;
        self.audit(
            Some(&key.user_id),
            "api_key.created",
            Outcome::Success,
            Some(Target::new("api_key", &key.key_id)),
            serde_json::json!({"scopes": key.scopes, "expires_at": key.expires_at}),
        )
        .await;
        let api_key = credentials::api_key(&key.user_id, &key.key_id, &secret);
        Ok(CreatedApiKey {
            key: key.into(),
            api_key,
        })
    }

    pub async fn api_keys(&self, principal: &Principal) -> Result<ApiKeyList, AppError> {
        require_session(principal)?;
        let mut items: Vec<ApiKeyView> = self
            .accounts
            .list_api_keys(&principal.user_id)
            .await?
            .into_iter()
            .map(ApiKeyView::from)
            .collect();
        items.sort_by(|a, b| a.key_id.cmp(&b.key_id));
        Ok(ApiKeyList { items })
    }

    pub async fn delete_api_key(
        &self,
        principal: &Principal,
        key_id: &str,
    ) -> Result<(), AppError> {
        require_session(principal)?;
        if self
            .accounts
            .delete_api_key(&principal.user_id, key_id)
            .await?
        {
            self.audit(
                Some(&principal.user_id),
                "api_key.revoked",
                Outcome::Success,
                Some(Target::new("api_key", key_id)),
                serde_json::json!({}),
            )
            .await;
            Ok(())
        } else {
            Err(AppError::NotFound("API key"))
        }
    }
}
