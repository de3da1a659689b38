//! Who is calling: established by the HTTP layer from a verified access token.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    pub roles: Vec<String>,
}

impl Principal {
    /// A workflow belongs to the user who created it; only that user may see or change it.
    pub fn owns(&self, owner_id: &str) -> bool {
        self.user_id == owner_id
    }
}
