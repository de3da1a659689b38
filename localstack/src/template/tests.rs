use serde_yaml_ng::Value;

use super::*;

fn repository_template() -> Template {
    Template::load_default().expect("infra/sam-template.yaml loads")
}

fn route(function: &str, method: &str, path: &str) -> (String, String, String) {
    (function.to_owned(), method.to_owned(), path.to_owned())
}

fn error_of(yaml: &str) -> String {
    match Template::from_yaml("inline.yaml", yaml) {
        Ok(template) => panic!("expected an error, parsed {template:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_repository_template_has_one_table_as_designed() {
    let tables = repository_template().tables();
    assert_eq!(tables.len(), 1, "{tables:#?}");
    let table = &tables[0];

    assert_eq!(table.logical_id, "WorkflowTable");
    assert_eq!(
        table.key_schema,
        KeySchema {
            partition_key: "PK".into(),
            sort_key: Some("SK".into()),
        }
    );
    let defined: Vec<(&str, AttributeType)> = table
        .attribute_definitions
        .iter()
        .map(|d| (d.name.as_str(), d.attribute_type))
        .collect();
    assert_eq!(
        defined,
        [
            ("PK", AttributeType::String),
            ("SK", AttributeType::String),
            ("GSI1PK", AttributeType::String),
            ("GSI1SK", AttributeType::String),
        ]
    );
    assert_eq!(
        table.global_secondary_indexes,
        [GlobalSecondaryIndex {
            name: "GSI1".into(),
            key_schema: KeySchema {
                partition_key: "GSI1PK".into(),
                sort_key: Some("GSI1SK".into()),
            },
            projection: Projection::All,
        }]
    );
    assert_eq!(table.billing_mode, BillingMode::PayPerRequest);
    assert_eq!(
        table.stream_view_type,
        Some(StreamViewType::NewAndOldImages)
    );
    assert_eq!(table.ttl_attribute.as_deref(), Some("expires_at"));
}

#[test]
fn the_repository_template_has_every_route_once() {
    let routes = repository_template().http_routes();
    // 20 of api-workflows, 30 of api-auth.
    assert_eq!(routes.len(), 50, "{routes:#?}");

    let triples: Vec<_> = routes
        .iter()
        .map(|r| route(&r.function, &r.method, &r.path))
        .collect();
    for expected in [
        route("ApiWorkflowsFunction", "POST", "/api/v3/workflows"),
        route("ApiWorkflowsFunction", "GET", "/api/v3/workflows"),
        route("ApiWorkflowsFunction", "PATCH", "/api/v3/workflows/{id}"),
        route(
            "ApiWorkflowsFunction",
            "GET",
            "/api/v3/workflows/{id}/nodes/{node_id}",
        ),
        route(
            "ApiWorkflowsFunction",
            "DELETE",
            "/api/v3/workflows/{id}/nodes/{node_id}",
        ),
        route("ApiWorkflowsFunction", "GET", "/api/v3/openapi.json"),
        route("ApiWorkflowsFunction", "GET", "/health"),
        route("ApiAuthFunction", "POST", "/api/v3/auth/login"),
        route("ApiAuthFunction", "GET", "/.well-known/jwks.json"),
        route("ApiAuthFunction", "PUT", "/api/v3/admin/users/{id}/role"),
    ] {
        assert!(
            triples.contains(&expected),
            "missing {expected:?} in {triples:#?}"
        );
    }
    // Template order is kept, and each event keeps its name.
    assert_eq!(routes[0].event, "CreateWorkflow");
    assert_eq!(routes[16].event, "Health");

    let mut distinct: Vec<_> = routes.iter().map(|r| (&r.method, &r.path)).collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        routes.len(),
        "a method and path appear twice"
    );
}

#[test]
fn the_repository_template_keeps_other_resources_and_raw_properties() {
    let template = repository_template();
    let function = template
        .resource("ApiWorkflowsFunction")
        .expect("the function is there");
    assert_eq!(function.resource_type, FUNCTION_TYPE);
    let table_name = &function.properties["Environment"]["Variables"]["TABLE_NAME"];
    let Value::Tagged(tagged) = table_name else {
        panic!("TABLE_NAME should be a tagged value, is {table_name:?}");
    };
    assert_eq!(tagged.tag, "Ref");
    assert_eq!(tagged.value, Value::String("WorkflowTable".into()));

    let api = template.resource("HttpApi").expect("the API is there");
    assert_eq!(api.resource_type, "AWS::Serverless::HttpApi");
    assert!(matches!(api.kind, ResourceKind::Other));
}

const INLINE: &str = r#"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage: { Type: String, Default: dev }
Resources:
  Plain:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !Sub "${AWS::StackName}-plain"
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions:
        - { AttributeName: id, AttributeType: "N" }
        - { AttributeName: by_owner, AttributeType: S }
      KeySchema:
        - { AttributeName: id, KeyType: HASH }
      GlobalSecondaryIndexes:
        - IndexName: ByOwner
          KeySchema: [{ AttributeName: by_owner, KeyType: HASH }]
          Projection: { ProjectionType: INCLUDE, NonKeyAttributes: [title] }
      StreamSpecification: { StreamViewType: KEYS_ONLY }
      TimeToLiveSpecification: { AttributeName: gone_at, Enabled: false }
  Queue:
    Type: AWS::SQS::Queue
  Worker:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables:
          TABLE_NAME: !Ref Plain
          TABLE_ARN: !GetAtt Plain.Arn
          QUEUE_URL: { Ref: Queue }
          STAGE: !Sub "${Stage}"
      Events:
        Jobs:
          Type: SQS
          Properties: { Queue: !GetAtt Queue.Arn }
        Ping:
          Type: HttpApi
          Properties: { Method: get, Path: /ping }
        Anything:
          Type: HttpApi
        Every:
          Type: HttpApi
          Properties: { Method: x-amazon-apigateway-any-method, Path: "/things/{proxy+}" }
  NoEvents:
    Type: AWS::Serverless::Function
    Properties: { Handler: bootstrap }
"#;

#[test]
fn an_inline_template_with_short_tags_parses() {
    let template = Template::from_yaml("inline.yaml", INLINE).expect("parses");
    assert_eq!(template.source(), "inline.yaml");
    let ids: Vec<&str> = template
        .resources()
        .iter()
        .map(|r| r.logical_id.as_str())
        .collect();
    assert_eq!(ids, ["Plain", "Queue", "Worker", "NoEvents"]);

    assert_eq!(
        template.tables(),
        [TableSpec {
            logical_id: "Plain".into(),
            key_schema: KeySchema {
                partition_key: "id".into(),
                sort_key: None,
            },
            attribute_definitions: vec![
                AttributeDefinition {
                    name: "id".into(),
                    attribute_type: AttributeType::Number,
                },
                AttributeDefinition {
                    name: "by_owner".into(),
                    attribute_type: AttributeType::String,
                },
            ],
            global_secondary_indexes: vec![GlobalSecondaryIndex {
                name: "ByOwner".into(),
                key_schema: KeySchema {
                    partition_key: "by_owner".into(),
                    sort_key: None,
                },
                projection: Projection::Include(vec!["title".into()]),
            }],
            billing_mode: BillingMode::PayPerRequest,
            stream_view_type: Some(StreamViewType::KeysOnly),
            ttl_attribute: None,
        }]
    );

    let routes: Vec<_> = template
        .http_routes()
        .into_iter()
        .map(|r| (r.function, r.event, r.method, r.path))
        .collect();
    let expected = [
        ("Worker", "Ping", "GET", "/ping"),
        ("Worker", "Anything", "ANY", "$default"),
        ("Worker", "Every", "ANY", "/things/{proxy+}"),
    ]
    .map(|(f, e, m, p)| (f.to_owned(), e.to_owned(), m.to_owned(), p.to_owned()));
    assert_eq!(routes, expected);

    let functions = template.functions();
    assert_eq!(functions.len(), 2);
    assert_eq!(
        functions[0].events[0],
        FunctionEvent {
            name: "Jobs".into(),
            source: EventSource::Other {
                event_type: "SQS".into(),
            },
        }
    );
    assert!(functions[1].events.is_empty());

    let variables =
        &template.resource("Worker").expect("Worker").properties["Environment"]["Variables"];
    for (name, tag) in [
        ("TABLE_NAME", "Ref"),
        ("TABLE_ARN", "GetAtt"),
        ("STAGE", "Sub"),
    ] {
        match &variables[name] {
            Value::Tagged(tagged) => assert_eq!(tagged.tag, tag, "{name}"),
            other => panic!("{name}: expected !{tag}, found {other:?}"),
        }
    }
}

#[test]
fn rename_resource_renames_the_table_spec_too() {
    let mut template = repository_template();
    template
        .rename_resource("WorkflowTable", "CopyTable")
        .expect("renames");
    assert_eq!(template.tables()[0].logical_id, "CopyTable");
    assert!(template.resource("WorkflowTable").is_none());

    let missing = template.rename_resource("Nope", "Other").unwrap_err();
    assert!(
        missing.to_string().contains("no such resource"),
        "{missing}"
    );
    let taken = template
        .rename_resource("CopyTable", "HttpApi")
        .unwrap_err();
    assert!(taken.to_string().contains("exists already"), "{taken}");
}

const TABLE_HEAD: &str = "Resources:\n  Tbl:\n    Type: AWS::DynamoDB::Table\n    Properties:\n";

#[test]
fn errors_name_the_resource_and_the_property() {
    let cases = [
        (
            "      BillingMode: PAY_PER_REQUEST\n      AttributeDefinitions: [{ AttributeName: PK, AttributeType: S }]\n      KeySchema: [{ AttributeName: PK }]\n",
            "resource `Tbl`, property `Properties.KeySchema[0].KeyType`: required, but missing",
        ),
        (
            "      AttributeDefinitions: [{ AttributeName: PK, AttributeType: S }]\n      KeySchema: [{ AttributeName: PK, KeyType: HASH }]\n      StreamSpecification: { StreamViewType: EVERYTHING }\n",
            "property `Properties.StreamSpecification.StreamViewType`: expected one of KEYS_ONLY, NEW_IMAGE, OLD_IMAGE, NEW_AND_OLD_IMAGES, found `EVERYTHING`",
        ),
        (
            "      BillingMode: !Ref Mode\n      AttributeDefinitions: [{ AttributeName: PK, AttributeType: S }]\n      KeySchema: [{ AttributeName: PK, KeyType: HASH }]\n",
            "property `Properties.BillingMode`: expected a string, found `!Ref Mode`",
        ),
        (
            "      AttributeDefinitions: [{ AttributeName: PK, AttributeType: S }]\n      KeySchema: [{ AttributeName: PK, KeyType: HASH }, { AttributeName: SK, KeyType: RANGE }]\n",
            "property `Properties.AttributeDefinitions`: key attribute `SK` (used in KeySchema) is not defined here",
        ),
        (
            "      AttributeDefinitions: [{ AttributeName: PK, AttributeType: S }, { AttributeName: X, AttributeType: S }]\n      KeySchema: [{ AttributeName: PK, KeyType: HASH }]\n",
            "attribute `X` is defined but is no key",
        ),
        (
            "      AttributeDefinitions: [{ AttributeName: PK, AttributeType: S }]\n      KeySchema: [{ AttributeName: PK, KeyType: RANGE }]\n",
            "property `Properties.KeySchema`: no element with `KeyType: HASH`",
        ),
        (
            "      AttributeDefinitions: [{ AttributeName: PK, AttributeType: S }]\n      KeySchema: [{ AttributeName: PK, KeyType: HASH }]\n      LocalSecondaryIndexes: []\n",
            "property `Properties.LocalSecondaryIndexes`: not supported",
        ),
        (
            "      AttributeDefinitions: { AttributeName: PK }\n      KeySchema: [{ AttributeName: PK, KeyType: HASH }]\n",
            "property `Properties.AttributeDefinitions`: expected a list, found a mapping",
        ),
    ];
    for (properties, expected) in cases {
        let message = error_of(&format!("{TABLE_HEAD}{properties}"));
        assert!(
            message.starts_with("inline.yaml: ") && message.contains(expected),
            "for\n{properties}expected {expected:?}\nin {message:?}"
        );
    }
}

#[test]
fn structural_errors_are_clear() {
    let cases = [
        ("Resources: [", "inline.yaml: not valid YAML"),
        ("Parameters: {}\n", "inline.yaml: no `Resources` section"),
        ("- a\n- b\n", "expected a mapping at the top level"),
        (
            "Resources:\n  Thing:\n    Properties: {}\n",
            "resource `Thing`, property `Type`: required, but missing",
        ),
        (
            "Resources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      Events:\n        Get:\n          Type: HttpApi\n          Properties: { Method: GET }\n",
            "resource `Fn`, property `Properties.Events.Get.Properties`: an HttpApi event needs both `Method` and `Path`",
        ),
        (
            "Resources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      Events:\n        Get:\n          Type: HttpApi\n          Properties: { Method: GET, Path: health }\n",
            "property `Properties.Events.Get.Properties.Path`: expected a path starting with `/`",
        ),
    ];
    for (yaml, expected) in cases {
        let message = error_of(yaml);
        assert!(
            message.contains(expected),
            "for\n{yaml}\nexpected {expected:?} in {message:?}"
        );
    }
}

#[test]
fn load_reports_a_missing_file_by_path() {
    let message = Template::load(std::path::Path::new("/nonexistent/sam.yaml"))
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with("cannot read the template /nonexistent/sam.yaml: "),
        "{message}"
    );
}

#[test]
fn functions_carry_their_binary_environment_and_limits() {
    let template = repository_template();
    let functions = template.functions();
    let f = functions
        .iter()
        .find(|f| f.logical_id == "ApiWorkflowsFunction")
        .expect("the function");
    assert_eq!(f.binary, "api-workflows");
    assert_eq!((f.timeout_s, f.memory_mb), (10, 256));
    let names: Vec<&str> = f.environment.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        names.contains(&"TABLE_NAME") && names.contains(&"RATE_LIMITS"),
        "{names:?}"
    );
    assert!(
        template
            .parameters()
            .iter()
            .any(|p| p.name == "RateLimitsWorkflows" && p.default.is_some())
    );

    let minimal = Template::from_yaml(
        "inline.yaml",
        "Resources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      Handler: bootstrap\n",
    )
    .unwrap();
    let f = &minimal.functions()[0];
    assert_eq!(
        (f.binary.as_str(), f.timeout_s, f.memory_mb),
        ("Fn", 3, 128)
    );
    assert!(f.environment.is_empty());
}
