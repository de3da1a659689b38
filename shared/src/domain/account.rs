//! Accounts and their credentials: what a valid email, display name and password are, how an
//! account is locked after failed logins, and the records the identity service keeps.

use super::DomainError;
use super::error::Errors;
use super::principal::{Role, Scope};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

pub const MAX_EMAIL_LEN: usize = 254;
pub const MAX_DISPLAY_NAME_CHARS: usize = 100;
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Long enough for any passphrase, short enough that hashing it stays cheap.
pub const MAX_PASSWORD_BYTES: usize = 256;
/// zxcvbn's score 3: "safely unguessable: moderate protection from offline slow-hash scenario".
pub const MIN_PASSWORD_SCORE: u8 = 3;

/// Failed logins in a row that are free; each one after locks the account for twice as long
/// as the one before, from [`FIRST_LOCK`] up to [`MAX_LOCK`].
pub const FREE_FAILURES: u32 = 5;
pub const FIRST_LOCK: Duration = Duration::minutes(1);
pub const MAX_LOCK: Duration = Duration::hours(24);

pub const MAX_API_KEY_NAME_CHARS: usize = 100;
pub const MAX_API_KEYS: usize = 50;
pub const RECOVERY_CODES: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    /// Registered, email not yet verified: cannot log in.
    Pending,
    Active,
    /// Stopped by an admin: every token and key stops working at once.
    Suspended,
}

/// An account.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    pub user_id: String,
    /// Normalised (trimmed, lower case): the login name.
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub status: AccountStatus,
    /// argon2id PHC string.
    pub password_hash: String,
    pub mfa: Mfa,
    /// Failed logins in a row; counted by the store atomically (concurrent failures all count).
    pub failed_logins: u32,
    pub last_failed_at: Option<DateTime<Utc>>,
    /// Access tokens issued before this instant are refused (password change, "end all
    /// sessions", suspension).
    pub tokens_valid_after: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

/// TOTP state of an account.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mfa {
    pub enabled: bool,
    /// The data key the secrets below are sealed under, as the key service encrypted it
    /// (base64); `None` only on accounts from before secrets were sealed, whose secret is in
    /// clear and whose recovery hashes are salted SHA-256.
    pub data_key: Option<String>,
    /// The TOTP secret in use once enabled: AES-256-GCM under the data key (base64 of nonce
    /// and ciphertext).
    pub secret: Option<String>,
    /// The secret handed out by setup, waiting for a first good code, sealed the same way.
    pub pending_secret: Option<String>,
    /// HMAC-SHA256 under the data key (hex) of the recovery codes not used yet.
    pub recovery_hashes: Vec<String>,
    /// Highest time step a code was accepted for: a code is good once.
    pub last_step: u64,
}

impl Account {
    /// Until when a login attempt is refused outright, if it is at `now`: the lock the failure
    /// count has earned, from the last failure on.
    pub fn locked(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let until = self.last_failed_at? + lock_for(self.failed_logins)?;
        (until > now).then_some(until)
    }

    /// Forgets failed logins (a successful login, a reset, a reactivation).
    pub fn clear_failures(&mut self) {
        self.failed_logins = 0;
        self.last_failed_at = None;
    }
}

/// How long the account is locked after `failures` failed logins in a row.
pub fn lock_for(failures: u32) -> Option<Duration> {
    let over = failures.checked_sub(FREE_FAILURES)?;
    let lock = FIRST_LOCK * 2i32.saturating_pow(over.min(20));
    Some(lock.min(MAX_LOCK))
}

/// A signed-in device: one refresh token chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub session_id: String,
    pub user_id: String,
    /// The client's `User-Agent`, cut to 200 characters.
    pub device: String,
    pub ip: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    /// Epoch seconds when stored: the table's TTL attribute removes the session after it.
    pub expires_at: DateTime<Utc>,
    /// SHA-256 (hex) of the current refresh secret.
    pub refresh_hash: String,
    /// SHA-256 (hex) of refresh secrets already exchanged: one shown again is a stolen token.
    pub used_hashes: Vec<String>,
}

/// Refresh secrets remembered as used, per session (older ones are simply unknown).
pub const REMEMBERED_REFRESH_TOKENS: usize = 50;

/// An API key as stored: the secret itself is never kept.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub key_id: String,
    pub user_id: String,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub created_at: DateTime<Utc>,
    /// Epoch seconds when stored: the table's TTL removes an expired key.
    pub expires_at: Option<DateTime<Utc>>,
    pub secret_hash: String,
}

/// Lower-cased, trimmed email, or the reason it is not one.
pub fn normalize_email(raw: &str) -> Result<String, DomainError> {
    let email = raw.trim().to_lowercase();
    let mut errors = Errors::default();
    let valid = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && local.len() <= 64
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && !email.chars().any(|c| c.is_whitespace() || c.is_control())
                && !email.contains('#')
        }
        None => false,
    };
    if email.len() > MAX_EMAIL_LEN {
        errors.push(
            "email",
            format!("must be at most {MAX_EMAIL_LEN} characters"),
        );
    } else if !valid {
        errors.push("email", "must be an email address like name@example.com");
    }
    errors.into_result(email)
}

pub fn validate_display_name(raw: &str) -> Result<String, DomainError> {
    let name = raw.trim().to_string();
    let mut errors = Errors::default();
    if name.is_empty() {
        errors.push("display_name", "must not be empty");
    } else if name.chars().count() > MAX_DISPLAY_NAME_CHARS {
        errors.push(
            "display_name",
            format!("must be at most {MAX_DISPLAY_NAME_CHARS} characters"),
        );
    } else if !display_name_pattern().is_match(&name) {
        errors.push(
            "display_name",
            "may hold letters, marks, digits, spaces and . - ' only, with at least one letter or digit",
        );
    }
    errors.into_result(name)
}

/// Letters, combining marks, digits, spaces and `.` `-` `'` `’`, with a letter or digit: a
/// name, and nothing that reads as a link, a line break or reordered text (no format
/// characters such as U+202E, no separators such as U+2028, no `:` or `/`).
fn display_name_pattern() -> &'static regex::Regex {
    static PATTERN: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    PATTERN.get_or_init(|| {
        regex::Regex::new(r"^[\p{L}\p{M}\p{N}'’.\- ]*[\p{L}\p{N}][\p{L}\p{M}\p{N}'’.\- ]*$")
            .unwrap_or_else(|_| unreachable!("the pattern is a constant"))
    })
}

/// Checks a new password with zxcvbn (against common passwords, patterns and the user's own
/// email and name); the error says why it was refused and how to do better.
pub fn check_password_strength(
    field: &str,
    password: &str,
    user_inputs: &[&str],
) -> Result<(), DomainError> {
    let mut errors = Errors::default();
    if password.chars().count() < MIN_PASSWORD_CHARS {
        errors.push(
            field,
            format!("must be at least {MIN_PASSWORD_CHARS} characters"),
        );
    } else if password.len() > MAX_PASSWORD_BYTES {
        errors.push(field, format!("must be at most {MAX_PASSWORD_BYTES} bytes"));
    } else {
        // An email's local part is guessable on its own too.
        let mut inputs: Vec<&str> = user_inputs.to_vec();
        inputs.extend(
            user_inputs
                .iter()
                .filter_map(|i| i.split_once('@').map(|(l, _)| l)),
        );
        let entropy = zxcvbn::zxcvbn(password, &inputs);
        let score: u8 = entropy.score().into();
        if score < MIN_PASSWORD_SCORE {
            let mut reason =
                format!("is too easy to guess (strength {score} of 4, need {MIN_PASSWORD_SCORE})");
            if let Some(f) = entropy.feedback() {
                if let Some(w) = f.warning() {
                    reason.push_str(&format!(": {w}"));
                }
                for s in f.suggestions() {
                    reason.push_str(&format!(" {s}"));
                }
            }
            errors.push(field, reason);
        }
    }
    errors.into_result(())
}

pub fn validate_api_key_name(raw: &str) -> Result<String, DomainError> {
    let name = raw.trim().to_string();
    let mut errors = Errors::default();
    if name.is_empty() || name.chars().count() > MAX_API_KEY_NAME_CHARS {
        errors.push(
            "name",
            format!("must be 1 to {MAX_API_KEY_NAME_CHARS} characters"),
        );
    }
    errors.into_result(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            normalize_email("  Ann@Example.COM ").unwrap(),
            "ann@example.com"
        );
        for bad in [
            "",
            "ann",
            "@example.com",
            "ann@",
            "ann@example",
            "a b@example.com",
            "ann@.com",
            "a#b@example.com",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad}");
        }
        assert!(normalize_email(&format!("{}@example.com", "a".repeat(300))).is_err());
    }

    #[test]
    fn weak_passwords_are_refused_with_a_reason() {
        let e = check_password_strength("password", "password123", &[]).unwrap_err();
        let DomainError::Validation(v) = e else {
            panic!()
        };
        assert_eq!(v[0].field, "password");
        assert!(
            v[0].message.contains("too easy to guess"),
            "{}",
            v[0].message
        );
        assert!(check_password_strength("password", "short", &[]).is_err());
        // The user's own email is a guessable input.
        let own = "zebulonquixote77";
        assert!(
            check_password_strength("password", own, &[]).is_ok(),
            "strong on its own"
        );
        assert!(
            check_password_strength("password", own, &["zebulonquixote77@example.com"]).is_err()
        );
        assert!(
            check_password_strength("password", "correct horse battery staple 42", &[]).is_ok()
        );
        assert!(check_password_strength("password", &"x".repeat(300), &[]).is_err());
    }

    #[test]
    fn display_names_are_names_and_nothing_that_reads_as_a_link_or_reorders_text() {
        for good in [
            "Ann",
            "J. R. R. Tolkien",
            "Zoë O’Brien-Smith",
            "José Ñúñez",
            "Nguyễn Văn A",
            "Ann 2",
            "李小龍",
            "Ελένη",
            "محمد",
            "देवनागरी",
            "e\u{301}lise",
        ] {
            assert!(validate_display_name(good).is_ok(), "{good}");
        }
        for bad in [
            "Ann. URGENT: your account was breached; log in at https://evil.example/x",
            "evil\u{2028}line",
            "abc\u{202E}gnp.exe",
            "zero\u{200B}width",
            "tab\there",
            "<b>Ann</b>",
            "ann@example.com",
            "...",
            "- -",
            "😀",
        ] {
            assert!(validate_display_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_lock_runs_from_the_last_failure() {
        let t = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        let mut a = Account {
            user_id: "u".into(),
            email: "u@example.com".into(),
            display_name: "U".into(),
            role: Role::Editor,
            status: AccountStatus::Active,
            password_hash: String::new(),
            mfa: Mfa::default(),
            failed_logins: 0,
            last_failed_at: None,
            tokens_valid_after: t,
            created_at: t,
            updated_at: t,
            version: 1,
        };
        assert_eq!(a.locked(t), None);
        a.failed_logins = FREE_FAILURES - 1;
        a.last_failed_at = Some(t);
        assert_eq!(a.locked(t), None);
        a.failed_logins = FREE_FAILURES + 1;
        assert_eq!(
            a.locked(t + Duration::seconds(60)),
            Some(t + Duration::minutes(2))
        );
        assert_eq!(a.locked(t + Duration::minutes(2)), None);
        a.clear_failures();
        assert_eq!(a.locked(t), None);
    }

    #[test]
    fn locks_grow_after_the_free_failures_up_to_a_day() {
        assert_eq!(lock_for(FREE_FAILURES - 1), None);
        assert_eq!(lock_for(FREE_FAILURES), Some(Duration::minutes(1)));
        assert_eq!(lock_for(FREE_FAILURES + 1), Some(Duration::minutes(2)));
        assert_eq!(lock_for(FREE_FAILURES + 3), Some(Duration::minutes(8)));
        assert_eq!(lock_for(1000), Some(MAX_LOCK));
    }
}
