//! The template's API Gateway WebSocket API: an `AWS::ApiGatewayV2::Api` with `ProtocolType:
//! WEBSOCKET`, its routes (`AWS::ApiGatewayV2::Route`), the Lambda proxy integrations they target
//! (`AWS::ApiGatewayV2::Integration`), the route responses that make a route two-way
//! (`AWS::ApiGatewayV2::RouteResponse`) and its stage (`AWS::ApiGatewayV2::Stage`).
//!
//! Only what the local gateway can serve is accepted: one WebSocket API, `AWS_PROXY`
//! integrations of functions of the template, a route selection expression
//! `$request.body.<field>`; anything else is a template error rather than a silently different
//! API.

use super::node::{Ctx, Node, describe};
use super::{FUNCTION_TYPE, Resource, ResourceKind, ref_of};
use crate::Error;
use serde_yaml_ng::{Mapping, Value};

pub const API_TYPE: &str = "AWS::ApiGatewayV2::Api";
pub const ROUTE_TYPE: &str = "AWS::ApiGatewayV2::Route";
pub const INTEGRATION_TYPE: &str = "AWS::ApiGatewayV2::Integration";
pub const ROUTE_RESPONSE_TYPE: &str = "AWS::ApiGatewayV2::RouteResponse";
pub const STAGE_TYPE: &str = "AWS::ApiGatewayV2::Stage";

/// The prefix of the only route selection expressions supported.
pub const BODY_SELECTION_PREFIX: &str = "$request.body.";

/// The WebSocket API of the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSocketApiSpec {
    pub logical_id: String,
    /// As written, e.g. `$request.body.action`.
    pub route_selection_expression: String,
    /// The stage's `StageName`, e.g. `ws`.
    pub stage: String,
    /// The stage's logical id.
    pub stage_logical_id: String,
    /// In template order.
    pub routes: Vec<WsRoute>,
}

/// One route: messages (or the connect and disconnect events) with `route_key` invoke
/// `function`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsRoute {
    /// `$connect`, `$disconnect`, `$default` or a value of the selection expression.
    pub route_key: String,
    /// The logical id of the function its integration invokes.
    pub function: String,
    /// The route has a route response: the function's answer body is sent back to the client.
    pub two_way: bool,
}

impl WebSocketApiSpec {
    /// The field path the route selection expression reads from a JSON message body
    /// (`action` for `$request.body.action`, `a.b` for `$request.body.a.b`).
    pub fn selection_field(&self) -> Vec<&str> {
        self.route_selection_expression
            .strip_prefix(BODY_SELECTION_PREFIX)
            .map(|path| path.split('.').collect())
            .unwrap_or_default()
    }

    pub fn route(&self, key: &str) -> Option<&WsRoute> {
        self.routes.iter().find(|r| r.route_key == key)
    }
}

/// The WebSocket API among `raw` (the template's `Resources` mapping), checked against the
/// parsed `resources`; `None` when the template has none.
pub(crate) fn parse(
    source: &str,
    raw: &Mapping,
    resources: &[Resource],
) -> Result<Option<WebSocketApiSpec>, Error> {
    let of_type = |t: &str| -> Vec<(&str, &Value)> {
        resources
            .iter()
            .filter(|r| r.resource_type == t)
            .filter_map(|r| Some((r.logical_id.as_str(), raw.get(r.logical_id.as_str())?)))
            .collect()
    };
    let mut apis = Vec::new();
    for (id, value) in of_type(API_TYPE) {
        let ctx = Ctx {
            template: source,
            resource: id,
        };
        let props = Node::resource(&ctx, value).required("Properties")?;
        if props.required("ProtocolType")?.str()? == "WEBSOCKET" {
            let expression = props.required("RouteSelectionExpression")?;
            let text = expression.str()?;
            if !text.starts_with(BODY_SELECTION_PREFIX) || text.len() == BODY_SELECTION_PREFIX.len()
            {
                return Err(expression.error(format!(
                    "the local gateway supports `{BODY_SELECTION_PREFIX}<field>` only, found {text:?}"
                )));
            }
            apis.push((id, text.to_owned()));
        }
    }
    let (api_id, expression) = match apis.as_slice() {
        [] => return Ok(None),
        [one] => one.clone(),
        [_, second, ..] => {
            return Err(Error::Template {
                template: source.to_owned(),
                message: format!(
                    "`{}`: the local gateway serves one WebSocket API, and this template has more",
                    second.0
                ),
            });
        }
    };

    let mut stages = Vec::new();
    for (id, value) in of_type(STAGE_TYPE) {
        let ctx = Ctx {
            template: source,
            resource: id,
        };
        let props = Node::resource(&ctx, value).required("Properties")?;
        if ref_of(props.required("ApiId")?.value()) == Some(api_id) {
            stages.push((
                id.to_owned(),
                props.required("StageName")?.str()?.to_owned(),
            ));
        }
    }
    let Some((stage_logical_id, stage)) = stages.into_iter().next() else {
        return Err(Error::Template {
            template: source.to_owned(),
            message: format!("`{api_id}`: the WebSocket API has no AWS::ApiGatewayV2::Stage"),
        });
    };

    let two_way: Vec<String> = of_type(ROUTE_RESPONSE_TYPE)
        .into_iter()
        .filter_map(|(_, value)| ref_of(value.get("Properties")?.get("RouteId")?))
        .map(str::to_owned)
        .collect();
    let mut routes = Vec::new();
    for (id, value) in of_type(ROUTE_TYPE) {
        let ctx = Ctx {
            template: source,
            resource: id,
        };
        let props = Node::resource(&ctx, value).required("Properties")?;
        if ref_of(props.required("ApiId")?.value()) != Some(api_id) {
            continue;
        }
        let target = props.required("Target")?;
        let integration = integration_of(&target)?;
        let function = integration_function(source, raw, resources, &integration)
            .map_err(|message| target.error(message))?;
        routes.push(WsRoute {
            route_key: props.required("RouteKey")?.str()?.to_owned(),
            function,
            two_way: two_way.iter().any(|r| r == id),
        });
    }
    Ok(Some(WebSocketApiSpec {
        logical_id: api_id.to_owned(),
        route_selection_expression: expression,
        stage,
        stage_logical_id,
        routes,
    }))
}

/// The text of a string, a `!Sub` or `Fn::Sub` (the string, or the first item of its list).
fn sub_text(value: &Value) -> Option<&str> {
    let inner = match value {
        Value::String(s) => return Some(s),
        Value::Tagged(t) if t.tag == "Sub" => &t.value,
        Value::Mapping(m) if m.len() == 1 => m.get("Fn::Sub")?,
        _ => return None,
    };
    match inner {
        Value::String(s) => Some(s),
        Value::Sequence(items) => items.first()?.as_str(),
        _ => None,
    }
}

/// The integration's logical id in a route's `Target: !Sub "integrations/${X}"`.
fn integration_of(target: &Node<'_>) -> Result<String, Error> {
    let refused = || {
        target.error(format!(
            "expected `!Sub \"integrations/${{<integration>}}\"`, found {}",
            describe(target.value())
        ))
    };
    let text = sub_text(target.value()).ok_or_else(refused)?;
    let rest = text.strip_prefix("integrations/").ok_or_else(refused)?;
    let id = rest
        .strip_prefix("${")
        .and_then(|r| r.strip_suffix('}'))
        .unwrap_or(rest);
    if id.is_empty() {
        return Err(refused());
    }
    Ok(id.to_owned())
}

/// The function an `AWS_PROXY` integration invokes: `${F.Arn}` (or `${F}`) in its
/// `IntegrationUri`, or `!GetAtt F.Arn`, where `F` is a function of the template.
fn integration_function(
    source: &str,
    raw: &Mapping,
    resources: &[Resource],
    integration: &str,
) -> Result<String, String> {
    let found = resources
        .iter()
        .find(|r| r.logical_id == integration && r.resource_type == INTEGRATION_TYPE)
        .ok_or_else(|| format!("`{integration}` is not an {INTEGRATION_TYPE} of this template"))?;
    let ctx = Ctx {
        template: source,
        resource: &found.logical_id,
    };
    let value = raw.get(found.logical_id.as_str()).unwrap_or(&Value::Null);
    let node = Node::resource(&ctx, value);
    let describe_error = |e: Error| e.to_string();
    let props = node.required("Properties").map_err(describe_error)?;
    let kind = props
        .required("IntegrationType")
        .and_then(|n| n.str().map(str::to_owned))
        .map_err(describe_error)?;
    if kind != "AWS_PROXY" {
        return Err(format!(
            "integration `{integration}` is {kind}; the local gateway supports AWS_PROXY only"
        ));
    }
    let uri = props.required("IntegrationUri").map_err(describe_error)?;
    let is_function = |id: &str| {
        resources.iter().any(|r| {
            r.logical_id == id
                && r.resource_type == FUNCTION_TYPE
                && matches!(r.kind, ResourceKind::Function(_))
        })
    };
    let candidates: Vec<String> = match sub_text(uri.value()) {
        Some(text) => text
            .split("${")
            .skip(1)
            .filter_map(|part| part.split_once('}'))
            .map(|(name, _)| name.strip_suffix(".Arn").unwrap_or(name).to_owned())
            .collect(),
        None => super::queue::get_att_target(&uri, "Arn", "function")
            .map(|f| vec![f])
            .unwrap_or_default(),
    };
    candidates
        .into_iter()
        .find(|c| is_function(c))
        .ok_or_else(|| {
            format!(
                "integration `{integration}`: IntegrationUri names no AWS::Serverless::Function of this template (expected `${{<function>.Arn}}` in it)"
            )
        })
}
