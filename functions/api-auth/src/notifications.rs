//! `/api/v3/notifications`: a user's channels and preferences, the delivery log, channel tests,
//! and the admins' templates and system notices. Deliveries themselves are the notifier's
//! (`functions/worker/src/bin/notifier.rs`), raised from the table's stream.

use crate::Api;
use http::StatusCode;
use lambda_http::{Request, RequestExt};
use serde::Serialize;
use shared::app::{notify, require_session};
use shared::domain::Principal;
use shared::domain::notification::{
    ChannelView, CreateChannelRequest, Notice, NoticeRequest, Notification, TemplateRequest,
    TemplateView, UpdateChannelRequest, VerifyChannelRequest,
};
use shared::domain::notify::templates::Format;
use shared::domain::notify::{EventKind, Preferences};
use shared::http::pipeline::{Call, Reply};
use shared::http::request::{self as rq, json_body};
use shared::http::response::{json, no_content};
use shared::http::{Problem, cursor};
use utoipa::ToSchema;

fn ok<T: Serialize>(value: &T) -> Reply {
    Ok(json(StatusCode::OK, value))
}

/// The caller of a user route: a signed-in person. Notification settings decide where security
/// alerts go and the log shows sign-ins, so API keys (of any scope) may not use them.
fn person(p: &Principal) -> Result<&Principal, Problem> {
    require_session(p)?;
    Ok(p)
}

#[derive(Serialize, ToSchema)]
pub struct ChannelList {
    pub items: Vec<ChannelView>,
}

#[derive(Serialize, ToSchema)]
pub struct NotificationList {
    pub items: Vec<Notification>,
    pub next_cursor: Option<String>,
}

/// A notice accepted: its fan-out (or a channel test's delivery) runs in the background.
#[derive(Serialize, ToSchema)]
pub struct NoticeAccepted {
    pub notice: Notice,
}

/// The caller's channels (never a webhook's secret).
#[utoipa::path(get, path = "/api/v3/notifications/channels", tag = "notifications",
    responses((status = 200, body = ChannelList)))]
pub async fn list_channels(api: &Api, p: &Principal) -> Reply {
    let p = person(p)?;
    ok(&ChannelList {
        items: notify::list_channels(api.notify.as_ref(), &p.user_id).await?,
    })
}

/// Add a channel. A webhook's answer carries its signing secret, shown this once. An email or
/// SMS channel starts `unverified`: a code is sent to it, to confirm with `.../verify`.
#[utoipa::path(post, path = "/api/v3/notifications/channels", tag = "notifications",
    request_body = CreateChannelRequest,
    responses((status = 201, body = ChannelView), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_channel(api: &Api, call: &Call<'_>) -> Reply {
    let p = person(call.principal()?)?;
    let view = notify::create_channel(
        api.notify.as_ref(),
        api.notify_vault.as_ref(),
        api.allow_private_targets,
        &p.user_id,
        json_body(call.req)?,
        call.now,
    )
    .await?
    .view;
    Ok(json(StatusCode::CREATED, &view))
}

/// Confirm an email or SMS channel with the code sent to it (`{"code": "123456"}`), or have a
/// new code sent (`{"resend": true}`, 202). Until then nothing else is sent to it.
#[utoipa::path(post, path = "/api/v3/notifications/channels/{id}/verify", tag = "notifications",
    params(("id" = String, Path)), request_body = VerifyChannelRequest,
    responses((status = 200, body = ChannelView), (status = 202, body = ChannelView), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn verify_channel(api: &Api, call: &Call<'_>) -> Reply {
    let p = person(call.principal()?)?;
    let request: VerifyChannelRequest = json_body(call.req)?;
    let resend = request.resend == Some(true);
    let created = notify::verify_channel(
        api.notify.as_ref(),
        &p.user_id,
        &call.id("id")?,
        request,
        call.now,
    )
    .await?;
    let status = if resend {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok(json(status, &created.view))
}

/// One of the caller's channels.
#[utoipa::path(get, path = "/api/v3/notifications/channels/{id}", tag = "notifications",
    params(("id" = String, Path)),
    responses((status = 200, body = ChannelView), (status = 404, body = Problem)))]
pub async fn get_channel(api: &Api, p: &Principal, id: &str) -> Reply {
    let p = person(p)?;
    ok(&notify::get_channel(api.notify.as_ref(), &p.user_id, id).await?)
}

/// Rename a channel, turn it on or off (on again after it failed), or rotate a webhook's
/// signing secret (the new one is in the answer, once).
#[utoipa::path(patch, path = "/api/v3/notifications/channels/{id}", tag = "notifications",
    params(("id" = String, Path)), request_body = UpdateChannelRequest,
    responses((status = 200, body = ChannelView), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update_channel(api: &Api, call: &Call<'_>) -> Reply {
    let p = person(call.principal()?)?;
    let request: UpdateChannelRequest = json_body(call.req)?;
    let view = notify::update_channel(
        api.notify.as_ref(),
        api.notify_vault.as_ref(),
        &p.user_id,
        &call.id("id")?,
        request,
        call.now,
    )
    .await?;
    ok(&view)
}

/// Delete a channel (and take it out of the preferences).
#[utoipa::path(delete, path = "/api/v3/notifications/channels/{id}", tag = "notifications",
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete_channel(api: &Api, p: &Principal, id: &str) -> Reply {
    let p = person(p)?;
    notify::delete_channel(api.notify.as_ref(), &p.user_id, id).await?;
    Ok(no_content())
}

/// Send a test notification to one channel now; its delivery shows in the log.
#[utoipa::path(post, path = "/api/v3/notifications/channels/{id}/test", tag = "notifications",
    params(("id" = String, Path)),
    responses((status = 202, body = NoticeAccepted), (status = 404, body = Problem)))]
pub async fn test_channel(api: &Api, call: &Call<'_>) -> Reply {
    let p = person(call.principal()?)?;
    let notice =
        notify::test_channel(api.notify.as_ref(), &p.user_id, &call.id("id")?, call.now).await?;
    Ok(json(StatusCode::ACCEPTED, &NoticeAccepted { notice }))
}

/// Which events go to which of the caller's channels, and the quiet hours.
#[utoipa::path(get, path = "/api/v3/notifications/preferences", tag = "notifications",
    responses((status = 200, body = Preferences)))]
pub async fn preferences(api: &Api, p: &Principal) -> Reply {
    let p = person(p)?;
    ok(&notify::preferences(api.notify.as_ref(), &p.user_id).await?)
}

/// Replace the preferences: for each event the channels it goes to (none: not notified).
#[utoipa::path(put, path = "/api/v3/notifications/preferences", tag = "notifications",
    request_body = Preferences,
    responses((status = 200, body = Preferences), (status = 422, body = Problem)))]
pub async fn set_preferences(api: &Api, p: &Principal, req: &Request) -> Reply {
    let p = person(p)?;
    ok(&notify::set_preferences(api.notify.as_ref(), &p.user_id, json_body(req)?).await?)
}

/// The caller's notifications with each delivery's attempts, newest first.
#[utoipa::path(get, path = "/api/v3/notifications", tag = "notifications",
    params(
        ("limit" = Option<u32>, Query, description = "1..=100, default 20"),
        ("cursor" = Option<String>, Query),
    ),
    responses((status = 200, body = NotificationList), (status = 400, body = Problem)))]
pub async fn list(api: &Api, p: &Principal, req: &Request) -> Reply {
    let p = person(p)?;
    let q = rq::query(req, &["limit", "cursor"])?;
    let limit = rq::limit(&q, 20, 100)?;
    let after = rq::cursor(&q)?;
    let page = notify::list(api.notify.as_ref(), &p.user_id, limit as usize, after).await?;
    ok(&NotificationList {
        items: page.items,
        next_cursor: page.next.as_ref().map(cursor::encode),
    })
}

/// One notification with its deliveries.
#[utoipa::path(get, path = "/api/v3/notifications/{id}", tag = "notifications",
    params(("id" = String, Path)),
    responses((status = 200, body = Notification), (status = 404, body = Problem)))]
pub async fn get(api: &Api, p: &Principal, id: &str) -> Reply {
    let p = person(p)?;
    ok(&notify::get(api.notify.as_ref(), &p.user_id, id).await?)
}

/// Admins: a notice to every account (their email channels, or those chosen for
/// `system_notice`), now or at `send_at` (at most 7 days ahead).
#[utoipa::path(post, path = "/api/v3/notifications/notices", tag = "notifications",
    request_body = NoticeRequest,
    responses((status = 202, body = NoticeAccepted), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn send_notice(api: &Api, call: &Call<'_>) -> Reply {
    let p = call.principal()?;
    let notice =
        notify::send_notice(api.notify.as_ref(), p, json_body(call.req)?, call.now).await?;
    Ok(json(StatusCode::ACCEPTED, &NoticeAccepted { notice }))
}

/// The `{event}` and `{format}` path parameters.
fn template_key(req: &Request) -> Result<(EventKind, Format), Problem> {
    let params = req.path_parameters_ref();
    let get = |name: &str| params.and_then(|p| p.first(name)).unwrap_or("");
    let event = EventKind::parse(get("event")).ok_or_else(|| {
        let all: Vec<&str> = EventKind::ALL.iter().map(|e| e.as_str()).collect();
        Problem::bad_parameter("event", format!("one of {}", all.join(", ")))
    })?;
    let format = Format::parse(get("format")).ok_or_else(|| {
        let all: Vec<&str> = Format::ALL.iter().map(|f| f.as_str()).collect();
        Problem::bad_parameter("format", format!("one of {}", all.join(", ")))
    })?;
    Ok((event, format))
}

/// Admins: the template of an event in a format (an override, or the shipped one) and the
/// variables it gets.
#[utoipa::path(get, path = "/api/v3/notifications/templates/{event}/{format}", tag = "notifications",
    params(("event" = EventKind, Path), ("format" = Format, Path)),
    responses((status = 200, body = TemplateView), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn template(api: &Api, p: &Principal, req: &Request) -> Reply {
    let (event, format) = template_key(req)?;
    ok(&notify::template(api.notify.as_ref(), p, event, format).await?)
}

/// Admins: replace the shipped template (minijinja; it must render with the event's
/// variables).
#[utoipa::path(put, path = "/api/v3/notifications/templates/{event}/{format}", tag = "notifications",
    params(("event" = EventKind, Path), ("format" = Format, Path)), request_body = TemplateRequest,
    responses((status = 200, body = TemplateView), (status = 400, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn put_template(api: &Api, call: &Call<'_>) -> Reply {
    let p = call.principal()?;
    let (event, format) = template_key(call.req)?;
    let request: TemplateRequest = json_body(call.req)?;
    ok(&notify::put_template(api.notify.as_ref(), p, event, format, request, call.now).await?)
}

/// Admins: go back to the shipped template.
#[utoipa::path(delete, path = "/api/v3/notifications/templates/{event}/{format}", tag = "notifications",
    params(("event" = EventKind, Path), ("format" = Format, Path)),
    responses((status = 204), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete_template(api: &Api, p: &Principal, req: &Request) -> Reply {
    let (event, format) = template_key(req)?;
    notify::delete_template(api.notify.as_ref(), p, event, format).await?;
    Ok(no_content())
}
