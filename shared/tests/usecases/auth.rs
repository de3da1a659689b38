//! Identity use cases over [`shared::testing::accounts`].
//!
//! Each test asserts what a caller sees (the use case's answer) and what the store and the
//! mailer hold afterwards. Accounts are mostly put straight into the store with one shared
//! password hash ([`World::seed`]): argon2id runs once per password check, and only the
//! registration tests hash new passwords.

use chrono::{DateTime, Duration, Utc};
use shared::app::AppError;
use shared::app::auth::admin;
use shared::app::auth::callers::{self, CallerError};
use shared::app::auth::dto::*;
use shared::app::auth::{Client, Identity};
use shared::crypto::{self, totp};
use shared::domain::account::{self, Account, AccountStatus, ApiKey, Mfa, Session};
use shared::domain::{Principal, Role, Scope, credentials, ids};
use shared::http::JwtVerifier;
use shared::ports::*;
use shared::testing::accounts::{MemoryAccounts, MemoryMailer, MemoryVault, identity, token_in};
use shared::testing::{AUDIENCE, ISSUER, ManualClock};
use std::fmt::Debug;
use std::sync::{Arc, LazyLock};

const PASSWORD: &str = "correct horse battery staple 7";
const NEW_PASSWORD: &str = "an entirely new passphrase 2026";
const WRONG_CREDENTIALS: &str = "email or password is wrong";

/// The hash of [`PASSWORD`] every seeded account has (made once per test binary).
static PASSWORD_HASH: LazyLock<String> = LazyLock::new(|| crypto::hash_password(PASSWORD).unwrap());

struct World {
    id: Identity,
    store: Arc<MemoryAccounts>,
    mail: Arc<MemoryMailer>,
    clock: Arc<ManualClock>,
}

/// The use cases over fresh fakes. The clock starts at the real time, because access tokens
/// are checked for expiry against the system clock ([`World::caller`]).
fn world() -> World {
    let clock = Arc::new(ManualClock::at(Utc::now()));
    let (id, store, mail) = identity(clock.clone());
    World {
        id,
        store,
        mail,
        clock,
    }
}

fn client() -> Client {
    Client {
        ip: "203.0.113.7".into(),
        device: "tests/1.0".into(),
    }
}

fn login_request(email: &str, password: &str) -> LoginRequest {
    LoginRequest {
        email: email.into(),
        password: password.into(),
        totp_code: None,
        recovery_code: None,
    }
}

/// The fields of a validation error (panics on any other error).
#[track_caller]
fn fields(e: &AppError) -> Vec<String> {
    match e {
        AppError::Validation(v) => v.iter().map(|f| f.field.clone()).collect(),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

/// The error of `r`, which must be a validation error of exactly `field`.
#[track_caller]
fn assert_field<T: Debug>(r: Result<T, AppError>, field: &str) -> String {
    let e = r.unwrap_err();
    assert_eq!(fields(&e), [field], "{e:?}");
    let AppError::Validation(v) = e else {
        unreachable!()
    };
    v[0].message.clone()
}

/// The message of an `Unauthorized` error (panics on anything else).
#[track_caller]
fn unauthorized<T: Debug>(r: Result<T, AppError>) -> &'static str {
    match r {
        Err(AppError::Unauthorized(m)) => m,
        other => panic!("expected Unauthorized, got {other:?}"),
    }
}

/// The secret part of a refresh token.
fn refresh_secret(pair: &TokenPair) -> String {
    credentials::parse_refresh_token(&pair.refresh_token)
        .unwrap()
        .2
        .to_string()
}

/// The TOTP code of `steps` steps from `at`.
fn code(secret: &str, at: DateTime<Utc>, steps: i64) -> String {
    totp::code(secret, (at.timestamp() + steps * 30) as u64).unwrap()
}

/// A six-digit code that matches no step around `at`.
fn wrong_code(secret: &str, at: DateTime<Utc>) -> String {
    ["000000", "111111", "222222", "333333"]
        .into_iter()
        .find(|c| totp::matching_step(secret, c, at.timestamp() as u64).is_none())
        .unwrap()
        .to_string()
}

impl World {
    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// An account put straight into the store, with password [`PASSWORD`].
    fn seed(&self, name: &str, role: Role, status: AccountStatus) -> Account {
        let now = self.now();
        let account = Account {
            user_id: ids::new_id(),
            email: format!("{name}@example.com"),
            display_name: name.to_string(),
            role,
            status,
            password_hash: PASSWORD_HASH.clone(),
            mfa: Mfa::default(),
            failed_logins: 0,
            last_failed_at: None,
            tokens_valid_after: now,
            created_at: now,
            updated_at: now,
            version: 1,
        };
        self.store.insert_account(account.clone());
        account
    }

    fn editor(&self, name: &str) -> Account {
        self.seed(name, Role::Editor, AccountStatus::Active)
    }

    fn stored(&self, a: &Account) -> Account {
        self.store.account(&a.user_id).unwrap()
    }

    async fn register(
        &self,
        email: &str,
        password: &str,
        name: &str,
    ) -> Result<RegisterResponse, AppError> {
        self.id
            .register(RegisterRequest {
                email: email.into(),
                password: password.into(),
                display_name: name.into(),
            })
            .await
    }

    /// Verifies with [`PASSWORD`], the password most registrations here choose.
    async fn verify(&self, token: &str) -> Result<UserView, AppError> {
        self.verify_with(token, PASSWORD).await
    }

    async fn verify_with(&self, token: &str, password: &str) -> Result<UserView, AppError> {
        self.id
            .verify_email(VerifyEmailRequest {
                token: token.into(),
                password: password.into(),
            })
            .await
    }

    /// The id of the account with `email` (registering no longer tells it).
    fn user_id_of(&self, email: &str) -> String {
        self.store.email_owner(email).unwrap()
    }

    async fn login(&self, email: &str, password: &str) -> Result<TokenPair, AppError> {
        self.id
            .login(login_request(email, password), &client())
            .await
    }

    async fn login_totp(
        &self,
        email: &str,
        password: &str,
        code: &str,
    ) -> Result<TokenPair, AppError> {
        let mut body = login_request(email, password);
        body.totp_code = Some(code.into());
        self.id.login(body, &client()).await
    }

    async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, AppError> {
        self.id
            .refresh(RefreshRequest {
                refresh_token: refresh_token.into(),
            })
            .await
    }

    /// Logs `a` in; returns the pair and the caller its access token stands for.
    async fn signed_in(&self, a: &Account) -> (TokenPair, Principal) {
        let pair = self.login(&a.email, PASSWORD).await.unwrap();
        let p = self.caller(&pair.access_token).await.unwrap();
        (pair, p)
    }

    /// The caller of an access token as every request establishes it: the signature checked
    /// against the keys published in the store, then the account rules. (Token expiry is
    /// checked against the system clock, so only with the test clock near it.)
    async fn caller(&self, access_token: &str) -> Result<Principal, CallerError> {
        let keys: Vec<PublicKey> = self
            .store
            .signing_keys(self.now())
            .await
            .unwrap()
            .into_iter()
            .map(|k| k.public)
            .collect();
        let claims = JwtVerifier::from_public_keys(&keys, ISSUER, AUDIENCE)
            .unwrap()
            .verify_token(access_token)
            .unwrap();
        let issued_at_ms = claims.issued_at_ms();
        callers::from_access_token(self.store.as_ref(), claims.sub, claims.sid, issued_at_ms).await
    }

    /// The caller of an API key as every request establishes it.
    async fn key_caller(&self, api_key: &str) -> Result<Principal, CallerError> {
        let (user, key, secret) = credentials::parse_api_key(api_key).unwrap();
        callers::from_api_key(self.store.as_ref(), user, key, secret, self.now()).await
    }

    async fn create_key(
        &self,
        p: &Principal,
        scopes: &[Scope],
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<CreatedApiKey, AppError> {
        self.id
            .create_api_key(
                p,
                CreateApiKeyRequest {
                    name: "ci".into(),
                    scopes: scopes.to_vec(),
                    expires_at,
                },
            )
            .await
    }
}

/// A signed-in person's principal for `a` without logging in (no password check).
fn principal_of(a: &Account) -> Principal {
    Principal {
        user_id: a.user_id.clone(),
        role: a.role,
        scopes: None,
        session_id: Some(ids::new_id()),
    }
}

// ----- registration and email verification -----

#[tokio::test]
async fn register_stores_a_pending_account_and_mails_a_single_use_link() {
    let w = world();
    let r = w
        .register("  Ann@Example.COM ", PASSWORD, " Ann ")
        .await
        .unwrap();
    assert_eq!(r.email, "ann@example.com");
    assert_eq!(w.store.calls(), ["create_account"], "one transaction");
    let user_id = w.user_id_of("ann@example.com");

    let stored = w.store.account(&user_id).unwrap();
    assert_eq!(stored.status, AccountStatus::Pending);
    assert_eq!(
        stored.role,
        Role::Editor,
        "self-registered users are editors"
    );
    assert_eq!(stored.display_name, "Ann");
    assert!(
        stored
            .password_hash
            .starts_with("$argon2id$v=19$m=12288,t=3,p=1$")
    );
    let tokens = w.store.tokens_of(&user_id);
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].purpose, TokenPurpose::VerifyEmail);
    assert_eq!(
        tokens[0].expires_at.timestamp(),
        (w.now() + Duration::hours(24)).timestamp()
    );
    assert_eq!(
        tokens[0].password_hash.as_deref(),
        Some(stored.password_hash.as_str())
    );
    assert_eq!(tokens[0].display_name.as_deref(), Some("Ann"));

    let mails = w.mail.sent();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, "ann@example.com");
    assert_eq!(mails[0].subject, "DWC test: confirm your email address");
    assert!(
        mails[0]
            .text
            .contains("https://app.example.com/verify-email?token="),
        "{}",
        mails[0].text
    );
    let token = token_in(&mails[0].text).unwrap();
    assert!(!tokens[0].hash.contains(&token), "only a hash is stored");

    // Not verified yet: the right password does not let them in.
    assert!(matches!(
        w.login("ann@example.com", PASSWORD).await,
        Err(AppError::Forbidden(_))
    ));
    assert!(w.store.sessions_of(&user_id).is_empty());

    // The link activates only with the password chosen at registration, and a wrong one
    // leaves it usable.
    assert_field(w.verify_with(&token, NEW_PASSWORD).await, "password");
    assert_eq!(w.store.tokens_of(&user_id).len(), 1, "put back");
    let view = w.verify(&token).await.unwrap();
    assert_eq!(view.status, AccountStatus::Active);
    let stored = w.store.account(&user_id).unwrap();
    assert_eq!((stored.status, stored.version), (AccountStatus::Active, 2));
    assert!(w.store.tokens().is_empty(), "the link is used up");
    // The link works once.
    assert_field(w.verify(&token).await, "token");
    assert_eq!(w.store.account(&user_id).unwrap().version, 2);
}

#[tokio::test]
async fn registration_refuses_bad_input_with_every_reason_and_stores_nothing() {
    let w = world();
    let e = w.register("nope", "x", "").await.unwrap_err();
    assert_eq!(fields(&e), ["email", "display_name", "password"]);
    let reason = assert_field(
        w.register("w@example.com", "password123", "W").await,
        "password",
    );
    assert!(reason.contains("too easy to guess"), "{reason}");
    // Guessable from the person's own email.
    assert_field(
        w.register("zebulonquixote77@example.com", "zebulonquixote77", "Z")
            .await,
        "password",
    );
    assert!(w.store.calls().is_empty(), "the store was not asked");
    assert!(w.mail.sent().is_empty());
}

#[tokio::test]
async fn verification_links_expire_and_are_bound_to_their_purpose() {
    let w = world();
    w.register("ann@example.com", PASSWORD, "Ann")
        .await
        .unwrap();
    let user_id = w.user_id_of("ann@example.com");
    let token = w.mail.token_to("ann@example.com", "confirm").unwrap();
    // A verification token is no reset token: it is not even looked up as one.
    assert_field(
        w.id.reset_password(ResetRequest {
            token: token.clone(),
            new_password: NEW_PASSWORD.into(),
        })
        .await,
        "token",
    );
    assert_eq!(w.store.tokens_of(&user_id).len(), 1, "still there");
    for bad in ["", "made-up", &"x".repeat(200)] {
        assert_field(w.verify(bad).await, "token");
    }
    assert_eq!(w.store.tokens_of(&user_id).len(), 1);

    w.clock.advance(Duration::hours(24) + Duration::seconds(1));
    assert_field(w.verify(&token).await, "token");
    assert!(
        w.store.tokens().is_empty(),
        "an expired token is used up too"
    );
    assert_eq!(
        w.store.account(&user_id).unwrap().status,
        AccountStatus::Pending
    );
}

/// The review's takeover: the owner registered with A, someone else registered the same
/// address with B, and the newest link (B's) was opened. A link now activates only with its
/// own registration's password: the owner cannot be made to set B, and B without the inbox
/// has nothing.
#[tokio::test]
async fn a_second_registration_of_a_pending_address_cannot_set_its_password() {
    let w = world();
    let email = "owner@example.com";
    let first = w.register(email, PASSWORD, "Owner").await.unwrap();
    let user_id = w.user_id_of(email);
    let stored_first = w.store.account(&user_id).unwrap();
    let again = w
        .register(email, "attacker passphrase 31337", "Mallory")
        .await
        .unwrap();
    assert_eq!(
        (again.email.as_str(), again.message.as_str()),
        (first.email.as_str(), first.message.as_str()),
        "the same answer"
    );
    assert_eq!(w.store.accounts().len(), 1);
    assert_eq!(
        w.store.account(&user_id).unwrap(),
        stored_first,
        "nothing changes before a link is used"
    );
    let mails = w.mail.sent_to(email);
    assert_eq!(mails.len(), 2);
    let owners_link = token_in(&mails[0].text).unwrap();
    let newest_link = token_in(&mails[1].text).unwrap();

    // The owner opens the newest link with their password: refused, nothing set.
    assert_field(w.verify_with(&newest_link, PASSWORD).await, "password");
    assert_eq!(w.store.account(&user_id).unwrap(), stored_first);
    // Their own link activates the account with their password.
    let view = w.verify(&owners_link).await.unwrap();
    assert_eq!(
        (view.status, view.display_name.as_str()),
        (AccountStatus::Active, "Owner")
    );
    w.login(email, PASSWORD).await.unwrap();
    assert_eq!(
        unauthorized(w.login(email, "attacker passphrase 31337").await),
        WRONG_CREDENTIALS
    );
    // The newest link changes nothing now that the account is active.
    w.verify_with(&newest_link, "attacker passphrase 31337")
        .await
        .unwrap();
    w.login(email, PASSWORD).await.unwrap();
    assert_eq!(w.stored(&stored_first).display_name, "Owner");
}

/// Squatting: someone registers the address first. Its owner registers again and uses their
/// own link: the account is theirs, with their password.
#[tokio::test]
async fn the_owner_of_a_squatted_address_takes_it_by_registering_again() {
    let w = world();
    let email = "victim@example.com";
    w.register(email, "attacker passphrase 31337", "Mallory")
        .await
        .unwrap();
    w.register(email, PASSWORD, "Victim").await.unwrap();
    let mails = w.mail.sent_to(email);
    let squatters_link = token_in(&mails[0].text).unwrap();
    let owners_link = token_in(&mails[1].text).unwrap();
    // The squatter's link, opened by the owner, sets nothing.
    assert_field(w.verify(&squatters_link).await, "password");
    let view = w.verify(&owners_link).await.unwrap();
    assert_eq!(
        (view.status, view.display_name.as_str()),
        (AccountStatus::Active, "Victim")
    );
    w.login(email, PASSWORD).await.unwrap();
    assert_eq!(
        unauthorized(w.login(email, "attacker passphrase 31337").await),
        WRONG_CREDENTIALS
    );
}

#[tokio::test]
async fn registering_a_taken_address_answers_as_for_a_new_one_and_tells_the_owner() {
    let w = world();
    let new = w
        .register("new@example.com", NEW_PASSWORD, "Someone")
        .await
        .unwrap();
    let active = w.editor("ann");
    let suspended = w.seed("sue", Role::Editor, AccountStatus::Suspended);
    for a in [&active, &suspended] {
        let r = w.register(&a.email, NEW_PASSWORD, "Someone").await.unwrap();
        assert_eq!(
            (r.email.as_str(), r.message.as_str()),
            (a.email.as_str(), new.message.as_str())
        );
        assert_eq!(&w.stored(a), a, "unchanged");
        assert!(w.store.tokens_of(&a.user_id).is_empty(), "no link");
        let mails = w.mail.sent_to(&a.email);
        assert_eq!(mails.len(), 1);
        assert!(
            mails[0].subject.contains("someone tried to register"),
            "{}",
            mails[0].subject
        );
        assert!(token_in(&mails[0].text).is_none(), "{}", mails[0].text);
    }
    assert_eq!(w.store.accounts().len(), 3);
}

#[tokio::test]
async fn a_failed_verification_email_leaves_a_pending_account_that_registering_again_retries() {
    let w = world();
    w.mail.fail_next();
    let r = w.register("ann@example.com", PASSWORD, "Ann").await;
    assert!(matches!(r, Err(AppError::Unavailable(_))), "{r:?}");
    let stored = w.store.accounts();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].status, AccountStatus::Pending);
    assert!(w.mail.sent().is_empty());

    w.register("ann@example.com", PASSWORD, "Ann")
        .await
        .unwrap();
    assert_eq!(w.store.accounts().len(), 1);
    let token = w.mail.token_to("ann@example.com", "confirm").unwrap();
    assert_eq!(
        w.verify(&token).await.unwrap().status,
        AccountStatus::Active
    );
}

#[tokio::test]
async fn a_link_whose_account_cannot_be_saved_can_be_used_again() {
    let w = world();
    w.register("ann@example.com", PASSWORD, "Ann")
        .await
        .unwrap();
    let user_id = w.user_id_of("ann@example.com");
    let token = w.mail.token_to("ann@example.com", "confirm").unwrap();
    w.store.fail_next_call_to("update_account");
    assert!(matches!(
        w.verify(&token).await,
        Err(AppError::Unavailable(_))
    ));
    assert_eq!(w.store.tokens_of(&user_id).len(), 1, "put back");
    assert_eq!(
        w.store.account(&user_id).unwrap().status,
        AccountStatus::Pending
    );
    assert_eq!(
        w.verify(&token).await.unwrap().status,
        AccountStatus::Active
    );
    assert!(w.store.tokens().is_empty());
}

// ----- login, lockout, sessions and refresh -----

#[tokio::test]
async fn login_starts_a_session_whose_access_token_verifies() {
    let w = world();
    let a = w.editor("ann");
    let long_device = "d".repeat(300);
    let pair =
        w.id.login(
            login_request("  ANN@example.com", PASSWORD),
            &Client {
                ip: "198.51.100.1".into(),
                device: long_device,
            },
        )
        .await
        .unwrap();
    assert_eq!((pair.token_type.as_str(), pair.expires_in), ("Bearer", 900));
    let sessions = w.store.sessions_of(&a.user_id);
    assert_eq!(sessions.len(), 1);
    let s = &sessions[0];
    assert_eq!(s.session_id, pair.session_id);
    assert_eq!(s.device.chars().count(), 200);
    assert_eq!(s.ip, "198.51.100.1");
    assert_eq!(s.refresh_hash, crypto::sha256_hex(&refresh_secret(&pair)));
    assert_eq!(
        s.expires_at.timestamp(),
        (w.now() + Duration::days(30)).timestamp()
    );
    assert!(s.used_hashes.is_empty());
    let header = jsonwebtoken::decode_header(&pair.access_token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    assert_eq!(
        header.kid.as_deref(),
        Some(w.store.stored_signing_keys()[0].public.kid.as_str())
    );
    let p = w.caller(&pair.access_token).await.unwrap();
    assert_eq!(
        p,
        Principal {
            user_id: a.user_id.clone(),
            role: Role::Editor,
            scopes: None,
            session_id: Some(pair.session_id.clone()),
        }
    );
    assert_eq!(w.id.me(&p).await.unwrap().email, "ann@example.com");
    // A clean login writes nothing to the account.
    assert_eq!(w.stored(&a).version, 1);
}

#[tokio::test]
async fn wrong_passwords_and_unknown_emails_look_alike() {
    let w = world();
    let a = w.editor("ann");
    let unknown = unauthorized(w.login("ghost@example.com", PASSWORD).await);
    let malformed = unauthorized(w.login("not an email", PASSWORD).await);
    let wrong = unauthorized(w.login(&a.email, "not the password at all").await);
    assert_eq!([unknown, malformed], [wrong, wrong]);
    assert_eq!(wrong, WRONG_CREDENTIALS);
    let stored = w.stored(&a);
    assert_eq!(stored.failed_logins, 1);
    assert_eq!(stored.last_failed_at, Some(w.now()));
    assert_eq!(stored.version, 1, "counted without a new version");
    assert!(w.store.sessions_of(&a.user_id).is_empty());
}

#[tokio::test]
async fn five_wrong_passwords_lock_the_account_until_the_lock_has_passed() {
    let w = world();
    let a = w.editor("ann");
    for _ in 0..account::FREE_FAILURES {
        assert_eq!(
            unauthorized(w.login(&a.email, "a wrong guess here").await),
            WRONG_CREDENTIALS
        );
    }
    assert_eq!(w.stored(&a).failed_logins, 5);
    // The owner is told, once, when the lock begins.
    let notices: Vec<_> = w
        .mail
        .sent_to(&a.email)
        .into_iter()
        .filter(|m| m.subject.contains("sign-in paused"))
        .collect();
    assert_eq!(notices.len(), 1, "{notices:?}");
    // Even the right password waits, answered like a wrong one (a lock does not tell that the
    // account exists), and a refusal while locked counts nothing.
    assert_eq!(
        unauthorized(w.login(&a.email, PASSWORD).await),
        WRONG_CREDENTIALS
    );
    let p = principal_of(&a);
    let r =
        w.id.change_password(
            &p,
            PasswordChangeRequest {
                current_password: PASSWORD.into(),
                new_password: NEW_PASSWORD.into(),
            },
        )
        .await;
    assert!(matches!(r, Err(AppError::Locked { .. })), "{r:?}");
    w.clock.advance(Duration::seconds(45));
    assert_eq!(
        unauthorized(w.login(&a.email, PASSWORD).await),
        WRONG_CREDENTIALS
    );
    assert_eq!(w.stored(&a).failed_logins, 5);
    assert!(w.store.sessions_of(&a.user_id).is_empty());

    // Past the lock: one more failure locks for twice as long.
    w.clock.advance(Duration::seconds(16));
    unauthorized(w.login(&a.email, "still not it").await);
    unauthorized(w.login(&a.email, PASSWORD).await);
    w.clock.advance(Duration::seconds(119));
    unauthorized(w.login(&a.email, PASSWORD).await);
    w.clock.advance(Duration::seconds(1));
    w.login(&a.email, PASSWORD).await.unwrap();
    let stored = w.stored(&a);
    assert_eq!((stored.failed_logins, stored.last_failed_at), (0, None));
    assert_eq!(w.store.sessions_of(&a.user_id).len(), 1);
}

#[tokio::test]
async fn concurrent_wrong_passwords_all_count_toward_the_lock() {
    let w = world();
    let a = w.editor("ann");
    let wrong = || w.login(&a.email, "a wrong guess, at once");
    let (r1, r2, r3, r4, r5) = tokio::join!(wrong(), wrong(), wrong(), wrong(), wrong());
    for r in [r1, r2, r3, r4, r5] {
        assert_eq!(unauthorized(r), WRONG_CREDENTIALS);
    }
    assert_eq!(w.stored(&a).failed_logins, 5);
    assert_eq!(
        unauthorized(w.login(&a.email, PASSWORD).await),
        WRONG_CREDENTIALS
    );
}

#[tokio::test]
async fn pending_and_suspended_accounts_cannot_log_in() {
    let w = world();
    let pending = w.seed("pat", Role::Editor, AccountStatus::Pending);
    let suspended = w.seed("sue", Role::Editor, AccountStatus::Suspended);
    for a in [&pending, &suspended] {
        let r = w.login(&a.email, PASSWORD).await;
        assert!(matches!(r, Err(AppError::Forbidden(_))), "{r:?}");
        assert!(w.store.sessions_of(&a.user_id).is_empty());
    }
}

#[tokio::test]
async fn refresh_rotates_the_token_and_a_reused_token_ends_the_session() {
    let w = world();
    let a = w.editor("ann");
    let (first, _) = w.signed_in(&a).await;
    let (other, _) = w.signed_in(&a).await;
    w.clock.advance(Duration::seconds(5));

    w.store.clear_calls();
    let second = w.refresh(&first.refresh_token).await.unwrap();
    assert_eq!(
        w.store.calls(),
        ["get_session", "get_account", "rotate_session"],
        "README: GetItem (session) + GetItem (account) + conditional PutItem"
    );
    assert_eq!(second.session_id, first.session_id);
    assert_ne!(second.refresh_token, first.refresh_token);
    let s = w
        .store
        .get_session(&a.user_id, &first.session_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.refresh_hash, crypto::sha256_hex(&refresh_secret(&second)));
    assert_eq!(s.used_hashes, [crypto::sha256_hex(&refresh_secret(&first))]);
    assert_eq!(s.last_used_at, w.now());
    assert_eq!(
        s.expires_at.timestamp(),
        (w.now() + Duration::days(30)).timestamp()
    );
    w.caller(&second.access_token).await.unwrap();
    let third = w.refresh(&second.refresh_token).await.unwrap();

    // The first token again: it was copied. The whole session ends, for everyone.
    let reuse = unauthorized(w.refresh(&first.refresh_token).await);
    assert!(reuse.contains("reused"), "{reuse}");
    assert_eq!(
        w.store
            .get_session(&a.user_id, &first.session_id)
            .await
            .unwrap(),
        None,
        "the session is gone from the store"
    );
    unauthorized(w.refresh(&third.refresh_token).await);
    // The other session is not touched.
    let sessions = w.store.sessions_of(&a.user_id);
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].session_id, other.session_id);
    w.refresh(&other.refresh_token).await.unwrap();
}

#[tokio::test]
async fn malformed_and_unknown_refresh_tokens_are_refused_without_touching_the_session() {
    let w = world();
    let a = w.editor("ann");
    let (pair, _) = w.signed_in(&a).await;
    let before = w.store.sessions_of(&a.user_id);
    for bad in [
        String::new(),
        "x".into(),
        "a.b.c".into(),
        format!("{}.{}.wrong", a.user_id, pair.session_id),
        format!("{}.{}.{}", a.user_id, ids::new_id(), refresh_secret(&pair)),
        format!(
            "{}.{}.{}",
            ids::new_id(),
            pair.session_id,
            refresh_secret(&pair)
        ),
    ] {
        let m = unauthorized(w.refresh(&bad).await);
        assert!(!m.contains("reused"), "{bad}: {m}");
    }
    assert_eq!(w.store.sessions_of(&a.user_id), before);
    w.refresh(&pair.refresh_token).await.unwrap();
}

#[tokio::test]
async fn concurrent_refreshes_of_one_token_admit_one_and_end_the_session() {
    let w = world();
    let a = w.editor("ann");
    let (pair, _) = w.signed_in(&a).await;
    let (r1, r2) = tokio::join!(
        w.refresh(&pair.refresh_token),
        w.refresh(&pair.refresh_token)
    );
    let (won, lost) = match (r1, r2) {
        (Ok(p), Err(e)) | (Err(e), Ok(p)) => (p, e),
        other => panic!("exactly one refresh must succeed: {other:?}"),
    };
    assert!(
        matches!(lost, AppError::Unauthorized(m) if m.contains("reused")),
        "{lost:?}"
    );
    // Both read the session before either wrote: the loser's conditional write failed.
    let calls = w.store.calls();
    assert_eq!(
        calls.iter().filter(|c| **c == "rotate_session").count(),
        2,
        "{calls:?}"
    );
    // The token was shown twice: the session is over, in the store, for the winner too.
    assert_eq!(
        w.store
            .get_session(&a.user_id, &pair.session_id)
            .await
            .unwrap(),
        None
    );
    assert!(w.store.sessions_of(&a.user_id).is_empty());
    unauthorized(w.refresh(&won.refresh_token).await);
    unauthorized(w.refresh(&pair.refresh_token).await);
}

#[tokio::test]
async fn an_expired_session_cannot_refresh_and_is_not_listed() {
    let w = world();
    let a = w.editor("ann");
    let (pair, p) = w.signed_in(&a).await;
    w.clock.advance(Duration::days(30) + Duration::seconds(1));
    unauthorized(w.refresh(&pair.refresh_token).await);
    assert!(w.id.sessions(&p).await.unwrap().items.is_empty());
    // Still stored until the table's TTL removes it.
    assert_eq!(w.store.sessions_of(&a.user_id).len(), 1);
}

#[tokio::test]
async fn sessions_are_listed_and_ended_one_at_a_time_or_by_logout() {
    let w = world();
    let a = w.editor("ann");
    let b = w.editor("ben");
    let (mine, p) = w.signed_in(&a).await;
    w.clock.advance(Duration::seconds(1));
    let (second, _) = w.signed_in(&a).await;
    let (bens, bp) = w.signed_in(&b).await;

    let list = w.id.sessions(&p).await.unwrap().items;
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].session_id, second.session_id, "last used first");
    let current: Vec<_> = list.iter().filter(|s| s.current).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0].session_id, mine.session_id);
    assert_eq!(
        (current[0].device.as_str(), current[0].ip.as_str()),
        ("tests/1.0", "203.0.113.7")
    );

    // Someone else's session is not found.
    assert!(matches!(
        w.id.end_session(&bp, &mine.session_id).await,
        Err(AppError::NotFound("session"))
    ));
    w.id.end_session(&p, &second.session_id).await.unwrap();
    assert!(matches!(
        w.id.end_session(&p, &second.session_id).await,
        Err(AppError::NotFound("session"))
    ));
    unauthorized(w.refresh(&second.refresh_token).await);

    w.id.logout(&p).await.unwrap();
    assert!(w.store.sessions_of(&a.user_id).is_empty());
    unauthorized(w.refresh(&mine.refresh_token).await);
    // Logging out ends the access token with its session (ASVS 3.3.1).
    assert_eq!(
        w.caller(&mine.access_token).await,
        Err(CallerError::Refused("session ended: sign in again"))
    );
    // Ben's session is untouched.
    w.refresh(&bens.refresh_token).await.unwrap();
}

#[tokio::test]
async fn an_api_key_cannot_manage_sessions_or_log_out() {
    let w = world();
    let a = w.editor("ann");
    let key = w
        .create_key(&principal_of(&a), &[Scope::WorkflowsRead], None)
        .await
        .unwrap();
    let kp = w.key_caller(&key.api_key).await.unwrap();
    assert!(matches!(
        w.id.sessions(&kp).await,
        Err(AppError::Forbidden(_))
    ));
    assert!(matches!(
        w.id.end_session(&kp, &ids::new_id()).await,
        Err(AppError::Forbidden(_))
    ));
    assert!(matches!(
        w.id.logout(&kp).await,
        Err(AppError::Forbidden(_))
    ));
    assert!(matches!(
        w.id.api_keys(&kp).await,
        Err(AppError::Forbidden(_))
    ));
    assert!(matches!(
        w.create_key(&kp, &[Scope::WorkflowsRead], None).await,
        Err(AppError::Forbidden(_))
    ));
    assert!(matches!(
        w.id.delete_api_key(&kp, &key.key.key_id).await,
        Err(AppError::Forbidden(_))
    ));
    assert_eq!(w.store.api_keys_of(&a.user_id).len(), 1);
}

// ----- passwords -----

#[tokio::test]
async fn changing_the_password_ends_every_session_token_and_key() {
    let w = world();
    let a = w.editor("ann");
    let (pair, p) = w.signed_in(&a).await;
    let (other, _) = w.signed_in(&a).await;
    let key = w
        .create_key(&p, &[Scope::WorkflowsRead], None)
        .await
        .unwrap();
    let change = |current: &str, new: &str| {
        w.id.change_password(
            &p,
            PasswordChangeRequest {
                current_password: current.into(),
                new_password: new.into(),
            },
        )
    };
    assert_eq!(
        assert_field(change("wrong one", NEW_PASSWORD).await, "current_password"),
        "is wrong"
    );
    assert_eq!(w.stored(&a).failed_logins, 1, "a wrong password counts");
    assert_field(change(PASSWORD, "qwertyuiop").await, "new_password");
    assert_eq!(
        w.store.sessions_of(&a.user_id).len(),
        2,
        "nothing ended yet"
    );

    // Tokens issued in the same second as the change would still pass: step past it.
    w.clock.advance(Duration::seconds(2));
    change(PASSWORD, NEW_PASSWORD).await.unwrap();
    let stored = w.stored(&a);
    assert_eq!(stored.tokens_valid_after, w.now());
    assert_ne!(stored.password_hash, a.password_hash);
    assert!(
        w.store.sessions_of(&a.user_id).is_empty(),
        "every session ended"
    );
    assert_eq!(
        w.caller(&pair.access_token).await,
        Err(CallerError::Refused("session ended: sign in again"))
    );
    assert_eq!(
        w.key_caller(&key.api_key).await,
        Err(CallerError::Refused(
            "API key revoked: the account's credentials were reset"
        ))
    );
    for r in [&pair, &other] {
        unauthorized(w.refresh(&r.refresh_token).await);
    }
    assert_eq!(
        unauthorized(w.login(&a.email, PASSWORD).await),
        WRONG_CREDENTIALS
    );
    let fresh = w.login(&a.email, NEW_PASSWORD).await.unwrap();
    w.caller(&fresh.access_token).await.unwrap();
    assert_eq!(w.stored(&a).failed_logins, 0);
}

#[tokio::test]
async fn an_api_key_cannot_change_the_password() {
    let w = world();
    let a = w.editor("ann");
    let key = w
        .create_key(&principal_of(&a), &[Scope::WorkflowsRead], None)
        .await
        .unwrap();
    let kp = w.key_caller(&key.api_key).await.unwrap();
    let r =
        w.id.change_password(
            &kp,
            PasswordChangeRequest {
                current_password: PASSWORD.into(),
                new_password: NEW_PASSWORD.into(),
            },
        )
        .await;
    assert!(matches!(r, Err(AppError::Forbidden(_))), "{r:?}");
    assert_eq!(w.stored(&a), a);
}

#[tokio::test]
async fn a_reset_request_answers_the_same_and_mails_only_real_accounts() {
    let w = world();
    let a = w.editor("ann");
    let sue = w.seed("sue", Role::Editor, AccountStatus::Suspended);
    for email in ["ghost@example.com", "not-an-email", &sue.email] {
        w.id.request_reset(ResetRequestRequest {
            email: email.into(),
        })
        .await
        .unwrap();
    }
    assert!(w.mail.sent().is_empty());
    assert!(w.store.tokens().is_empty());

    w.id.request_reset(ResetRequestRequest {
        email: " ANN@example.com".into(),
    })
    .await
    .unwrap();
    let mail = w.mail.last_to(&a.email).unwrap();
    assert_eq!(mail.subject, "DWC test: reset your password");
    assert!(
        mail.text
            .contains("https://app.example.com/reset-password?token=")
    );
    let tokens = w.store.tokens_of(&a.user_id);
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].purpose, TokenPurpose::ResetPassword);
    assert_eq!(
        tokens[0].expires_at.timestamp(),
        (w.now() + Duration::hours(1)).timestamp()
    );
    assert_eq!(
        (
            tokens[0].password_hash.as_ref(),
            tokens[0].display_name.as_ref()
        ),
        (None, None)
    );
}

#[tokio::test]
async fn reset_links_are_single_use_survive_a_weak_password_and_end_every_session() {
    let w = world();
    // An email a password can be guessed from, and a locked account: a reset unlocks it.
    let a = w.editor("zebulonquixote77");
    let (pair, _) = w.signed_in(&a).await;
    for _ in 0..account::FREE_FAILURES {
        unauthorized(w.login(&a.email, "a wrong guess here").await);
    }
    assert!(w.stored(&a).locked(w.now()).is_some());
    w.id.request_reset(ResetRequestRequest {
        email: a.email.clone(),
    })
    .await
    .unwrap();
    let token = w.mail.token_to(&a.email, "reset").unwrap();
    let reset = |new: &str| {
        w.id.reset_password(ResetRequest {
            token: token.clone(),
            new_password: new.into(),
        })
    };
    // Weak on its own: refused before the token is used.
    assert_field(reset("letmein").await, "new_password");
    assert_eq!(w.store.tokens_of(&a.user_id).len(), 1);
    // Weak only with the account's email: the token was taken, and is put back.
    assert_field(reset("zebulonquixote77").await, "new_password");
    assert_eq!(w.store.tokens_of(&a.user_id).len(), 1);

    w.clock.advance(Duration::seconds(2));
    reset(NEW_PASSWORD).await.unwrap();
    let stored = w.stored(&a);
    assert!(w.store.tokens().is_empty(), "used once: gone");
    assert_eq!((stored.failed_logins, stored.last_failed_at), (0, None));
    assert_eq!(stored.tokens_valid_after, w.now());
    assert!(w.store.sessions_of(&a.user_id).is_empty());
    assert_eq!(
        w.caller(&pair.access_token).await,
        Err(CallerError::Refused("session ended: sign in again"))
    );
    unauthorized(w.refresh(&pair.refresh_token).await);
    assert_field(reset(NEW_PASSWORD).await, "token");
    w.login(&a.email, NEW_PASSWORD).await.unwrap();

    // A token past its hour is refused (and used up).
    w.id.request_reset(ResetRequestRequest {
        email: a.email.clone(),
    })
    .await
    .unwrap();
    let late = w.mail.token_to(&a.email, "reset").unwrap();
    assert_ne!(late, token);
    w.clock.advance(Duration::minutes(61));
    assert_field(
        w.id.reset_password(ResetRequest {
            token: late,
            new_password: "yet another passphrase 99".into(),
        })
        .await,
        "token",
    );
    assert!(w.store.tokens().is_empty());
    assert_eq!(w.stored(&a).password_hash, stored.password_hash);
}

#[tokio::test]
async fn a_reset_link_proves_the_address_of_a_pending_account() {
    let w = world();
    let a = w.seed("pat", Role::Editor, AccountStatus::Pending);
    w.id.request_reset(ResetRequestRequest {
        email: a.email.clone(),
    })
    .await
    .unwrap();
    let token = w.mail.token_to(&a.email, "reset").unwrap();
    w.id.reset_password(ResetRequest {
        token,
        new_password: NEW_PASSWORD.into(),
    })
    .await
    .unwrap();
    assert_eq!(w.stored(&a).status, AccountStatus::Active);
}

// ----- TOTP -----

/// Sets MFA up and enables it with the current code; returns (secret, recovery codes).
async fn enable_mfa(w: &World, p: &Principal) -> (String, Vec<String>) {
    let setup =
        w.id.totp_setup(
            p,
            TotpSetupRequest {
                password: PASSWORD.into(),
            },
        )
        .await
        .unwrap();
    let codes =
        w.id.totp_enable(
            p,
            TotpEnableRequest {
                code: code(&setup.secret, w.now(), 0),
            },
        )
        .await
        .unwrap();
    (setup.secret, codes.recovery_codes)
}

#[tokio::test]
async fn totp_setup_needs_the_password_and_enable_a_right_code() {
    let w = world();
    let a = w.editor("ann");
    let p = principal_of(&a);
    let r =
        w.id.totp_enable(
            &p,
            TotpEnableRequest {
                code: "123456".into(),
            },
        )
        .await;
    assert!(
        matches!(
            r,
            Err(AppError::Conflict {
                slug: "mfa-not-set-up",
                ..
            })
        ),
        "{r:?}"
    );
    assert_field(
        w.id.totp_setup(
            &p,
            TotpSetupRequest {
                password: "not the password".into(),
            },
        )
        .await,
        "password",
    );
    assert_eq!(w.stored(&a).failed_logins, 1);
    let setup =
        w.id.totp_setup(
            &p,
            TotpSetupRequest {
                password: PASSWORD.into(),
            },
        )
        .await
        .unwrap();
    assert!(
        setup.otpauth_uri.starts_with("otpauth://totp/"),
        "{}",
        setup.otpauth_uri
    );
    assert!(
        setup
            .otpauth_uri
            .contains(&format!("secret={}", setup.secret))
    );
    // Sealed under a data key from the vault: the secret is not stored in clear.
    let stored = w.stored(&a);
    assert!(stored.mfa.data_key.is_some());
    let pending = stored.mfa.pending_secret.clone().unwrap();
    assert!(!pending.contains(&setup.secret));
    assert!(!stored.mfa.enabled);

    assert_field(
        w.id.totp_enable(
            &p,
            TotpEnableRequest {
                code: wrong_code(&setup.secret, w.now()),
            },
        )
        .await,
        "code",
    );
    assert!(!w.stored(&a).mfa.enabled);
    let now_code = code(&setup.secret, w.now(), 0);
    let codes =
        w.id.totp_enable(&p, TotpEnableRequest { code: now_code })
            .await
            .unwrap()
            .recovery_codes;
    assert_eq!(codes.len(), 10);
    let mfa = w.stored(&a).mfa;
    assert!(mfa.enabled);
    assert_eq!(mfa.secret.as_deref(), Some(pending.as_str()));
    assert_eq!(mfa.pending_secret, None);
    assert_eq!(mfa.last_step, w.now().timestamp() as u64 / 30);
    assert_eq!(mfa.recovery_hashes.len(), 10);
    for c in &codes {
        assert!(!mfa.recovery_hashes.iter().any(|h| h.contains(c.as_str())));
    }
    assert!(w.id.me(&p).await.unwrap().mfa_enabled);
    let r =
        w.id.totp_setup(
            &p,
            TotpSetupRequest {
                password: PASSWORD.into(),
            },
        )
        .await;
    assert!(
        matches!(
            r,
            Err(AppError::Conflict {
                slug: "mfa-enabled",
                ..
            })
        ),
        "{r:?}"
    );
}

/// Accounts from before secrets were sealed keep working: a clear secret and salted SHA-256
/// recovery hashes, no data key.
#[tokio::test]
async fn an_account_with_an_unsealed_secret_still_signs_in_with_codes() {
    let w = world();
    let mut a = w.editor("legacy");
    let secret = totp::new_secret().unwrap();
    a.mfa = Mfa {
        enabled: true,
        data_key: None,
        secret: Some(secret.clone()),
        pending_secret: None,
        recovery_hashes: vec![shared::crypto::sha256_hex(&format!(
            "{}:abcdefghij",
            a.user_id
        ))],
        last_step: 0,
    };
    w.store.insert_account(a.clone());
    w.login_totp(&a.email, PASSWORD, &code(&secret, w.now(), 0))
        .await
        .unwrap();
    let mut body = login_request(&a.email, PASSWORD);
    body.recovery_code = Some("ABCDE-FGHIJ".into());
    w.id.login(body, &client()).await.unwrap();
    assert!(w.stored(&a).mfa.recovery_hashes.is_empty());
}

#[tokio::test]
async fn a_totp_code_is_refused_in_the_step_it_was_used() {
    let w = world();
    let a = w.editor("ann");
    let (secret, _) = enable_mfa(&w, &principal_of(&a)).await;
    let step = w.now().timestamp() as u64 / 30;

    let r = w.login(&a.email, PASSWORD).await;
    assert!(matches!(r, Err(AppError::MfaRequired)), "{r:?}");
    assert_eq!(
        w.stored(&a).failed_logins,
        0,
        "asking for the code is no failure"
    );
    assert_eq!(
        unauthorized(
            w.login_totp(&a.email, PASSWORD, &wrong_code(&secret, w.now()))
                .await
        ),
        "the code is wrong"
    );
    // The code that enabled MFA is spent.
    let used = unauthorized(
        w.login_totp(&a.email, PASSWORD, &code(&secret, w.now(), 0))
            .await,
    );
    assert!(used.contains("used already"), "{used}");
    assert_eq!(w.stored(&a).failed_logins, 2);
    assert_eq!(w.stored(&a).mfa.last_step, step);

    // The next step's code works once.
    let next = code(&secret, w.now(), 1);
    w.login_totp(&a.email, PASSWORD, &next).await.unwrap();
    let stored = w.stored(&a);
    assert_eq!((stored.mfa.last_step, stored.failed_logins), (step + 1, 0));
    let replay = unauthorized(w.login_totp(&a.email, PASSWORD, &next).await);
    assert!(replay.contains("used already"), "{replay}");
    // Still refused once its step has come.
    w.clock.advance(Duration::seconds(30));
    let replay = unauthorized(w.login_totp(&a.email, PASSWORD, &next).await);
    assert!(replay.contains("used already"), "{replay}");
    assert_eq!(w.store.sessions_of(&a.user_id).len(), 1);

    // A wrong password with a right code is just a wrong password, and spends no code.
    let fresh = code(&secret, w.now(), 1);
    assert_eq!(
        unauthorized(w.login_totp(&a.email, "wrong password here", &fresh).await),
        WRONG_CREDENTIALS
    );
    assert_eq!(w.stored(&a).mfa.last_step, step + 1);
    w.login_totp(&a.email, PASSWORD, &fresh).await.unwrap();
}

#[tokio::test]
async fn two_logins_with_one_totp_code_at_once_admit_one() {
    let w = world();
    let a = w.editor("ann");
    let (secret, _) = enable_mfa(&w, &principal_of(&a)).await;
    let next = code(&secret, w.now(), 1);
    let (r1, r2) = tokio::join!(
        w.login_totp(&a.email, PASSWORD, &next),
        w.login_totp(&a.email, PASSWORD, &next)
    );
    let lost = match (r1, r2) {
        (Ok(_), Err(e)) | (Err(e), Ok(_)) => e,
        other => panic!("exactly one login must succeed: {other:?}"),
    };
    assert!(
        matches!(
            lost,
            AppError::Conflict {
                slug: "concurrent-change",
                ..
            }
        ),
        "{lost:?}"
    );
    assert_eq!(w.store.sessions_of(&a.user_id).len(), 1);
}

#[tokio::test]
async fn recovery_codes_work_once_each() {
    let w = world();
    let a = w.editor("ann");
    let (_, codes) = enable_mfa(&w, &principal_of(&a)).await;
    let login = |code: String| {
        let mut body = login_request(&a.email, PASSWORD);
        body.recovery_code = Some(code);
        let w = &w;
        async move { w.id.login(body, &client()).await }
    };
    login(codes[0].to_uppercase()).await.unwrap();
    assert_eq!(w.stored(&a).mfa.recovery_hashes.len(), 9);
    assert_eq!(
        unauthorized(login(codes[0].clone()).await),
        "the recovery code is wrong or used"
    );
    login(codes[1].replace('-', "")).await.unwrap();
    assert_eq!(w.stored(&a).mfa.recovery_hashes.len(), 8);
    assert_eq!(w.store.sessions_of(&a.user_id).len(), 2);
}

#[tokio::test]
async fn disabling_mfa_needs_the_password_and_a_code() {
    let w = world();
    let a = w.editor("ann");
    let p = principal_of(&a);
    let (secret, _) = enable_mfa(&w, &p).await;
    let disable = |password: &str, totp_code: Option<String>| {
        w.id.totp_disable(
            &p,
            TotpDisableRequest {
                password: password.into(),
                totp_code,
                recovery_code: None,
            },
        )
    };
    assert_field(
        disable("wrong password", Some(code(&secret, w.now(), 1))).await,
        "password",
    );
    assert_field(disable(PASSWORD, None).await, "totp_code");
    assert!(w.stored(&a).mfa.enabled);
    disable(PASSWORD, Some(code(&secret, w.now(), 1)))
        .await
        .unwrap();
    assert_eq!(w.stored(&a).mfa, Mfa::default());
    let r = disable(PASSWORD, None).await;
    assert!(
        matches!(
            r,
            Err(AppError::Conflict {
                slug: "mfa-disabled",
                ..
            })
        ),
        "{r:?}"
    );
    w.login(&a.email, PASSWORD).await.unwrap();
}

// ----- API keys -----

#[tokio::test]
async fn api_keys_are_shown_once_stored_hashed_and_within_the_role() {
    let w = world();
    let a = w.editor("ann");
    let p = principal_of(&a);
    assert_field(w.create_key(&p, &[Scope::Admin], None).await, "scopes");
    assert_field(w.create_key(&p, &[], None).await, "scopes");
    assert_field(
        w.create_key(
            &p,
            &[Scope::WorkflowsRead],
            Some(w.now() - Duration::seconds(1)),
        )
        .await,
        "expires_at",
    );
    let r =
        w.id.create_api_key(
            &p,
            CreateApiKeyRequest {
                name: "  ".into(),
                scopes: vec![Scope::WorkflowsRead],
                expires_at: None,
            },
        )
        .await;
    assert_field(r, "name");
    assert!(w.store.api_keys_of(&a.user_id).is_empty());

    let created = w
        .create_key(
            &p,
            &[
                Scope::WorkflowsWrite,
                Scope::WorkflowsRead,
                Scope::WorkflowsWrite,
            ],
            None,
        )
        .await
        .unwrap();
    let (user, key_id, secret) = credentials::parse_api_key(&created.api_key).unwrap();
    assert_eq!(
        (user, key_id),
        (a.user_id.as_str(), created.key.key_id.as_str())
    );
    let stored = w.store.api_keys_of(&a.user_id);
    assert_eq!(
        stored,
        [ApiKey {
            key_id: created.key.key_id.clone(),
            user_id: a.user_id.clone(),
            name: "ci".into(),
            scopes: vec![Scope::WorkflowsRead, Scope::WorkflowsWrite],
            created_at: w.now(),
            expires_at: None,
            secret_hash: crypto::sha256_hex(secret),
        }]
    );
    let listed = w.id.api_keys(&p).await.unwrap().items;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key_id, created.key.key_id);

    let kp = w.key_caller(&created.api_key).await.unwrap();
    assert_eq!(
        kp,
        Principal {
            user_id: a.user_id.clone(),
            role: Role::Editor,
            scopes: Some(vec![Scope::WorkflowsRead, Scope::WorkflowsWrite]),
            session_id: None,
        }
    );

    // Someone else cannot delete it.
    let b = w.editor("ben");
    assert!(matches!(
        w.id.delete_api_key(&principal_of(&b), &created.key.key_id)
            .await,
        Err(AppError::NotFound("API key"))
    ));
    w.id.delete_api_key(&p, &created.key.key_id).await.unwrap();
    assert!(w.store.api_keys_of(&a.user_id).is_empty());
    assert!(matches!(
        w.id.delete_api_key(&p, &created.key.key_id).await,
        Err(AppError::NotFound("API key"))
    ));
    assert_eq!(
        w.key_caller(&created.api_key).await,
        Err(CallerError::Refused("unknown API key"))
    );
}

#[tokio::test]
async fn an_account_holds_at_most_fifty_api_keys() {
    let w = world();
    let a = w.editor("ann");
    for key_id in ids::new_ids(account::MAX_API_KEYS) {
        w.store
            .put_api_key(&ApiKey {
                key_id,
                user_id: a.user_id.clone(),
                name: "k".into(),
                scopes: vec![Scope::WorkflowsRead],
                created_at: w.now(),
                expires_at: None,
                secret_hash: String::new(),
            })
            .await
            .unwrap();
    }
    let r = w
        .create_key(&principal_of(&a), &[Scope::WorkflowsRead], None)
        .await;
    assert!(
        matches!(
            r,
            Err(AppError::Conflict {
                slug: "too-many-api-keys",
                ..
            })
        ),
        "{r:?}"
    );
    assert_eq!(w.store.api_keys_of(&a.user_id).len(), 50);
}

// ----- who is calling (callers) -----

#[tokio::test]
async fn an_access_token_counts_for_an_active_account_issued_after_its_cutoff() {
    let w = world();
    let a = w.editor("ann");
    let session = Session {
        session_id: ids::new_id(),
        user_id: a.user_id.clone(),
        device: "d".into(),
        ip: "192.0.2.1".into(),
        created_at: w.now(),
        last_used_at: w.now(),
        expires_at: w.now() + Duration::days(1),
        refresh_hash: "r".into(),
        used_hashes: vec![],
    };
    w.store.put_session(&session).await.unwrap();
    let sid = Some(session.session_id.clone());
    let at = |iat: i64| {
        callers::from_access_token(w.store.as_ref(), a.user_id.clone(), sid.clone(), iat)
    };
    let cutoff = a.tokens_valid_after.timestamp_millis();

    // Only while its session exists, and only with one.
    assert_eq!(
        callers::from_access_token(w.store.as_ref(), a.user_id.clone(), None, cutoff).await,
        Err(CallerError::Refused("no session: sign in again"))
    );
    assert_eq!(
        callers::from_access_token(
            w.store.as_ref(),
            a.user_id.clone(),
            Some(ids::new_id()),
            cutoff
        )
        .await,
        Err(CallerError::Refused("session ended: sign in again"))
    );

    let p = at(cutoff).await.unwrap();
    assert_eq!(
        p,
        Principal {
            user_id: a.user_id.clone(),
            role: Role::Editor,
            scopes: None,
            session_id: sid.clone(),
        }
    );
    // To the millisecond: a token issued at the cutoff counts, one a millisecond before not.
    assert_eq!(
        at(cutoff - 1).await,
        Err(CallerError::Refused("revoked: sign in again"))
    );

    // The role as stored now, not as it was when the token was issued.
    let mut changed = w.stored(&a);
    changed.role = Role::Viewer;
    changed.version += 1;
    w.store.update_account(&changed).await.unwrap();
    assert_eq!(at(cutoff).await.unwrap().role, Role::Viewer);

    for (status, why) in [
        (AccountStatus::Suspended, "account suspended"),
        (AccountStatus::Pending, "email not verified"),
    ] {
        let mut changed = w.stored(&a);
        changed.status = status;
        changed.version += 1;
        w.store.update_account(&changed).await.unwrap();
        assert_eq!(at(cutoff).await, Err(CallerError::Refused(why)));
    }

    w.store.fail_next();
    assert!(matches!(at(cutoff).await, Err(CallerError::Unavailable(_))));

    w.store.delete_account(&w.stored(&a)).await.unwrap();
    assert_eq!(
        at(cutoff).await,
        Err(CallerError::Refused("account no longer exists"))
    );
}

#[tokio::test]
async fn an_api_key_counts_with_its_secret_before_its_expiry_and_after_the_cutoff() {
    let w = world();
    let a = w.editor("ann");
    let p = principal_of(&a);
    let expiring = w
        .create_key(
            &p,
            &[Scope::WorkflowsRead],
            Some(w.now() + Duration::hours(1)),
        )
        .await
        .unwrap();
    let lasting = w
        .create_key(&p, &[Scope::WorkflowsRead], None)
        .await
        .unwrap();
    w.key_caller(&expiring.api_key).await.unwrap();

    let (user, key_id, secret) = credentials::parse_api_key(&lasting.api_key).unwrap();
    let refused =
        |why: &'static str| -> Result<Principal, CallerError> { Err(CallerError::Refused(why)) };
    let with = |user: &str, key: &str, secret: &str| {
        let (user, key, secret) = (user.to_string(), key.to_string(), secret.to_string());
        let store = w.store.clone();
        let now = w.now();
        async move { callers::from_api_key(store.as_ref(), &user, &key, &secret, now).await }
    };
    assert_eq!(
        with(user, key_id, "wrong secret").await,
        refused("unknown API key")
    );
    let expiring_id = expiring.key.key_id.as_str();
    assert_eq!(
        with(user, expiring_id, secret).await,
        refused("unknown API key")
    );
    assert_eq!(
        with(user, &ids::new_id(), secret).await,
        refused("unknown API key")
    );
    // Another user's id with this key: not found under that user.
    let b = w.editor("ben");
    assert_eq!(
        with(&b.user_id, key_id, secret).await,
        refused("unknown API key")
    );

    w.clock.advance(Duration::hours(1));
    assert_eq!(
        w.key_caller(&expiring.api_key).await,
        refused("API key expired")
    );
    w.key_caller(&lasting.api_key).await.unwrap();

    for (status, why) in [
        (AccountStatus::Suspended, "account suspended"),
        (AccountStatus::Pending, "email not verified"),
    ] {
        let mut changed = w.stored(&a);
        changed.status = status;
        changed.version += 1;
        w.store.update_account(&changed).await.unwrap();
        assert_eq!(w.key_caller(&lasting.api_key).await, refused(why));
    }
    let mut changed = w.stored(&a);
    changed.status = AccountStatus::Active;
    changed.tokens_valid_after = w.now();
    changed.version += 1;
    w.store.update_account(&changed).await.unwrap();
    assert_eq!(
        w.key_caller(&lasting.api_key).await,
        refused("API key revoked: the account's credentials were reset")
    );
    // A key made at or after the cutoff counts.
    let newer = w
        .create_key(&p, &[Scope::WorkflowsRead], None)
        .await
        .unwrap();
    w.key_caller(&newer.api_key).await.unwrap();

    w.store.fail_next_call_to("api_key_with_state");
    assert!(matches!(
        w.key_caller(&newer.api_key).await,
        Err(CallerError::Unavailable(_))
    ));

    // A key whose account is gone (the key left behind): refused.
    let (_, newer_id, newer_secret) = credentials::parse_api_key(&newer.api_key).unwrap();
    let orphan = ApiKey {
        key_id: ids::new_id(),
        user_id: ids::new_id(),
        name: "orphan".into(),
        scopes: vec![Scope::WorkflowsRead],
        created_at: w.now(),
        expires_at: None,
        secret_hash: crypto::sha256_hex(newer_secret),
    };
    w.store.put_api_key(&orphan).await.unwrap();
    assert_eq!(
        with(&orphan.user_id, &orphan.key_id, newer_secret).await,
        refused("account no longer exists")
    );
    // Deleting the account deletes its keys.
    w.store.delete_account(&w.stored(&a)).await.unwrap();
    assert_eq!(
        with(user, newer_id, newer_secret).await,
        refused("unknown API key")
    );
}

#[tokio::test]
async fn a_store_outage_is_unavailable_not_a_refusal() {
    let w = world();
    let a = w.editor("ann");
    let (pair, p) = w.signed_in(&a).await;
    w.store.fail_next();
    assert!(matches!(
        w.login(&a.email, PASSWORD).await,
        Err(AppError::Unavailable(_))
    ));
    w.store.fail_next();
    assert!(matches!(
        w.refresh(&pair.refresh_token).await,
        Err(AppError::Unavailable(_))
    ));
    w.store.fail_next_call_to("rotate_session");
    assert!(matches!(
        w.refresh(&pair.refresh_token).await,
        Err(AppError::Unavailable(_))
    ));
    w.store.fail_next();
    assert!(matches!(w.id.me(&p).await, Err(AppError::Unavailable(_))));
    w.store.fail_next_call_to("session_state");
    assert!(matches!(
        w.caller(&pair.access_token).await,
        Err(CallerError::Unavailable(_))
    ));
    // Nothing was counted or ended by the failures.
    assert_eq!(w.stored(&a).failed_logins, 0);
    w.refresh(&pair.refresh_token).await.unwrap();
}

// ----- admin -----

#[tokio::test]
async fn only_admins_use_the_admin_api_and_never_on_themselves() {
    let w = world();
    let boss = w.seed("boss", Role::Admin, AccountStatus::Active);
    let ann = w.editor("ann");
    let (ap, bp) = (principal_of(&ann), principal_of(&boss));
    let forbidden = |r: Result<UserView, AppError>| {
        assert!(matches!(r, Err(AppError::Forbidden(_))), "{r:?}");
    };
    forbidden(w.id.admin_get_user(&ap, &boss.user_id).await);
    forbidden(w.id.admin_set_status(&ap, &boss.user_id, true).await);
    forbidden(
        w.id.admin_set_role(&ap, &ann.user_id, SetRoleRequest { role: Role::Admin })
            .await,
    );
    forbidden(w.id.admin_reset_mfa(&ap, &boss.user_id).await);
    assert!(matches!(
        w.id.admin_list_users(&ap, AccountFilter::default(), 10, None)
            .await,
        Err(AppError::Forbidden(_))
    ));
    assert!(matches!(
        w.id.admin_delete_user(&ap, &boss.user_id).await,
        Err(AppError::Forbidden(_))
    ));
    assert!(matches!(
        w.id.admin_end_sessions(&ap, &boss.user_id).await,
        Err(AppError::Forbidden(_))
    ));
    assert!(matches!(
        w.id.admin_rotate_signing_key(&ap).await,
        Err(AppError::Forbidden(_))
    ));
    assert_eq!(w.stored(&ann), ann);

    let own = |r: Result<(), AppError>| {
        assert!(
            matches!(
                r,
                Err(AppError::Conflict {
                    slug: "own-account",
                    ..
                })
            ),
            "{r:?}"
        );
    };
    own(w
        .id
        .admin_set_status(&bp, &boss.user_id, true)
        .await
        .map(|_| ()));
    own(w
        .id
        .admin_set_role(&bp, &boss.user_id, SetRoleRequest { role: Role::Viewer })
        .await
        .map(|_| ()));
    own(w.id.admin_delete_user(&bp, &boss.user_id).await);
    assert_eq!(w.stored(&boss), boss);
    assert!(matches!(
        w.id.admin_get_user(&bp, &ids::new_id()).await,
        Err(AppError::NotFound("user"))
    ));

    // Role changes hold at the next request.
    let view =
        w.id.admin_set_role(&bp, &ann.user_id, SetRoleRequest { role: Role::Viewer })
            .await
            .unwrap();
    assert_eq!(view.role, Role::Viewer);
    assert_eq!(w.stored(&ann).version, 2);
    let session = w.login(&ann.email, PASSWORD).await.unwrap().session_id;
    let ap = callers::from_access_token(
        w.store.as_ref(),
        ann.user_id.clone(),
        Some(session),
        w.now().timestamp_millis(),
    )
    .await
    .unwrap();
    assert_eq!(ap.role, Role::Viewer);
    assert_field(
        w.create_key(&ap, &[Scope::WorkflowsWrite], None).await,
        "scopes",
    );
}

#[tokio::test]
async fn suspension_ends_sessions_tokens_and_keys_and_they_stay_revoked_after_reactivation() {
    let w = world();
    let boss = w.seed("boss", Role::Admin, AccountStatus::Active);
    let bp = principal_of(&boss);
    let u = w.editor("sue");
    let (pair, p) = w.signed_in(&u).await;
    let key = w
        .create_key(&p, &[Scope::WorkflowsRead], None)
        .await
        .unwrap();
    w.clock.advance(Duration::seconds(2));

    let view = w.id.admin_set_status(&bp, &u.user_id, true).await.unwrap();
    assert_eq!(view.status, AccountStatus::Suspended);
    let stored = w.stored(&u);
    assert_eq!(stored.status, AccountStatus::Suspended);
    assert_eq!(stored.tokens_valid_after, w.now());
    assert!(w.store.sessions_of(&u.user_id).is_empty());
    assert_eq!(
        w.caller(&pair.access_token).await,
        Err(CallerError::Refused("account suspended"))
    );
    assert_eq!(
        w.key_caller(&key.api_key).await,
        Err(CallerError::Refused("account suspended"))
    );
    unauthorized(w.refresh(&pair.refresh_token).await);
    assert!(matches!(
        w.login(&u.email, PASSWORD).await,
        Err(AppError::Forbidden("this account is suspended"))
    ));
    // Suspending again changes nothing.
    w.id.admin_set_status(&bp, &u.user_id, true).await.unwrap();
    assert_eq!(w.stored(&u).version, stored.version);

    let view = w.id.admin_set_status(&bp, &u.user_id, false).await.unwrap();
    assert_eq!(view.status, AccountStatus::Active);
    // Suspension ended every credential: what was issued before stays revoked.
    assert_eq!(
        w.key_caller(&key.api_key).await,
        Err(CallerError::Refused(
            "API key revoked: the account's credentials were reset"
        ))
    );
    assert_eq!(
        w.caller(&pair.access_token).await,
        Err(CallerError::Refused("session ended: sign in again"))
    );
    let fresh = w.login(&u.email, PASSWORD).await.unwrap();
    w.caller(&fresh.access_token).await.unwrap();
}

#[tokio::test]
async fn an_admin_ends_all_sessions_resets_mfa_and_deletes_a_user() {
    let w = world();
    let boss = w.seed("boss", Role::Admin, AccountStatus::Active);
    let bp = principal_of(&boss);
    let u = w.editor("gone");
    let (pair, p) = w.signed_in(&u).await;
    let key = w
        .create_key(&p, &[Scope::WorkflowsRead], None)
        .await
        .unwrap();
    w.clock.advance(Duration::seconds(2));

    w.id.admin_end_sessions(&bp, &u.user_id).await.unwrap();
    assert!(w.store.sessions_of(&u.user_id).is_empty());
    assert_eq!(w.stored(&u).tokens_valid_after, w.now());
    assert_eq!(
        w.caller(&pair.access_token).await,
        Err(CallerError::Refused("session ended: sign in again"))
    );
    assert!(w.key_caller(&key.api_key).await.is_err());
    unauthorized(w.refresh(&pair.refresh_token).await);

    // MFA: an admin turns it off for someone who lost their authenticator.
    let (pair, p) = w.signed_in(&u).await;
    enable_mfa(&w, &p).await;
    assert!(matches!(
        w.login(&u.email, PASSWORD).await,
        Err(AppError::MfaRequired)
    ));
    let view = w.id.admin_reset_mfa(&bp, &u.user_id).await.unwrap();
    assert!(!view.mfa_enabled);
    assert_eq!(w.stored(&u).mfa, Mfa::default());

    w.id.request_reset(ResetRequestRequest {
        email: u.email.clone(),
    })
    .await
    .unwrap();
    let key = w
        .create_key(&p, &[Scope::WorkflowsRead], None)
        .await
        .unwrap();
    w.id.admin_delete_user(&bp, &u.user_id).await.unwrap();
    assert_eq!(w.store.account(&u.user_id), None);
    assert_eq!(
        w.store.email_owner(&u.email),
        None,
        "the email is free again"
    );
    assert!(w.store.sessions_of(&u.user_id).is_empty());
    assert!(w.store.api_keys_of(&u.user_id).is_empty());
    // Emailed tokens stay until their TTL, naming an account that is gone: they do nothing.
    assert_eq!(w.store.tokens_of(&u.user_id).len(), 1);
    let token = w.mail.token_to(&u.email, "reset").unwrap();
    assert_field(
        w.id.reset_password(ResetRequest {
            token,
            new_password: NEW_PASSWORD.into(),
        })
        .await,
        "token",
    );
    assert_eq!(
        w.caller(&pair.access_token).await,
        Err(CallerError::Refused("account no longer exists"))
    );
    assert_eq!(
        w.key_caller(&key.api_key).await,
        Err(CallerError::Refused("unknown API key"))
    );
    assert_eq!(
        unauthorized(w.login(&u.email, PASSWORD).await),
        WRONG_CREDENTIALS
    );
    assert!(matches!(
        w.id.admin_get_user(&bp, &u.user_id).await,
        Err(AppError::NotFound("user"))
    ));
    w.register(&u.email, NEW_PASSWORD, "Again").await.unwrap();
    assert_ne!(w.user_id_of(&u.email), u.user_id);
}

#[tokio::test]
async fn the_admin_list_filters_and_pages_like_the_table() {
    let w = world();
    let boss = w.seed("dora", Role::Admin, AccountStatus::Active);
    w.seed("ann", Role::Editor, AccountStatus::Active);
    w.seed("bob", Role::Viewer, AccountStatus::Active);
    w.seed("carl", Role::Editor, AccountStatus::Suspended);
    w.seed("eve", Role::Editor, AccountStatus::Pending);
    let bp = principal_of(&boss);
    let list = |filter: AccountFilter, limit: u32, after: Option<PageKey>| {
        w.id.admin_list_users(&bp, filter, limit, after)
    };
    let names = |page: &Page<Account>| -> Vec<String> {
        page.items.iter().map(|a| a.display_name.clone()).collect()
    };

    let all = list(AccountFilter::default(), 10, None).await.unwrap();
    assert_eq!(names(&all), ["ann", "bob", "carl", "dora", "eve"]);
    assert_eq!(all.next, None);

    let p1 = list(AccountFilter::default(), 2, None).await.unwrap();
    assert_eq!(names(&p1), ["ann", "bob"]);
    let p2 = list(AccountFilter::default(), 2, p1.next.clone())
        .await
        .unwrap();
    assert_eq!(names(&p2), ["carl", "dora"]);
    let p3 = list(AccountFilter::default(), 2, p2.next.clone())
        .await
        .unwrap();
    assert_eq!((names(&p3), p3.next), (vec!["eve".to_string()], None));
    // A page that reaches the limit has a next key even when nothing follows (DynamoDB).
    let full = list(AccountFilter::default(), 5, None).await.unwrap();
    assert!(full.next.is_some());
    let empty = list(AccountFilter::default(), 5, full.next).await.unwrap();
    assert_eq!((empty.items.len(), empty.next), (0, None));

    // Filters apply to the items read: a page may be short and still have a next key.
    let active = AccountFilter {
        status: Some(AccountStatus::Active),
        ..Default::default()
    };
    let a1 = list(active.clone(), 2, None).await.unwrap();
    assert_eq!(names(&a1), ["ann", "bob"]);
    let a2 = list(active.clone(), 2, a1.next).await.unwrap();
    assert_eq!(names(&a2), ["dora"]);
    let a3 = list(active, 2, a2.next).await.unwrap();
    assert_eq!((a3.items.len(), a3.next), (0, None));

    let viewers = AccountFilter {
        role: Some(Role::Viewer),
        ..Default::default()
    };
    assert_eq!(names(&list(viewers, 10, None).await.unwrap()), ["bob"]);
    let prefix = AccountFilter {
        email_prefix: Some("ca".into()),
        ..Default::default()
    };
    assert_eq!(names(&list(prefix, 10, None).await.unwrap()), ["carl"]);

    let mut forged = p1.next.clone().unwrap();
    forged.0.insert("GSI1PK".into(), "OWNER#x".into());
    assert!(matches!(
        list(AccountFilter::default(), 2, Some(forged)).await,
        Err(AppError::BadCursor)
    ));
    assert!(matches!(
        list(AccountFilter::default(), 2, Some(PageKey::default())).await,
        Err(AppError::BadCursor)
    ));
}

#[tokio::test]
async fn promote_makes_an_admin_of_an_active_account_only() {
    let w = world();
    let pending = w.seed("pat", Role::Editor, AccountStatus::Pending);
    let ann = w.editor("ann");
    let r = admin::promote(w.store.as_ref(), &pending.email, w.now()).await;
    assert!(
        matches!(
            r,
            Err(AppError::Conflict {
                slug: "account-not-active",
                ..
            })
        ),
        "{r:?}"
    );
    assert!(matches!(
        admin::promote(w.store.as_ref(), "ghost@example.com", w.now()).await,
        Err(AppError::NotFound("account"))
    ));
    let promoted = admin::promote(w.store.as_ref(), " ANN@example.com", w.now())
        .await
        .unwrap();
    assert_eq!(promoted.role, Role::Admin);
    let stored = w.stored(&ann);
    assert_eq!((stored.role, stored.version), (Role::Admin, 2));
    // Promoting again writes nothing.
    admin::promote(w.store.as_ref(), &ann.email, w.now())
        .await
        .unwrap();
    assert_eq!(w.stored(&ann).version, 2);
}

#[tokio::test]
async fn rotation_publishes_a_new_key_at_once_and_retires_the_old_one() {
    let w = world();
    let boss = w.seed("boss", Role::Admin, AccountStatus::Active);
    let ann = w.editor("ann");
    let (before, _) = w.signed_in(&ann).await;
    let kid = |t: &str| jsonwebtoken::decode_header(t).unwrap().kid.unwrap();
    let old = w.store.stored_signing_keys();
    assert_eq!(old.len(), 1, "made on first use");
    assert_eq!(kid(&before.access_token), old[0].public.kid);
    assert!(
        old[0].encrypted_private_key.len() > 100 && !old[0].retired,
        "the private key is stored encrypted"
    );

    w.clock.advance(Duration::seconds(1));
    let rotated =
        w.id.admin_rotate_signing_key(&principal_of(&boss))
            .await
            .unwrap();
    assert_ne!(rotated.kid, old[0].public.kid);
    let keys = w.store.signing_keys(w.now()).await.unwrap();
    let kids: Vec<&str> = keys.iter().map(|k| k.public.kid.as_str()).collect();
    assert_eq!(
        kids,
        [rotated.kid.as_str(), old[0].public.kid.as_str()],
        "newest first"
    );
    let retired_until = (w.now() + Duration::hours(24)).timestamp();
    assert!(keys[1].retired);
    assert_eq!(
        keys[1].expires_at.map(|t| t.timestamp()),
        Some(retired_until)
    );
    assert_eq!(keys[1].public.expires_at, keys[1].expires_at);
    assert!(!keys[0].retired && keys[0].expires_at.is_none());

    // New tokens carry the new kid (this signer activates keys at once); old ones still verify.
    let (after, _) = w.signed_in(&ann).await;
    assert_eq!(kid(&after.access_token), rotated.kid);
    w.caller(&before.access_token).await.unwrap();

    // A day later the old key no longer verifies anything.
    w.clock.advance(Duration::hours(24) + Duration::seconds(1));
    let keys = w.store.signing_keys(w.now()).await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].public.kid, rotated.kid);
    assert_eq!(
        w.store.stored_signing_keys().len(),
        2,
        "until the TTL sweep"
    );
}

// ----- the fakes themselves -----

#[tokio::test]
async fn the_memory_store_keeps_the_adapters_conditions() {
    let w = world();
    let s = w.store.as_ref();
    let a = w.editor("ann");
    let now = w.now();
    let token = OneTimeToken {
        hash: "h1".into(),
        purpose: TokenPurpose::VerifyEmail,
        user_id: a.user_id.clone(),
        created_at: now,
        expires_at: now + Duration::milliseconds(1500),
        password_hash: None,
        display_name: None,
    };
    // A taken email: Duplicate, and nothing of the transaction is written.
    let twin = Account {
        user_id: ids::new_id(),
        ..a.clone()
    };
    assert!(matches!(
        s.create_account(&twin, &token).await,
        Err(StoreError::Duplicate)
    ));
    assert!(s.get_account(&twin.user_id).await.unwrap().is_none());
    assert!(w.store.tokens().is_empty());

    // Versions.
    let mut next = a.clone();
    next.display_name = "Ann B".into();
    assert!(matches!(
        s.update_account(&next).await,
        Err(StoreError::Conflict)
    ));
    next.version = 2;
    s.update_account(&next).await.unwrap();
    assert!(matches!(
        s.update_account(&next).await,
        Err(StoreError::Conflict)
    ));
    let ghost = Account {
        user_id: ids::new_id(),
        version: 1,
        ..a.clone()
    };
    assert!(matches!(
        s.update_account(&ghost).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        s.find_account_by_email(&a.email).await.unwrap(),
        Some(next.clone())
    );
    s.record_login_failure(&ghost.user_id, now).await.unwrap();

    // Tokens: taken at most once; TTLs are whole seconds.
    s.put_token(&token).await.unwrap();
    let taken = s.take_token("h1").await.unwrap().unwrap();
    assert_eq!(taken.expires_at.timestamp_subsec_nanos(), 0);
    assert_eq!(taken.expires_at.timestamp(), token.expires_at.timestamp());
    assert_eq!(s.take_token("h1").await.unwrap(), None);

    // Sessions: rotation conditional on the refresh hash.
    let session = Session {
        session_id: ids::new_id(),
        user_id: a.user_id.clone(),
        device: "d".into(),
        ip: "i".into(),
        created_at: now,
        last_used_at: now,
        expires_at: now + Duration::milliseconds(2500),
        refresh_hash: "r1".into(),
        used_hashes: vec![],
    };
    s.put_session(&session).await.unwrap();
    let rotated = Session {
        refresh_hash: "r2".into(),
        ..session.clone()
    };
    assert!(matches!(
        s.rotate_session(&rotated, "r0").await,
        Err(StoreError::Conflict)
    ));
    s.rotate_session(&rotated, "r1").await.unwrap();
    assert!(matches!(
        s.rotate_session(&rotated, "r1").await,
        Err(StoreError::Conflict)
    ));
    let read = s
        .get_session(&a.user_id, &session.session_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.refresh_hash, "r2");
    assert_eq!(read.expires_at.timestamp_subsec_nanos(), 0);
    assert!(
        s.delete_session(&a.user_id, &session.session_id)
            .await
            .unwrap()
    );
    assert!(
        !s.delete_session(&a.user_id, &session.session_id)
            .await
            .unwrap()
    );
    assert!(matches!(
        s.rotate_session(&rotated, "r2").await,
        Err(StoreError::Conflict)
    ));
    assert!(
        w.store.sessions_of(&a.user_id).is_empty(),
        "not brought back"
    );

    // API keys and signing keys are never overwritten.
    let key = ApiKey {
        key_id: ids::new_id(),
        user_id: a.user_id.clone(),
        name: "k".into(),
        scopes: vec![Scope::WorkflowsRead],
        created_at: now,
        expires_at: None,
        secret_hash: "s".into(),
    };
    s.put_api_key(&key).await.unwrap();
    assert!(matches!(
        s.put_api_key(&key).await,
        Err(StoreError::Duplicate)
    ));
    assert!(matches!(
        s.retire_signing_key("no such kid", now).await,
        Err(StoreError::Internal(_))
    ));

    // Injected failures change nothing and hit only what they name.
    w.store.fail_next_call_to("delete_api_key");
    s.get_account(&a.user_id).await.unwrap();
    assert!(matches!(
        s.delete_api_key(&a.user_id, &key.key_id).await,
        Err(StoreError::Unavailable(_))
    ));
    assert_eq!(w.store.api_keys_of(&a.user_id).len(), 1);
    w.store.fail_next();
    w.store.fail_next();
    assert!(s.list_api_keys(&a.user_id).await.is_err());
    assert!(s.get_account(&a.user_id).await.is_err());
    assert!(s.get_account(&a.user_id).await.unwrap().is_some());

    // Deleting an account takes its sessions, keys and guard, not its emailed tokens.
    s.put_session(&session).await.unwrap();
    s.put_token(&token).await.unwrap();
    s.delete_account(&next).await.unwrap();
    assert_eq!(s.find_account_by_email(&a.email).await.unwrap(), None);
    assert!(s.list_sessions(&a.user_id).await.unwrap().is_empty());
    assert!(s.list_api_keys(&a.user_id).await.unwrap().is_empty());
    assert_eq!(
        s.session_state(&a.user_id, &session.session_id)
            .await
            .unwrap(),
        (None, false)
    );
    assert_eq!(w.store.tokens_of(&a.user_id).len(), 1);
}

#[tokio::test]
async fn the_memory_vault_round_trips_only_its_own_keys() {
    let vault = MemoryVault::new();
    let k1 = vault.generate_data_key().await.unwrap();
    let k2 = vault.generate_data_key().await.unwrap();
    assert_eq!(k1.plaintext.len(), 32);
    assert_ne!(k1.plaintext, k2.plaintext);
    assert_ne!(k1.ciphertext, k1.plaintext);
    assert_eq!(
        vault.decrypt_data_key(&k1.ciphertext).await.unwrap(),
        k1.plaintext
    );
    assert_eq!(
        vault.decrypt_data_key(&k2.ciphertext).await.unwrap(),
        k2.plaintext
    );
    assert!(matches!(
        vault.decrypt_data_key(b"someone else's").await,
        Err(StoreError::Internal(_))
    ));
    vault.fail_next();
    assert!(matches!(
        vault.decrypt_data_key(&k1.ciphertext).await,
        Err(StoreError::Unavailable(_))
    ));
    assert_eq!((vault.generated(), vault.decrypted()), (2, 2));
}
