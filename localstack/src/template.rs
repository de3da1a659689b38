//! Reads `infra/sam-template.yaml` (AWS SAM / CloudFormation YAML, short intrinsic tags like
//! `!Ref` included) into a typed model.
//!
//! Everything is checked when the template is loaded, so the accessors ([`Template::tables`],
//! [`Template::http_routes`], ...) cannot fail. Intrinsic functions stay as they are written
//! (`serde_yaml_ng::Value::Tagged` for `!Ref X`) in [`Resource::properties`]: the model resolves
//! nothing, because locally a `!Ref` to a table is just its logical id.

mod function;
mod node;
mod queue;
mod schedule;
mod table;
mod websocket;

use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

pub use function::{
    DEFAULT_SQS_BATCH_SIZE, DEFAULT_STREAM_BATCH_SIZE, DynamoDbEventSpec, EventSource,
    FunctionEvent, FunctionSpec, HttpRoute, SqsEventSpec, StartingPosition,
};
pub use queue::{QueueSpec, Redrive};
pub use schedule::{ScheduleEventKind, ScheduleEventSpec};
pub use table::{
    AttributeDefinition, AttributeType, BillingMode, GlobalSecondaryIndex, KeySchema, Projection,
    StreamViewType, TableSpec,
};

pub use websocket::{
    API_TYPE, BODY_SELECTION_PREFIX, INTEGRATION_TYPE, ROUTE_RESPONSE_TYPE, ROUTE_TYPE, STAGE_TYPE,
    WebSocketApiSpec, WsRoute,
};

use crate::Error;

/// `X` of `!Ref X` or `{Ref: X}`.
pub(crate) fn ref_of(value: &Value) -> Option<&str> {
    match value {
        Value::Tagged(t) if t.tag == "Ref" => t.value.as_str(),
        Value::Mapping(m) if m.len() == 1 => m.get("Ref").and_then(Value::as_str),
        _ => None,
    }
}
use node::{Ctx, Node};

/// The template's path relative to the repository root.
pub const TEMPLATE_PATH: &str = "infra/sam-template.yaml";
/// Environment variable naming another template file, read by [`Template::load_default`].
pub const TEMPLATE_ENV: &str = "DWC_TEMPLATE";

pub const TABLE_TYPE: &str = "AWS::DynamoDB::Table";
pub const FUNCTION_TYPE: &str = "AWS::Serverless::Function";
pub const KMS_ALIAS_TYPE: &str = "AWS::KMS::Alias";
pub const EMAIL_IDENTITY_TYPE: &str = "AWS::SES::EmailIdentity";
pub const QUEUE_TYPE: &str = "AWS::SQS::Queue";

/// A parsed template: its resources in document order.
#[derive(Debug, Clone)]
pub struct Template {
    /// Where it was read from (a path, or the name given to [`Template::from_yaml`]).
    source: String,
    /// `Parameters`, in document order.
    parameters: Vec<Parameter>,
    resources: Vec<Resource>,
    /// The WebSocket API, read (and checked) with the resources.
    websocket_api: Option<WebSocketApiSpec>,
}

/// One entry of `Parameters`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameter {
    pub name: String,
    /// `Default`, as a string (CloudFormation parameters are strings).
    pub default: Option<String>,
}

/// One entry of `Resources`.
#[derive(Debug, Clone)]
pub struct Resource {
    pub logical_id: String,
    /// `Type`, e.g. `AWS::DynamoDB::Table`.
    pub resource_type: String,
    /// `Properties` as written (tags kept); `Value::Null` when absent.
    pub properties: Value,
    pub kind: ResourceKind,
}

/// What the local stack understands of a resource.
#[derive(Debug, Clone)]
pub enum ResourceKind {
    Table(TableSpec),
    Function(FunctionSpec),
    Queue(QueueSpec),
    /// Any other type; the local stack does not create it (yet).
    Other,
}

impl Template {
    pub fn load(path: &Path) -> Result<Template, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        Template::from_yaml(&path.display().to_string(), &text)
    }

    /// `infra/sam-template.yaml` of this repository: the file named by `DWC_TEMPLATE` if set,
    /// else the one beside this crate's folder (the path is fixed at compile time, so it holds
    /// wherever the tests of any crate run), else the first found walking up from the current
    /// directory.
    pub fn load_default() -> Result<Template, Error> {
        Template::load(&default_path()?)
    }

    /// Parses template text; `source` names it in error messages.
    pub fn from_yaml(source: &str, yaml: &str) -> Result<Template, Error> {
        let document: Value = serde_yaml_ng::from_str(yaml).map_err(|e| Error::Yaml {
            template: source.to_owned(),
            source: e,
        })?;
        let template_error = |message: &str| Error::Template {
            template: source.to_owned(),
            message: message.to_owned(),
        };
        let resources = match &document {
            Value::Mapping(top) => top
                .get("Resources")
                .ok_or_else(|| template_error("no `Resources` section"))?,
            _ => return Err(template_error("expected a mapping at the top level")),
        };
        let Value::Mapping(resources) = resources else {
            return Err(template_error("`Resources` is not a mapping"));
        };

        let mut parsed = Vec::with_capacity(resources.len());
        for (key, value) in resources {
            let Value::String(logical_id) = key else {
                return Err(template_error(&format!(
                    "a key of `Resources` is not a name: {}",
                    node::describe(key)
                )));
            };
            parsed.push(Resource::parse(source, logical_id, value)?);
        }
        let mut parameters = Vec::new();
        if let Some(Value::Mapping(params)) =
            document.as_mapping().and_then(|m| m.get("Parameters"))
        {
            for (key, value) in params {
                let (Value::String(name), Value::Mapping(body)) = (key, value) else {
                    return Err(template_error(
                        "each entry of `Parameters` must be a name with a mapping",
                    ));
                };
                let default = match body.get("Default") {
                    None => None,
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(Value::Number(n)) => Some(n.to_string()),
                    Some(Value::Bool(b)) => Some(b.to_string()),
                    Some(other) => {
                        return Err(template_error(&format!(
                            "parameter `{name}`: Default must be a string, found {}",
                            node::describe(other)
                        )));
                    }
                };
                parameters.push(Parameter {
                    name: name.clone(),
                    default,
                });
            }
        }
        let websocket_api = websocket::parse(source, resources, &parsed)?;
        let template = Template {
            source: source.to_owned(),
            parameters,
            resources: parsed,
            websocket_api,
        };
        template.check_queue_references()?;
        template.check_stream_references()?;
        template.schedule_events()?;
        Ok(template)
    }

    /// Every dead-letter queue and every `SQS` event names a queue of this template.
    fn check_queue_references(&self) -> Result<(), Error> {
        let error = |resource: &str, property: String, target: &str| Error::Property {
            template: self.source.clone(),
            resource: resource.to_owned(),
            property,
            message: format!("`{target}` is not an AWS::SQS::Queue of this template"),
        };
        for queue in self.queues() {
            if let Some(redrive) = &queue.redrive
                && !self.is_queue(&redrive.dead_letter_queue)
            {
                return Err(error(
                    &queue.logical_id,
                    "Properties.RedrivePolicy.deadLetterTargetArn".into(),
                    &redrive.dead_letter_queue,
                ));
            }
        }
        for (function, event, spec) in self.sqs_events() {
            if !self.is_queue(&spec.queue) {
                return Err(error(
                    &function,
                    format!("Properties.Events.{event}.Properties.Queue"),
                    &spec.queue,
                ));
            }
        }
        Ok(())
    }

    /// `id` is an `AWS::SQS::Queue` of this template.
    fn is_queue(&self, id: &str) -> bool {
        self.resource(id)
            .is_some_and(|r| matches!(r.kind, ResourceKind::Queue(_)))
    }

    /// Every `DynamoDB` event names a table of this template that has a stream, and its
    /// on-failure destination (if any) a queue of this template.
    fn check_stream_references(&self) -> Result<(), Error> {
        for (function, event, spec) in self.dynamodb_events() {
            let has_stream = self.resource(&spec.table).is_some_and(
                |r| matches!(&r.kind, ResourceKind::Table(t) if t.stream_view_type.is_some()),
            );
            if !has_stream {
                return Err(Error::Property {
                    template: self.source.clone(),
                    resource: function,
                    property: format!("Properties.Events.{event}.Properties.Stream"),
                    message: format!(
                        "`{}` is not an AWS::DynamoDB::Table of this template with a StreamSpecification",
                        spec.table
                    ),
                });
            }
            if let Some(queue) = &spec.on_failure
                && !self.is_queue(queue)
            {
                return Err(Error::Property {
                    template: self.source.clone(),
                    resource: function,
                    property: format!(
                        "Properties.Events.{event}.Properties.DestinationConfig.OnFailure.Destination"
                    ),
                    message: format!("`{queue}` is not an AWS::SQS::Queue of this template"),
                });
            }
        }
        Ok(())
    }

    pub fn parameters(&self) -> &[Parameter] {
        &self.parameters
    }

    /// Where the template was read from.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn resources(&self) -> &[Resource] {
        &self.resources
    }

    pub fn resource(&self, logical_id: &str) -> Option<&Resource> {
        self.resources.iter().find(|r| r.logical_id == logical_id)
    }

    /// The `KeySpec` and `KeyUsage` of the key an `AWS::KMS::Alias` names (`TargetKeyId:
    /// !Ref Key`): `None` each where the key gives none (a symmetric encryption key).
    pub fn alias_key_spec(&self, alias_logical_id: &str) -> (Option<String>, Option<String>) {
        let key = self
            .resource(alias_logical_id)
            .and_then(|a| ref_of(a.properties.get("TargetKeyId")?))
            .and_then(|k| self.resource(k));
        let text =
            |name: &str| key.and_then(|k| k.properties.get(name)?.as_str().map(str::to_string));
        (text("KeySpec"), text("KeyUsage"))
    }

    /// Every `AWS::DynamoDB::Table`, in template order.
    pub fn tables(&self) -> Vec<TableSpec> {
        self.resources
            .iter()
            .filter_map(|r| match &r.kind {
                ResourceKind::Table(spec) => Some(spec.clone()),
                _ => None,
            })
            .collect()
    }

    /// Every `AWS::Serverless::Function`, in template order.
    pub fn functions(&self) -> Vec<FunctionSpec> {
        self.resources
            .iter()
            .filter_map(|r| match &r.kind {
                ResourceKind::Function(spec) => Some(spec.clone()),
                _ => None,
            })
            .collect()
    }

    /// Every `AWS::SQS::Queue`, dead-letter queues before the queues that send to them (the
    /// order they can be created in), else in template order.
    pub fn queues(&self) -> Vec<QueueSpec> {
        let all: Vec<QueueSpec> = self
            .resources
            .iter()
            .filter_map(|r| match &r.kind {
                ResourceKind::Queue(spec) => Some(spec.clone()),
                _ => None,
            })
            .collect();
        // Depth first: each queue after the chain of dead-letter queues it sends to.
        fn visit(
            queue: &QueueSpec,
            all: &[QueueSpec],
            ordered: &mut Vec<QueueSpec>,
            seen: &mut Vec<String>,
        ) {
            if seen.contains(&queue.logical_id) {
                return;
            }
            seen.push(queue.logical_id.clone());
            if let Some(redrive) = &queue.redrive
                && let Some(target) = all
                    .iter()
                    .find(|q| q.logical_id == redrive.dead_letter_queue)
            {
                visit(target, all, ordered, seen);
            }
            ordered.push(queue.clone());
        }
        let mut ordered = Vec::with_capacity(all.len());
        let mut seen = Vec::new();
        for queue in &all {
            visit(queue, &all, &mut ordered, &mut seen);
        }
        ordered
    }

    /// Every `Type: SQS` event of every function: (function, event name, properties), in
    /// template order.
    pub fn sqs_events(&self) -> Vec<(String, String, SqsEventSpec)> {
        self.events(|source| match source {
            EventSource::Sqs(sqs) => Some(sqs),
            _ => None,
        })
    }

    /// Every `Type: DynamoDB` event of every function: (function, event name, properties), in
    /// template order.
    pub fn dynamodb_events(&self) -> Vec<(String, String, DynamoDbEventSpec)> {
        self.events(|source| match source {
            EventSource::DynamoDb(stream) => Some(stream),
            _ => None,
        })
    }

    /// Every event of every function whose source `pick` takes: (function, event name, what it
    /// took), in template order.
    fn events<T: Clone>(
        &self,
        pick: impl Fn(&EventSource) -> Option<&T>,
    ) -> Vec<(String, String, T)> {
        self.resources
            .iter()
            .filter_map(|r| match &r.kind {
                ResourceKind::Function(spec) => Some(spec),
                _ => None,
            })
            .flat_map(|f| {
                f.events.iter().filter_map(|e| {
                    pick(&e.source).map(|spec| (f.logical_id.clone(), e.name.clone(), spec.clone()))
                })
            })
            .collect()
    }

    /// The WebSocket API (`AWS::ApiGatewayV2::Api` with `ProtocolType: WEBSOCKET`), if any.
    pub fn websocket_api(&self) -> Option<&WebSocketApiSpec> {
        self.websocket_api.as_ref()
    }

    /// Every `Type: HttpApi` event of every function, in template order.
    pub fn http_routes(&self) -> Vec<HttpRoute> {
        self.resources
            .iter()
            .filter_map(|r| match &r.kind {
                ResourceKind::Function(spec) => Some(spec.http_routes()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// Gives resource `from` the logical id `to` (for tests that need a uniquely named copy of a
    /// table). References to it elsewhere in the template are not rewritten.
    pub fn rename_resource(&mut self, from: &str, to: &str) -> Result<(), Error> {
        if self.resource(to).is_some() {
            return Err(Error::Template {
                template: self.source.clone(),
                message: format!("cannot rename `{from}` to `{to}`: `{to}` exists already"),
            });
        }
        let resource = self
            .resources
            .iter_mut()
            .find(|r| r.logical_id == from)
            .ok_or_else(|| Error::Template {
                template: self.source.clone(),
                message: format!("cannot rename `{from}`: no such resource"),
            })?;
        resource.logical_id = to.to_owned();
        match &mut resource.kind {
            ResourceKind::Table(spec) => spec.logical_id = to.to_owned(),
            ResourceKind::Function(spec) => spec.logical_id = to.to_owned(),
            ResourceKind::Queue(spec) => spec.logical_id = to.to_owned(),
            ResourceKind::Other => {}
        }
        Ok(())
    }
}

impl Resource {
    fn parse(template: &str, logical_id: &str, value: &Value) -> Result<Resource, Error> {
        let ctx = Ctx {
            template,
            resource: logical_id,
        };
        let node = Node::resource(&ctx, value);
        let resource_type = node.required("Type")?.str()?.to_owned();
        let kind = match resource_type.as_str() {
            TABLE_TYPE => ResourceKind::Table(TableSpec::parse(logical_id, &node)?),
            FUNCTION_TYPE => ResourceKind::Function(FunctionSpec::parse(logical_id, &node)?),
            QUEUE_TYPE => ResourceKind::Queue(QueueSpec::parse(logical_id, &node)?),
            _ => ResourceKind::Other,
        };
        let properties = match value {
            Value::Mapping(mapping) => mapping.get("Properties").cloned().unwrap_or(Value::Null),
            _ => Value::Null,
        };
        Ok(Resource {
            logical_id: logical_id.to_owned(),
            resource_type,
            properties,
            kind,
        })
    }
}

fn default_path() -> Result<PathBuf, Error> {
    if let Some(path) = std::env::var_os(TEMPLATE_ENV).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(Error::NotFound(format!(
                "{TEMPLATE_ENV}={} is not a file",
                path.display()
            )))
        };
    }

    let mut looked = Vec::new();
    let beside_crate = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(|root| root.join(TEMPLATE_PATH));
    if let Some(path) = beside_crate {
        if path.is_file() {
            return Ok(path);
        }
        looked.push(format!("not at {}", path.display()));
    }

    if let Ok(cwd) = std::env::current_dir() {
        for dir in cwd.ancestors() {
            let path = dir.join(TEMPLATE_PATH);
            if path.is_file() {
                return Ok(path);
            }
        }
        looked.push(format!("not in {} or any folder above it", cwd.display()));
    }

    Err(Error::NotFound(format!(
        "{TEMPLATE_PATH} is {} (set {TEMPLATE_ENV} to the template file)",
        looked.join(", and ")
    )))
}

#[cfg(test)]
mod tests;
