//! Notifications: a user's channels and preferences, the delivery log, admins' templates and
//! system notices ([`settings`] of this module), raising notifications from the table's
//! stream ([`raise`]) and delivering them from the notifications queue ([`deliver`]).

pub mod deliver;
pub mod raise;

use super::{AppError, require_admin};
use crate::crypto;
use crate::domain::notification::{
    CODE_TTL_MINUTES, Channel, ChannelStatus, ChannelView, CreateChannelRequest, MAX_CHANNELS,
    MAX_CODE_ATTEMPTS, MAX_NOTICE_BODY_CHARS, MAX_NOTICE_SUBJECT_CHARS, Notice, NoticeRequest,
    Notification, PREVIOUS_SECRET_HOURS, PreviousSecret, TemplateOverride, TemplateRequest,
    TemplateView, UpdateChannelRequest, Verification, VerifyChannelRequest, check_name,
};
use crate::domain::notify::templates::{self, Format};
use crate::domain::notify::{self, ChannelKind, EventKind, Preferences};
use crate::domain::{FieldError, Principal, ids};
use crate::ports::{KeyVault, Notifications, NotifyAdmin, NotifyConfig, Page, PageKey};
use chrono::{DateTime, Utc};

/// The refusal of the notification admin routes (templates, notices) to anyone else.
const ADMIN_ONLY: &str = "only admins may change notification templates or send notices";

/// Webhook signing secrets start with this, so they are recognisable in a config file.
pub const SECRET_PREFIX: &str = "whsec_";

/// What the AAD of a channel's sealed secret binds it to.
fn secret_aad(channel: &Channel) -> String {
    format!("notify-secret:{}:{}", channel.user_id, channel.id)
}

/// A new signing secret for `channel`: in clear (shown once), and sealed in the channel under a
/// new data key.
async fn new_secret(
    vault: &dyn KeyVault,
    channel: &mut Channel,
    now: DateTime<Utc>,
) -> Result<String, AppError> {
    use base64::Engine;
    let secret = format!(
        "{SECRET_PREFIX}{}",
        crypto::random_secret().map_err(|e| AppError::Internal(e.to_string()))?
    );
    let key = vault.generate_data_key().await?;
    let sealed = crypto::seal_b64(&key.plaintext, secret.as_bytes(), &secret_aad(channel))
        .map_err(|e| AppError::Internal(e.to_string()))?;
    // The secret it replaces still signs for a day.
    if let (Some(sealed_secret), Some(data_key)) =
        (channel.sealed_secret.take(), channel.data_key.take())
    {
        channel.previous_secret = Some(PreviousSecret {
            sealed_secret,
            data_key,
            until: now + chrono::Duration::hours(PREVIOUS_SECRET_HOURS),
        });
    }
    channel.sealed_secret = Some(sealed);
    channel.data_key = Some(base64::engine::general_purpose::STANDARD.encode(key.ciphertext));
    Ok(secret)
}

fn open_sealed(key: &[u8], sealed: &str, channel: &Channel) -> Result<Vec<u8>, AppError> {
    crypto::open_b64(key, sealed, &secret_aad(channel))
        .map_err(|e| AppError::Internal(e.to_string()))
}

async fn open_data_key(vault: &dyn KeyVault, data_key: &str) -> Result<Vec<u8>, AppError> {
    use base64::Engine;
    let data_key = base64::engine::general_purpose::STANDARD
        .decode(data_key)
        .map_err(|e| AppError::Internal(format!("data key: {e}")))?;
    Ok(vault.decrypt_data_key(&data_key).await?)
}

/// The secrets a webhook's deliveries are signed with, opened with the key service: its
/// secret, and the one before while it still signs.
pub async fn signing_secrets(
    vault: &dyn KeyVault,
    channel: &Channel,
    now: DateTime<Utc>,
) -> Result<Vec<Vec<u8>>, AppError> {
    let (Some(sealed), Some(data_key)) = (&channel.sealed_secret, &channel.data_key) else {
        return Err(AppError::Internal(
            "the webhook has no signing secret".into(),
        ));
    };
    let mut secrets = vec![open_sealed(
        &open_data_key(vault, data_key).await?,
        sealed,
        channel,
    )?];
    if let Some(p) = channel.previous_secret.as_ref().filter(|p| p.until > now) {
        let key = open_data_key(vault, &p.data_key).await?;
        secrets.push(open_sealed(&key, &p.sealed_secret, channel)?);
    }
    Ok(secrets)
}

pub async fn list_channels(
    store: &dyn NotifyConfig,
    user_id: &str,
) -> Result<Vec<ChannelView>, AppError> {
    let settings = store.notify_settings(user_id).await?;
    Ok(settings.channels.iter().map(Channel::view).collect())
}

/// The user's channel `id` (404 for anyone else's: they look alike).
async fn own_channel(
    store: &(impl NotifyConfig + ?Sized),
    user_id: &str,
    id: &str,
) -> Result<Channel, AppError> {
    store
        .notify_settings(user_id)
        .await?
        .channels
        .into_iter()
        .find(|c| c.id == id)
        .ok_or(AppError::NotFound("channel"))
}

pub async fn get_channel(
    store: &dyn NotifyConfig,
    user_id: &str,
    id: &str,
) -> Result<ChannelView, AppError> {
    Ok(own_channel(store, user_id, id).await?.view())
}

/// A channel just added: its view (a webhook's with its signing secret, once) and, for an
/// email or SMS channel, the notice that carries its confirmation code.
pub struct Created {
    pub view: ChannelView,
    pub verification: Option<Notice>,
}

/// The hash a confirmation code is kept as.
fn code_hash(channel_id: &str, code: &str) -> String {
    crypto::sha256_hex(&format!("{channel_id}:{}", code.trim()))
}

/// A new confirmation code for `channel` (kept as its hash, for an hour), and the notice that
/// sends it to the channel alone.
fn new_code(channel: &mut Channel, now: DateTime<Utc>) -> Result<Notice, AppError> {
    let random = crypto::random_bytes(4).map_err(|e| AppError::Internal(e.to_string()))?;
    let code = format!(
        "{:06}",
        u32::from_be_bytes([random[0], random[1], random[2], random[3]]) % 1_000_000
    );
    channel.verification = Some(Verification {
        code_sha256: code_hash(&channel.id, &code),
        expires_at: now + chrono::Duration::minutes(CODE_TTL_MINUTES),
        attempts: 0,
    });
    Ok(Notice {
        id: ids::new_id(),
        user_id: Some(channel.user_id.clone()),
        channel_id: Some(channel.id.clone()),
        verification: true,
        subject: "Confirm this channel".into(),
        body: format!(
            "Your Document Workflow Chain confirmation code is {code}. It expires in one hour. \
             If you did not add this channel, ignore this message."
        ),
        send_at: now,
        created_at: now,
        created_by: channel.user_id.clone(),
    })
}

/// Adds a channel; a webhook's answer carries its signing secret, once. Email and SMS
/// channels start unverified, and a code is sent to them.
pub async fn create_channel(
    store: &(impl NotifyConfig + NotifyAdmin + ?Sized),
    vault: &dyn KeyVault,
    allow_private_targets: bool,
    user_id: &str,
    request: CreateChannelRequest,
    now: DateTime<Utc>,
) -> Result<Created, AppError> {
    let mut errors: Vec<FieldError> = Vec::new();
    if let Err(e) = check_name(&request.name, "name") {
        errors.push(e);
    }
    let target = request.target.trim().to_string();
    if let Err(e) = notify::check_target(request.kind, &target, allow_private_targets) {
        errors.push(e);
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let settings = store.notify_settings(user_id).await?;
    if settings.channels.len() >= MAX_CHANNELS {
        return Err(AppError::Conflict {
            slug: "too-many-channels",
            detail: "a user may have at most 20 channels; delete one first",
        });
    }
    let mut channel = Channel {
        id: ids::new_id(),
        user_id: user_id.to_string(),
        kind: request.kind,
        name: request.name.trim().to_string(),
        target,
        status: ChannelStatus::Active,
        failure: None,
        sealed_secret: None,
        data_key: None,
        verification: None,
        previous_secret: None,
        created_at: now,
        updated_at: now,
    };
    let secret = if request.kind == ChannelKind::Webhook {
        Some(new_secret(vault, &mut channel, now).await?)
    } else {
        None
    };
    let verification = if matches!(request.kind, ChannelKind::Email | ChannelKind::Sms) {
        channel.status = ChannelStatus::Unverified;
        Some(new_code(&mut channel, now)?)
    } else {
        None
    };
    store.put_channel(&channel).await?;
    if let Some(notice) = &verification {
        store.put_notice(notice).await?;
    }
    let mut view = channel.view();
    view.secret = secret;
    Ok(Created { view, verification })
}

/// Confirms an email or SMS channel with the code it received, or sends a new code
/// (`resend`). A wrong code is 422 and counts; after 5, or an hour, only a new code helps.
pub async fn verify_channel(
    store: &(impl NotifyConfig + NotifyAdmin + ?Sized),
    user_id: &str,
    id: &str,
    request: VerifyChannelRequest,
    now: DateTime<Utc>,
) -> Result<Created, AppError> {
    let mut channel = own_channel(store, user_id, id).await?;
    if channel.status != ChannelStatus::Unverified {
        return Err(AppError::Conflict {
            slug: "channel-verified",
            detail: "the channel is verified already",
        });
    }
    channel.updated_at = now;
    if request.resend == Some(true) {
        let notice = new_code(&mut channel, now)?;
        if !store.replace_channel(&channel).await? {
            return Err(AppError::NotFound("channel"));
        }
        store.put_notice(&notice).await?;
        return Ok(Created {
            view: channel.view(),
            verification: Some(notice),
        });
    }
    let Some(code) = request.code else {
        return Err(AppError::field(
            "code",
            "the code the channel received, or {\"resend\": true} for a new one",
        ));
    };
    let Some(pending) = channel.verification.as_mut() else {
        return Err(AppError::Conflict {
            slug: "code-expired",
            detail: "no code is pending; ask for a new one with {\"resend\": true}",
        });
    };
    if pending.expires_at <= now || pending.attempts >= MAX_CODE_ATTEMPTS {
        return Err(AppError::Conflict {
            slug: "code-expired",
            detail: "the code expired or was tried too often; ask for a new one with {\"resend\": true}",
        });
    }
    if !crypto::constant_time_eq(&code_hash(&channel.id, &code), &pending.code_sha256) {
        pending.attempts += 1;
        store.replace_channel(&channel).await?;
        return Err(AppError::field("code", "does not match the code sent"));
    }
    channel.status = ChannelStatus::Active;
    channel.verification = None;
    if !store.replace_channel(&channel).await? {
        return Err(AppError::NotFound("channel"));
    }
    Ok(Created {
        view: channel.view(),
        verification: None,
    })
}

/// Renames a channel, turns it on or off (on again clears a failure), or gives a webhook a
/// new signing secret (shown once).
pub async fn update_channel(
    store: &dyn NotifyConfig,
    vault: &dyn KeyVault,
    user_id: &str,
    id: &str,
    request: UpdateChannelRequest,
    now: DateTime<Utc>,
) -> Result<ChannelView, AppError> {
    if let Some(name) = &request.name {
        check_name(name, "name").map_err(|e| AppError::Validation(vec![e]))?;
    }
    let mut channel = own_channel(store, user_id, id).await?;
    if request.rotate_secret == Some(true) && channel.kind != ChannelKind::Webhook {
        return Err(AppError::field(
            "rotate_secret",
            "only webhooks have a signing secret",
        ));
    }
    if let Some(name) = request.name {
        channel.name = name.trim().to_string();
    }
    if request.enabled.is_some() && channel.status == ChannelStatus::Unverified {
        return Err(AppError::Conflict {
            slug: "channel-unverified",
            detail: "confirm the channel with the code it received first (POST .../verify)",
        });
    }
    match request.enabled {
        Some(true) => {
            channel.status = ChannelStatus::Active;
            channel.failure = None;
        }
        Some(false) => channel.status = ChannelStatus::Disabled,
        None => {}
    }
    let secret = if request.rotate_secret == Some(true) {
        Some(new_secret(vault, &mut channel, now).await?)
    } else {
        None
    };
    channel.updated_at = now;
    if !store.replace_channel(&channel).await? {
        return Err(AppError::NotFound("channel"));
    }
    let mut view = channel.view();
    view.secret = secret;
    Ok(view)
}

/// Deletes a channel, and takes it out of the preferences.
pub async fn delete_channel(
    store: &dyn NotifyConfig,
    user_id: &str,
    id: &str,
) -> Result<(), AppError> {
    if !store.delete_channel(user_id, id).await? {
        return Err(AppError::NotFound("channel"));
    }
    let settings = store.notify_settings(user_id).await?;
    if let Some(mut prefs) = settings.preferences {
        let before = prefs.clone();
        for ids in prefs.events.values_mut() {
            ids.retain(|c| c != id);
        }
        prefs.events.retain(|_, ids| !ids.is_empty());
        if prefs != before {
            store.put_preferences(user_id, &prefs).await?;
        }
    }
    Ok(())
}

pub async fn preferences(store: &dyn NotifyConfig, user_id: &str) -> Result<Preferences, AppError> {
    Ok(store
        .notify_settings(user_id)
        .await?
        .preferences
        .unwrap_or_default())
}

/// Replaces the preferences; every channel named must be the user's.
pub async fn set_preferences(
    store: &dyn NotifyConfig,
    user_id: &str,
    preferences: Preferences,
) -> Result<Preferences, AppError> {
    let settings = store.notify_settings(user_id).await?;
    let ids: Vec<&str> = settings.channels.iter().map(|c| c.id.as_str()).collect();
    notify::check_preferences(&preferences, &ids).map_err(AppError::Validation)?;
    store.put_preferences(user_id, &preferences).await?;
    Ok(preferences)
}

/// The delivery log, newest first.
pub async fn list(
    store: &dyn Notifications,
    user_id: &str,
    limit: usize,
    after: Option<PageKey>,
) -> Result<Page<Notification>, AppError> {
    let mut page = store.list_notifications(user_id, limit, after).await?;
    page.items.iter_mut().for_each(hide_code);
    Ok(page)
}

/// A confirmation code is for the channel alone: the log does not repeat it (whoever added
/// someone else's address could read it there).
fn hide_code(n: &mut Notification) {
    if n.verification {
        n.vars.insert(
            "body".into(),
            serde_json::Value::String("(a confirmation code, sent to the channel only)".into()),
        );
    }
}

pub async fn get(
    store: &dyn Notifications,
    user_id: &str,
    id: &str,
) -> Result<Notification, AppError> {
    let mut n = store
        .get_notification(user_id, id)
        .await?
        .ok_or(AppError::NotFound("notification"))?;
    hide_code(&mut n);
    Ok(n)
}

/// Sends a test notice to one of the user's channels (now, whatever the preferences).
pub async fn test_channel(
    store: &(impl NotifyConfig + NotifyAdmin + ?Sized),
    user_id: &str,
    channel_id: &str,
    now: DateTime<Utc>,
) -> Result<Notice, AppError> {
    let settings = store.notify_settings(user_id).await?;
    if !settings.channels.iter().any(|c| c.id == channel_id) {
        return Err(AppError::NotFound("channel"));
    }
    let notice = Notice {
        id: ids::new_id(),
        user_id: Some(user_id.to_string()),
        channel_id: Some(channel_id.to_string()),
        verification: false,
        subject: "Test notification".into(),
        body: "This channel receives Document Workflow Chain notifications.".into(),
        send_at: now,
        created_at: now,
        created_by: user_id.to_string(),
    };
    store.put_notice(&notice).await?;
    Ok(notice)
}

/// An admin's notice to every account, now or at `send_at` (at most 7 days ahead).
pub async fn send_notice(
    store: &dyn NotifyAdmin,
    principal: &Principal,
    request: NoticeRequest,
    now: DateTime<Utc>,
) -> Result<Notice, AppError> {
    require_admin(principal, ADMIN_ONLY)?;
    let mut errors = Vec::new();
    for (field, value, max) in [
        ("subject", &request.subject, MAX_NOTICE_SUBJECT_CHARS),
        ("body", &request.body, MAX_NOTICE_BODY_CHARS),
    ] {
        if value.trim().is_empty() || value.chars().count() > max {
            errors.push(FieldError::new(
                field,
                format!("must be 1 to {max} characters, not blank"),
            ));
        }
    }
    let send_at = match notify::check_send_at(request.send_at, now) {
        Ok(t) => Some(t),
        Err(e) => {
            errors.push(e);
            None
        }
    };
    let (Some(send_at), true) = (send_at, errors.is_empty()) else {
        return Err(AppError::Validation(errors));
    };
    let notice = Notice {
        id: ids::new_id(),
        user_id: None,
        channel_id: None,
        verification: false,
        subject: request.subject.trim().to_string(),
        body: request.body.trim().to_string(),
        send_at,
        created_at: now,
        created_by: principal.user_id.clone(),
    };
    store.put_notice(&notice).await?;
    Ok(notice)
}

/// An event's and format's template: the admins' override, or the shipped one.
pub fn effective_template(
    overrides: &[TemplateOverride],
    event: EventKind,
    format: Format,
) -> &str {
    overrides
        .iter()
        .find(|t| t.event == event && t.format == format)
        .map_or_else(
            || templates::default_template(event, format),
            |t| t.source.as_str(),
        )
}

pub async fn template(
    store: &dyn NotifyAdmin,
    principal: &Principal,
    event: EventKind,
    format: Format,
) -> Result<TemplateView, AppError> {
    require_admin(principal, ADMIN_ONLY)?;
    let overrides = store.template_overrides().await?;
    let overridden = overrides
        .iter()
        .any(|t| t.event == event && t.format == format);
    Ok(TemplateView {
        event,
        format,
        source: effective_template(&overrides, event, format).to_string(),
        overridden,
        variables: templates::sample_vars(event),
    })
}

pub async fn put_template(
    store: &dyn NotifyAdmin,
    principal: &Principal,
    event: EventKind,
    format: Format,
    request: TemplateRequest,
    now: DateTime<Utc>,
) -> Result<TemplateView, AppError> {
    require_admin(principal, ADMIN_ONLY)?;
    templates::check_template(event, format, &request.source)
        .map_err(|e| AppError::field("source", e))?;
    store
        .put_template_override(&TemplateOverride {
            event,
            format,
            source: request.source.clone(),
            updated_at: now,
            updated_by: principal.user_id.clone(),
        })
        .await?;
    Ok(TemplateView {
        event,
        format,
        source: request.source,
        overridden: true,
        variables: templates::sample_vars(event),
    })
}

/// Goes back to the shipped template.
pub async fn delete_template(
    store: &dyn NotifyAdmin,
    principal: &Principal,
    event: EventKind,
    format: Format,
) -> Result<(), AppError> {
    require_admin(principal, ADMIN_ONLY)?;
    if store.delete_template_override(event, format).await? {
        Ok(())
    } else {
        Err(AppError::NotFound("template override"))
    }
}
