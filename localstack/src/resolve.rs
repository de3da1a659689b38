//! Resolves CloudFormation intrinsic functions (`!Ref`, `!GetAtt`, `!Sub`, and their long forms)
//! in a function's environment against the local resources, as CloudFormation would against the
//! deployed ones.
//!
//! Locally a resource's name is its logical id (plus a suffix for isolated tests), except where
//! AWS gives something else: `!Ref` of a queue is its URL, of a KMS alias its `alias/` name, of
//! an `AWS::ApiGatewayV2::Api` its API id (the name in lower case letters and digits, as API
//! Gateway's ids are), of an `AWS::ApiGatewayV2::Stage` its `StageName`.

use crate::Error;
use crate::template::{ResourceKind, Template};
use serde_yaml_ng::Value;
use std::collections::HashMap;

/// The account of everything in the emulator: moto's default, which it puts in every ARN and
/// queue URL for the dummy credentials the local stack uses.
pub const EMULATOR_ACCOUNT: &str = "123456789012";

/// Local stand-ins for the pseudo parameters and resource names.
#[derive(Debug, Clone)]
pub struct Resolver {
    template_source: String,
    parameters: HashMap<String, String>,
    /// Logical id -> physical name (locally: the logical id, plus a suffix for isolated tests).
    names: HashMap<String, String>,
    tables: Vec<String>,
    queues: Vec<String>,
    /// `AWS::ApiGatewayV2::Api` resources.
    apis: Vec<String>,
    /// Functions (`AWS::Serverless::Function`, `AWS::Lambda::Function`): `!GetAtt F.Arn` is a
    /// Lambda ARN whose name is the gateway's name of the function.
    functions: Vec<String>,
    /// The emulator's base URL: queue URLs are `{endpoint}/{account}/{name}`, as moto forms them.
    endpoint: Option<String>,
    pub region: String,
    pub account: String,
    pub stack: String,
}

impl Resolver {
    /// Parameters take their template defaults, then `overrides`; every resource is named by its
    /// logical id followed by `suffix`.
    pub fn new(
        template: &Template,
        overrides: &HashMap<String, String>,
        suffix: &str,
        region: &str,
    ) -> Resolver {
        let mut parameters: HashMap<String, String> = template
            .parameters()
            .iter()
            .filter_map(|p| p.default.clone().map(|d| (p.name.clone(), d)))
            .collect();
        parameters.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
        let names = template
            .resources()
            .iter()
            .map(|r| {
                let name = match r.resource_type.as_str() {
                    // An alias name must start with `alias/`; `!Ref` of an alias is its name.
                    crate::template::KMS_ALIAS_TYPE => format!("alias/{}{suffix}", r.logical_id),
                    // SQS requires a FIFO queue's name to end in `.fifo`.
                    _ if matches!(&r.kind, ResourceKind::Queue(q) if q.fifo) => {
                        format!("{}{suffix}.fifo", r.logical_id)
                    }
                    crate::template::API_TYPE => api_id(&format!("{}{suffix}", r.logical_id)),
                    crate::template::STAGE_TYPE => r
                        .properties
                        .get("StageName")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .unwrap_or_else(|| r.logical_id.clone()),
                    _ => format!("{}{suffix}", r.logical_id),
                };
                (r.logical_id.clone(), name)
            })
            .collect();
        let tables = template
            .resources()
            .iter()
            .filter(|r| matches!(r.kind, ResourceKind::Table(_)))
            .map(|r| r.logical_id.clone())
            .collect();
        let queues = template
            .resources()
            .iter()
            .filter(|r| matches!(r.kind, ResourceKind::Queue(_)))
            .map(|r| r.logical_id.clone())
            .collect();
        let apis = template
            .resources()
            .iter()
            .filter(|r| r.resource_type == crate::template::API_TYPE)
            .map(|r| r.logical_id.clone())
            .collect();
        let functions = template
            .resources()
            .iter()
            .filter(|r| {
                matches!(
                    r.resource_type.as_str(),
                    "AWS::Serverless::Function" | "AWS::Lambda::Function"
                )
            })
            .map(|r| r.logical_id.clone())
            .collect();
        Resolver {
            template_source: template.source().to_owned(),
            parameters,
            names,
            tables,
            queues,
            apis,
            functions,
            endpoint: None,
            region: region.to_owned(),
            account: EMULATOR_ACCOUNT.to_owned(),
            stack: "local".to_owned(),
        }
    }

    /// Queue URLs point at the emulator at `endpoint_url` (without it, at SQS's public endpoint
    /// of the region).
    pub fn with_endpoint(mut self, endpoint_url: &str) -> Resolver {
        self.endpoint = Some(endpoint_url.trim_end_matches('/').to_owned());
        self
    }

    /// The URL of queue `logical_id` (what `!Ref` of it gives), if it is a queue.
    pub fn queue_url(&self, logical_id: &str) -> Option<String> {
        if !self.queues.iter().any(|q| q == logical_id) {
            return None;
        }
        let name = self.names.get(logical_id)?;
        let base = match &self.endpoint {
            Some(endpoint) => endpoint.clone(),
            None => format!("https://sqs.{}.amazonaws.com", self.region),
        };
        Some(format!("{base}/{}/{name}", self.account))
    }

    /// The ARN of queue `logical_id`, if it is a queue.
    pub fn queue_arn(&self, logical_id: &str) -> Option<String> {
        if !self.queues.iter().any(|q| q == logical_id) {
            return None;
        }
        let name = self.names.get(logical_id)?;
        Some(format!(
            "arn:aws:sqs:{}:{}:{name}",
            self.region, self.account
        ))
    }

    /// The local physical name of a resource.
    pub fn name(&self, logical_id: &str) -> Option<&str> {
        self.names.get(logical_id).map(String::as_str)
    }

    fn error(&self, context: &str, message: impl Into<String>) -> Error {
        Error::Template {
            template: self.template_source.clone(),
            message: format!("{context}: {}", message.into()),
        }
    }

    /// A value as the string a function's environment would hold.
    pub fn string(&self, context: &str, value: &Value) -> Result<String, Error> {
        match value {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            Value::Tagged(tagged) => {
                let tag = tagged.tag.to_string();
                self.function(context, tag.trim_start_matches('!'), &tagged.value)
            }
            // The long forms: `{Ref: X}`, `{Fn::GetAtt: ...}`, `{Fn::Sub: ...}`.
            Value::Mapping(m) if m.len() == 1 => match m.iter().next() {
                Some((key, inner)) => match key.as_str() {
                    Some("Ref") => self.function(context, "Ref", inner),
                    Some(k) if k.starts_with("Fn::") => self.function(context, &k[4..], inner),
                    _ => Err(self.error(context, "expected a string or an intrinsic function")),
                },
                None => Err(self.error(context, "expected a string or an intrinsic function")),
            },
            _ => Err(self.error(context, "expected a string or an intrinsic function")),
        }
    }

    fn function(&self, context: &str, name: &str, arg: &Value) -> Result<String, Error> {
        match name {
            "Ref" => self.reference(
                context,
                arg.as_str()
                    .ok_or_else(|| self.error(context, "!Ref needs a name"))?,
            ),
            "GetAtt" => {
                let (resource, attribute) = match arg {
                    Value::String(s) => s
                        .split_once('.')
                        .ok_or_else(|| self.error(context, "!GetAtt needs Resource.Attribute"))?,
                    Value::Sequence(v) if v.len() == 2 => (
                        v[0].as_str()
                            .ok_or_else(|| self.error(context, "!GetAtt needs names"))?,
                        v[1].as_str()
                            .ok_or_else(|| self.error(context, "!GetAtt needs names"))?,
                    ),
                    _ => return Err(self.error(context, "!GetAtt needs Resource.Attribute")),
                };
                self.attribute(context, resource, attribute)
            }
            "Sub" => match arg {
                Value::String(s) => self.substitute(context, s, &HashMap::new()),
                Value::Sequence(v) if v.len() == 2 => {
                    let text = v[0]
                        .as_str()
                        .ok_or_else(|| self.error(context, "!Sub needs a string"))?;
                    let mut vars = HashMap::new();
                    if let Value::Mapping(m) = &v[1] {
                        for (k, val) in m {
                            let k = k
                                .as_str()
                                .ok_or_else(|| self.error(context, "!Sub variables need names"))?;
                            vars.insert(k.to_owned(), self.string(context, val)?);
                        }
                    }
                    self.substitute(context, text, &vars)
                }
                _ => Err(self.error(context, "!Sub needs a string")),
            },
            other => Err(self.error(
                context,
                format!("the intrinsic function {other} is not supported locally"),
            )),
        }
    }

    fn reference(&self, context: &str, name: &str) -> Result<String, Error> {
        match name {
            "AWS::Region" => return Ok(self.region.clone()),
            "AWS::AccountId" => return Ok(self.account.clone()),
            "AWS::StackName" => return Ok(self.stack.clone()),
            "AWS::Partition" => return Ok("aws".to_owned()),
            "AWS::URLSuffix" => return Ok("amazonaws.com".to_owned()),
            _ => {}
        }
        if let Some(v) = self.parameters.get(name) {
            return Ok(v.clone());
        }
        // `!Ref` of a queue is its URL.
        if let Some(url) = self.queue_url(name) {
            return Ok(url);
        }
        self.names
            .get(name)
            .cloned()
            .ok_or_else(|| self.error(context, format!("!Ref {name}: no such parameter or resource (a parameter without Default needs a value)")))
    }

    fn attribute(&self, context: &str, resource: &str, attribute: &str) -> Result<String, Error> {
        let name = self.names.get(resource).ok_or_else(|| {
            self.error(
                context,
                format!("!GetAtt {resource}.{attribute}: no such resource"),
            )
        })?;
        if self.tables.iter().any(|t| t == resource) {
            let arn = format!(
                "arn:aws:dynamodb:{}:{}:table/{name}",
                self.region, self.account
            );
            return match attribute {
                "Arn" => Ok(arn),
                "StreamArn" => Ok(format!("{arn}/stream/local")),
                _ => Err(self.error(
                    context,
                    format!("!GetAtt {resource}.{attribute}: not supported locally"),
                )),
            };
        }
        if self.apis.iter().any(|a| a == resource) {
            return match attribute {
                "ApiId" => Ok(name.clone()),
                // The public endpoint's form; locally the gateway serves it elsewhere.
                "ApiEndpoint" => Ok(format!(
                    "wss://{name}.execute-api.{}.amazonaws.com",
                    self.region
                )),
                _ => Err(self.error(
                    context,
                    format!("!GetAtt {resource}.{attribute}: not supported locally"),
                )),
            };
        }
        if let Some(arn) = self.queue_arn(resource) {
            return match attribute {
                "Arn" => Ok(arn),
                "QueueName" => Ok(name.clone()),
                "QueueUrl" => Ok(self.queue_url(resource).unwrap_or_default()),
                _ => Err(self.error(
                    context,
                    format!("!GetAtt {resource}.{attribute}: not supported locally"),
                )),
            };
        }
        if self.functions.iter().any(|f| f == resource) && attribute == "Arn" {
            return Ok(format!(
                "arn:aws:lambda:{}:{}:function:{name}",
                self.region, self.account
            ));
        }
        match attribute {
            "Arn" => Ok(format!(
                "arn:aws:local:{}:{}:{resource}/{name}",
                self.region, self.account
            )),
            _ => Err(self.error(
                context,
                format!("!GetAtt {resource}.{attribute}: not supported locally"),
            )),
        }
    }

    fn substitute(
        &self,
        context: &str,
        text: &str,
        vars: &HashMap<String, String>,
    ) -> Result<String, Error> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| self.error(context, "!Sub: unclosed ${"))?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(v) = vars.get(name) {
                out.push_str(v);
            } else if let Some((resource, attribute)) = name.split_once('.') {
                out.push_str(&self.attribute(context, resource, attribute)?);
            } else {
                out.push_str(&self.reference(context, name)?);
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// A local API id from a resource's local name: its letters and digits in lower case.
fn api_id(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"
Parameters:
  Issuer:
    Type: String
    Default: https://issuer
  NoDefault:
    Type: String
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      AttributeDefinitions: [{AttributeName: PK, AttributeType: S}]
      KeySchema: [{AttributeName: PK, KeyType: HASH}]
      BillingMode: PAY_PER_REQUEST
  Jobs:
    Type: AWS::SQS::Queue
  Ordered:
    Type: AWS::SQS::Queue
    Properties: { FifoQueue: true }
  Ws:
    Type: AWS::ApiGatewayV2::Api
    Properties: { Name: ws, ProtocolType: WEBSOCKET, RouteSelectionExpression: $request.body.action }
  WsStage:
    Type: AWS::ApiGatewayV2::Stage
    Properties: { ApiId: !Ref Ws, StageName: live }
"#;

    fn resolver(suffix: &str) -> Resolver {
        let t = Template::from_yaml("t.yaml", TEMPLATE).unwrap();
        let overrides = HashMap::from([("NoDefault".to_string(), "given".to_string())]);
        Resolver::new(&t, &overrides, suffix, "eu-west-1")
    }

    fn yaml(s: &str) -> Value {
        serde_yaml_ng::from_str(s).unwrap()
    }

    #[test]
    fn refs_parameters_resources_and_pseudo_parameters() {
        let r = resolver("");
        assert_eq!(r.string("x", &yaml("!Ref Table")).unwrap(), "Table");
        assert_eq!(
            r.string("x", &yaml("!Ref Issuer")).unwrap(),
            "https://issuer"
        );
        assert_eq!(r.string("x", &yaml("!Ref NoDefault")).unwrap(), "given");
        assert_eq!(
            r.string("x", &yaml("{Ref: AWS::Region}")).unwrap(),
            "eu-west-1"
        );
        assert!(r.string("x", &yaml("!Ref Missing")).is_err());
    }

    #[test]
    fn getatt_and_sub() {
        let r = resolver("-t1");
        assert_eq!(
            r.string("x", &yaml("!GetAtt Table.Arn")).unwrap(),
            "arn:aws:dynamodb:eu-west-1:123456789012:table/Table-t1"
        );
        assert_eq!(
            r.string("x", &yaml("{'Fn::GetAtt': [Table, Arn]}"))
                .unwrap(),
            "arn:aws:dynamodb:eu-west-1:123456789012:table/Table-t1"
        );
        assert!(r.string("x", &yaml(r#"!Sub "${Unknown}""#)).is_err());
        assert_eq!(
            r.string(
                "x",
                &yaml(r#"!Sub "${Table}|${AWS::AccountId}|${!Literal}""#)
            )
            .unwrap(),
            "Table-t1|123456789012|${Literal}"
        );
        assert_eq!(
            r.string("x", &yaml(r#"!Sub ["${A}-${Issuer}", {A: !Ref Table}]"#))
                .unwrap(),
            "Table-t1-https://issuer"
        );
        assert!(r.string("x", &yaml("!GetAtt Table.Nope")).is_err());
        assert!(r.string("x", &yaml("!Select [0, [a]]")).is_err());
    }

    #[test]
    fn queues_resolve_to_the_emulators_url_arn_and_name() {
        let r = resolver("-t2").with_endpoint("http://127.0.0.1:5400/");
        assert_eq!(
            r.string("x", &yaml("!Ref Jobs")).unwrap(),
            "http://127.0.0.1:5400/123456789012/Jobs-t2"
        );
        assert_eq!(
            r.string("x", &yaml("!GetAtt Jobs.Arn")).unwrap(),
            "arn:aws:sqs:eu-west-1:123456789012:Jobs-t2"
        );
        assert_eq!(
            r.string("x", &yaml("!GetAtt Jobs.QueueName")).unwrap(),
            "Jobs-t2"
        );
        assert_eq!(
            r.string("x", &yaml("!Ref Ordered")).unwrap(),
            "http://127.0.0.1:5400/123456789012/Ordered-t2.fifo"
        );
        assert!(r.string("x", &yaml("!GetAtt Jobs.Nope")).is_err());
        // Without an emulator: SQS's own endpoint of the region.
        assert_eq!(
            resolver("").string("x", &yaml("!Ref Jobs")).unwrap(),
            "https://sqs.eu-west-1.amazonaws.com/123456789012/Jobs"
        );
        assert_eq!(r.queue_url("Table"), None);
    }

    #[test]
    fn websocket_api_and_stage_resolve_as_api_gateway_names_them() {
        let r = resolver("-Ws3");
        let endpoint =
            yaml(r#"!Sub "https://${Ws}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${WsStage}""#);
        assert_eq!(
            r.string("x", &endpoint).unwrap(),
            "https://wsws3.execute-api.eu-west-1.amazonaws.com/live"
        );
        assert_eq!(r.string("x", &yaml("!Ref WsStage")).unwrap(), "live");
        assert_eq!(r.string("x", &yaml("!GetAtt Ws.ApiId")).unwrap(), "wsws3");
        assert_eq!(
            r.string("x", &yaml("!GetAtt Ws.ApiEndpoint")).unwrap(),
            "wss://wsws3.execute-api.eu-west-1.amazonaws.com"
        );
    }
}
