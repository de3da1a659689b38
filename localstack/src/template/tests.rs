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
            ("GSI2PK", AttributeType::String),
            ("GSI2SK", AttributeType::String),
        ]
    );
    assert_eq!(
        table.global_secondary_indexes,
        [
            GlobalSecondaryIndex {
                name: "GSI1".into(),
                key_schema: KeySchema {
                    partition_key: "GSI1PK".into(),
                    sort_key: Some("GSI1SK".into()),
                },
                projection: Projection::All,
            },
            // Runs that are not over, for the scheduler's sweep.
            GlobalSecondaryIndex {
                name: "GSI2".into(),
                key_schema: KeySchema {
                    partition_key: "GSI2PK".into(),
                    sort_key: Some("GSI2SK".into()),
                },
                projection: Projection::Include(vec!["workflow_id".into()]),
            },
        ]
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
    // 37 of api-workflows (8 of them chain runs, 5 schedules, 2 dead-letter queues, /docs), 45
    // of api-auth (15 of them notifications), 15 of api-analytics (3 of them /status,
    // /api/v3/status and /metrics, 5 the audit trail's).
    assert_eq!(routes.len(), 97, "{routes:#?}");

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
        route("ApiWorkflowsFunction", "GET", "/api/v3/asyncapi.json"),
        route("ApiWorkflowsFunction", "GET", "/health"),
        route(
            "ApiWorkflowsFunction",
            "POST",
            "/api/v3/workflows/{id}/runs",
        ),
        route(
            "ApiWorkflowsFunction",
            "GET",
            "/api/v3/workflows/{id}/runs/{run_id}",
        ),
        route(
            "ApiWorkflowsFunction",
            "POST",
            "/api/v3/workflows/{id}/runs/{run_id}/steps/{step_id}/approve",
        ),
        route("ApiAuthFunction", "POST", "/api/v3/auth/login"),
        route("ApiAuthFunction", "GET", "/.well-known/jwks.json"),
        route("ApiAuthFunction", "PUT", "/api/v3/admin/users/{id}/role"),
        route("ApiAuthFunction", "POST", "/api/v3/notifications/channels"),
        route(
            "ApiAuthFunction",
            "PUT",
            "/api/v3/notifications/preferences",
        ),
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
            source: EventSource::Sqs(SqsEventSpec {
                queue: "Queue".into(),
                batch_size: DEFAULT_SQS_BATCH_SIZE,
                maximum_batching_window_s: 0,
                report_batch_item_failures: false,
                maximum_concurrency: None,
                enabled: true,
            }),
        }
    );
    assert_eq!(
        template.queues(),
        [QueueSpec {
            logical_id: "Queue".into(),
            fifo: false,
            visibility_timeout_s: None,
            message_retention_s: None,
            delay_s: None,
            receive_wait_s: None,
            sqs_managed_sse: None,
            redrive: None,
        }]
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

#[test]
fn the_repository_template_has_four_step_queues_each_with_a_dead_letter_queue() {
    let template = repository_template();
    let queues = template.queues();
    let worker = template
        .functions()
        .into_iter()
        .find(|f| f.logical_id == "WorkerFunction")
        .expect("the worker");
    assert_eq!(worker.binary, "worker");
    let ids: Vec<&str> = queues.iter().map(|q| q.logical_id.as_str()).collect();
    let step_queues = ids.iter().filter(|id| id.contains("Step")).count();
    assert_eq!(step_queues, 8, "{ids:?}");
    for level in ["Critical", "High", "Normal", "Low"] {
        let queue_id = format!("{level}StepQueue");
        let dlq_id = format!("{level}StepDeadLetterQueue");
        let position = |id: &str| ids.iter().position(|q| *q == id).expect(id);
        assert!(position(&dlq_id) < position(&queue_id), "{ids:?}");
        let queue = &queues[position(&queue_id)];
        let dlq = &queues[position(&dlq_id)];
        assert_eq!(
            queue.redrive,
            Some(Redrive {
                dead_letter_queue: dlq_id.clone(),
                max_receive_count: 5,
            })
        );
        assert!(!queue.fifo && !dlq.fifo, "standard queues");
        assert!(
            queue.visibility_timeout_s.expect("a visibility timeout") >= 6 * worker.timeout_s,
            "{queue_id}: visibility timeout under 6x the worker's timeout"
        );
        assert_eq!(dlq.message_retention_s, Some(14 * 24 * 3600));
        assert_eq!(
            (queue.sqs_managed_sse, dlq.sqs_managed_sse),
            (Some(true), Some(true))
        );
    }

    // One SQS event per queue, more concurrency for higher priorities.
    let events: Vec<(String, u64, bool, Option<u64>)> = template
        .sqs_events()
        .into_iter()
        .filter(|(function, _, _)| function != "NotifierFunction")
        .map(|(function, _, e)| {
            assert_eq!(function, "WorkerFunction");
            (
                e.queue,
                e.batch_size,
                e.report_batch_item_failures,
                e.maximum_concurrency,
            )
        })
        .collect();
    let expected = [
        ("CriticalStepQueue", 20),
        ("HighStepQueue", 10),
        ("NormalStepQueue", 5),
        ("LowStepQueue", 2),
    ]
    .map(|(q, c)| (q.to_owned(), 5, true, Some(c)));
    assert_eq!(events, expected);

    let names = |f: &FunctionSpec| -> Vec<String> {
        f.environment.iter().map(|(k, _)| k.clone()).collect()
    };
    for variable in [
        "TABLE_NAME",
        "QUEUE_URL_CRITICAL",
        "QUEUE_URL_HIGH",
        "QUEUE_URL_NORMAL",
        "QUEUE_URL_LOW",
        "DEFAULT_MODEL",
        "GENERATOR_URL",
        "GENERATOR_API_KEY_CIPHERTEXT",
        "KMS_KEY_ID",
        "RUST_LOG",
    ] {
        assert!(names(&worker).iter().any(|n| n == variable), "{variable}");
    }
    let api = template
        .functions()
        .into_iter()
        .find(|f| f.logical_id == "ApiWorkflowsFunction")
        .expect("api-workflows");
    for variable in [
        "QUEUE_URL_CRITICAL",
        "QUEUE_URL_HIGH",
        "QUEUE_URL_NORMAL",
        "QUEUE_URL_LOW",
    ] {
        assert!(names(&api).iter().any(|n| n == variable), "{variable}");
    }
    let defaults: Vec<(&str, Option<&str>)> = template
        .parameters()
        .iter()
        .filter(|p| p.name.starts_with("DefaultModel") || p.name.starts_with("Generator"))
        .map(|p| (p.name.as_str(), p.default.as_deref()))
        .collect();
    assert_eq!(
        defaults,
        [
            ("DefaultModel", Some("builtin")),
            ("GeneratorUrl", Some("")),
            ("GeneratorApiKeyCiphertext", Some("")),
        ]
    );
}

const QUEUE_TEMPLATE: &str = r#"
Resources:
  Dlq:
    Type: AWS::SQS::Queue
  Main:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: "60"
      RedrivePolicy: { deadLetterTargetArn: !GetAtt Dlq.Arn, maxReceiveCount: 3 }
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        Jobs:
          Type: SQS
          Properties:
            Queue: { "Fn::GetAtt": [Main, Arn] }
            BatchSize: 50
            MaximumBatchingWindowInSeconds: 2
            FunctionResponseTypes: [ReportBatchItemFailures]
            ScalingConfig: { MaximumConcurrency: 3 }
            Enabled: false
"#;

#[test]
fn queues_and_sqs_events_parse_with_long_forms() {
    let template = Template::from_yaml("inline.yaml", QUEUE_TEMPLATE).expect("parses");
    let queues = template.queues();
    assert_eq!(queues[1].visibility_timeout_s, Some(60));
    assert_eq!(
        queues[1].redrive.as_ref().map(|r| r.max_receive_count),
        Some(3)
    );
    let events = template.sqs_events();
    assert_eq!(
        events,
        [(
            "Fn".to_owned(),
            "Jobs".to_owned(),
            SqsEventSpec {
                queue: "Main".into(),
                batch_size: 50,
                maximum_batching_window_s: 2,
                report_batch_item_failures: true,
                maximum_concurrency: Some(3),
                enabled: false,
            }
        )]
    );

    // Dead-letter queues come first whatever the template order.
    let reversed = Template::from_yaml(
        "inline.yaml",
        "Resources:\n  Main:\n    Type: AWS::SQS::Queue\n    Properties:\n      RedrivePolicy: { deadLetterTargetArn: !GetAtt Dlq.Arn, maxReceiveCount: 3 }\n  Dlq:\n    Type: AWS::SQS::Queue\n",
    )
    .expect("parses");
    let order: Vec<String> = reversed
        .queues()
        .into_iter()
        .map(|q| q.logical_id)
        .collect();
    assert_eq!(order, ["Dlq", "Main"]);
}

#[test]
fn queue_and_sqs_event_errors_are_clear() {
    let event = |props: &str| {
        format!(
            "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n  T:\n    Type: AWS::SNS::Topic\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      Events:\n        Jobs:\n          Type: SQS\n          Properties: {props}\n"
        )
    };
    let cases = [
        (
            event("{ Queue: !Ref Q }"),
            "property `Properties.Events.Jobs.Properties.Queue`: expected `!GetAtt <queue>.Arn` naming a queue of this template, found `!Ref Q`",
        ),
        (
            event("{ Queue: !GetAtt T.Arn }"),
            "resource `Fn`, property `Properties.Events.Jobs.Properties.Queue`: `T` is not an AWS::SQS::Queue of this template",
        ),
        (
            event("{ Queue: !GetAtt Q.Arn, ScalingConfig: { MaximumConcurrency: 1 } }"),
            "property `Properties.Events.Jobs.Properties.ScalingConfig.MaximumConcurrency`: must be 2 to 1000, found 1",
        ),
        (
            event("{ Queue: !GetAtt Q.Arn, BatchSize: 11 }"),
            "property `Properties.Events.Jobs.Properties.BatchSize`: must be 1 to 10",
        ),
        (
            event("{ Queue: !GetAtt Q.Arn, FunctionResponseTypes: [Everything] }"),
            "expected one of ReportBatchItemFailures, found `Everything`",
        ),
        (
            event("{ Queue: !GetAtt Q.Arn, FilterCriteria: {} }"),
            "property `Properties.Events.Jobs.Properties.FilterCriteria`: not supported",
        ),
        (
            event("{ BatchSize: 1 }"),
            "property `Properties.Events.Jobs.Properties.Queue`: required, but missing",
        ),
        (
            "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      RedrivePolicy: { deadLetterTargetArn: !GetAtt Gone.Arn, maxReceiveCount: 5 }\n".to_owned(),
            "resource `Q`, property `Properties.RedrivePolicy.deadLetterTargetArn`: `Gone` is not an AWS::SQS::Queue of this template",
        ),
        (
            "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      QueueName: fixed\n".to_owned(),
            "resource `Q`, property `Properties.QueueName`: not supported",
        ),
        (
            "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      VisibilityTimeout: soon\n".to_owned(),
            "property `Properties.VisibilityTimeout`: expected a whole number",
        ),
    ];
    for (yaml, expected) in cases {
        let message = error_of(&yaml);
        assert!(
            message.contains(expected),
            "for\n{yaml}\nexpected {expected:?} in {message:?}"
        );
    }
}

#[test]
fn the_repository_template_has_a_websocket_api_whose_routes_reach_ws_connect() {
    let template = repository_template();
    let api = template
        .resource("WebSocketApi")
        .expect("the WebSocket API");
    assert_eq!(api.resource_type, "AWS::ApiGatewayV2::Api");
    assert_eq!(
        api.properties["ProtocolType"],
        Value::String("WEBSOCKET".into())
    );
    assert_eq!(
        api.properties["RouteSelectionExpression"],
        Value::String("$request.body.action".into())
    );
    let integration = template
        .resource("WsConnectIntegration")
        .expect("the integration");
    assert_eq!(
        integration.properties["IntegrationType"],
        Value::String("AWS_PROXY".into())
    );
    let mut keys = Vec::new();
    for id in ["WsConnectRoute", "WsDisconnectRoute", "WsDefaultRoute"] {
        let route = template.resource(id).expect("a route");
        assert_eq!(route.resource_type, "AWS::ApiGatewayV2::Route");
        let Value::Tagged(target) = &route.properties["Target"] else {
            panic!("{id}: Target should be a !Sub");
        };
        assert_eq!(
            target.value,
            Value::String("integrations/${WsConnectIntegration}".into()),
            "{id}"
        );
        keys.push(route.properties["RouteKey"].clone());
    }
    assert_eq!(
        keys,
        ["$connect", "$disconnect", "$default"].map(|k| Value::String(k.into()))
    );
    // $default answers on the connection: it has a route response.
    let response = template
        .resource("WsDefaultRouteResponse")
        .expect("the route response");
    assert_eq!(
        response.properties["RouteResponseKey"],
        Value::String("$default".into())
    );
    let functions = template.functions();
    let f = functions
        .iter()
        .find(|f| f.logical_id == "WsConnectFunction")
        .expect("the function");
    assert_eq!(f.binary, "ws-connect");
    let names: Vec<&str> = f.environment.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        ["TABLE_NAME", "JWT_ISSUER", "JWT_AUDIENCE", "RUST_LOG"]
    );
}

#[test]
fn the_repository_templates_websocket_api_is_modelled() {
    let template = repository_template();
    let api = template.websocket_api().expect("a WebSocket API");
    assert_eq!(api.logical_id, "WebSocketApi");
    assert_eq!(api.route_selection_expression, "$request.body.action");
    assert_eq!(api.selection_field(), ["action"]);
    assert_eq!(
        (api.stage.as_str(), api.stage_logical_id.as_str()),
        ("ws", "WebSocketStage")
    );
    let routes: Vec<(&str, &str, bool)> = api
        .routes
        .iter()
        .map(|r| (r.route_key.as_str(), r.function.as_str(), r.two_way))
        .collect();
    assert_eq!(
        routes,
        [
            ("$connect", "WsConnectFunction", false),
            ("$disconnect", "WsConnectFunction", false),
            ("$default", "WsConnectFunction", true),
        ]
    );
}

const WS_TEMPLATE: &str = r#"
Resources:
  Api:
    Type: AWS::ApiGatewayV2::Api
    Properties: { ProtocolType: WEBSOCKET, RouteSelectionExpression: $request.body.op.kind }
  Http:
    Type: AWS::ApiGatewayV2::Api
    Properties: { ProtocolType: HTTP }
  Integration:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: { Ref: Api }
      IntegrationType: AWS_PROXY
      IntegrationUri: { "Fn::Sub": "arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${Handler.Arn}/invocations" }
  Other:
    Type: AWS::ApiGatewayV2::Integration
    Properties: { ApiId: !Ref Api, IntegrationType: AWS_PROXY, IntegrationUri: !GetAtt Second.Arn }
  Connect:
    Type: AWS::ApiGatewayV2::Route
    Properties: { ApiId: !Ref Api, RouteKey: $connect, Target: !Sub "integrations/${Integration}" }
  Echo:
    Type: AWS::ApiGatewayV2::Route
    Properties: { ApiId: !Ref Api, RouteKey: echo, Target: integrations/Other }
  HttpRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties: { ApiId: !Ref Http, RouteKey: GET /x, Target: !Sub "integrations/${Nowhere}" }
  EchoResponse:
    Type: AWS::ApiGatewayV2::RouteResponse
    Properties: { ApiId: !Ref Api, RouteId: !Ref Echo, RouteResponseKey: $default }
  Stage:
    Type: AWS::ApiGatewayV2::Stage
    Properties: { ApiId: !Ref Api, StageName: prod }
  Handler:
    Type: AWS::Serverless::Function
  Second:
    Type: AWS::Serverless::Function
"#;

#[test]
fn a_websocket_api_with_long_forms_and_plain_targets_parses() {
    let template = Template::from_yaml("inline.yaml", WS_TEMPLATE).expect("parses");
    let api = template.websocket_api().expect("the API");
    assert_eq!(api.selection_field(), ["op", "kind"]);
    assert_eq!(api.stage, "prod");
    assert_eq!(
        api.routes,
        [
            WsRoute {
                route_key: "$connect".into(),
                function: "Handler".into(),
                two_way: false,
            },
            WsRoute {
                route_key: "echo".into(),
                function: "Second".into(),
                two_way: true,
            },
        ]
    );
    assert_eq!(api.route("echo").map(|r| r.two_way), Some(true));
    assert!(
        Template::from_yaml("inline.yaml", QUEUE_TEMPLATE)
            .unwrap()
            .websocket_api()
            .is_none()
    );
}

#[test]
fn websocket_api_errors_are_clear() {
    let cases = [
        (
            WS_TEMPLATE.replace("$request.body.op.kind", "$request.header.x"),
            "resource `Api`, property `Properties.RouteSelectionExpression`: the local gateway supports `$request.body.<field>` only",
        ),
        (
            WS_TEMPLATE.replace(
                "IntegrationType: AWS_PROXY, IntegrationUri: !GetAtt Second.Arn",
                "IntegrationType: MOCK",
            ),
            "resource `Echo`, property `Properties.Target`: integration `Other` is MOCK; the local gateway supports AWS_PROXY only",
        ),
        (
            WS_TEMPLATE.replace("${Handler.Arn}", "${Stage}"),
            "integration `Integration`: IntegrationUri names no AWS::Serverless::Function",
        ),
        (
            WS_TEMPLATE.replace("Target: integrations/Other", "Target: !Ref Other"),
            "property `Properties.Target`: expected `!Sub \"integrations/${<integration>}\"`, found `!Ref Other`",
        ),
        (
            WS_TEMPLATE.replace("Target: integrations/Other", "Target: integrations/Missing"),
            "`Missing` is not an AWS::ApiGatewayV2::Integration of this template",
        ),
        (
            WS_TEMPLATE.replace(
                "ApiId: !Ref Api, StageName: prod",
                "ApiId: !Ref Http, StageName: prod",
            ),
            "`Api`: the WebSocket API has no AWS::ApiGatewayV2::Stage",
        ),
        (
            WS_TEMPLATE.replace(
                "ProtocolType: HTTP",
                "ProtocolType: WEBSOCKET, RouteSelectionExpression: $request.body.a",
            ),
            "the local gateway serves one WebSocket API",
        ),
    ];
    for (yaml, expected) in cases {
        let message = error_of(&yaml);
        assert!(
            message.contains(expected),
            "expected {expected:?} in {message:?}"
        );
    }
}

const STREAM_TEMPLATE: &str = r#"
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      AttributeDefinitions: [{ AttributeName: PK, AttributeType: S }]
      KeySchema: [{ AttributeName: PK, KeyType: HASH }]
      StreamSpecification: { StreamViewType: NEW_AND_OLD_IMAGES }
  NoStream:
    Type: AWS::DynamoDB::Table
    Properties:
      AttributeDefinitions: [{ AttributeName: PK, AttributeType: S }]
      KeySchema: [{ AttributeName: PK, KeyType: HASH }]
  Failures:
    Type: AWS::SQS::Queue
  Broadcast:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        TableStream:
          Type: DynamoDB
          Properties:
            Stream: !GetAtt Table.StreamArn
            StartingPosition: LATEST
            BatchSize: 100
            MaximumBatchingWindowInSeconds: 0
            ParallelizationFactor: 1
            MaximumRetryAttempts: 5
            BisectBatchOnFunctionError: true
            FunctionResponseTypes: [ReportBatchItemFailures]
            DestinationConfig:
              OnFailure:
                Type: SQS
                Destination: !GetAtt Failures.Arn
            FilterCriteria:
              Filters:
                - Pattern: '{"dynamodb": {"Keys": {"PK": {"S": [{"prefix": "WF#"}, {"prefix": "RUN#"}]}}}}'
                - Pattern: '{"eventName": ["REMOVE"]}'
        Minimal:
          Type: DynamoDB
          Properties:
            Stream: { "Fn::GetAtt": [Table, StreamArn] }
            StartingPosition: TRIM_HORIZON
            MaximumRetryAttempts: -1
            Enabled: false
"#;

#[test]
fn dynamodb_stream_events_parse_with_defaults_and_long_forms() {
    let template = Template::from_yaml("inline.yaml", STREAM_TEMPLATE).expect("parses");
    let events = template.dynamodb_events();
    assert_eq!(events.len(), 2);
    let (function, event, spec) = &events[0];
    assert_eq!(
        (function.as_str(), event.as_str()),
        ("Broadcast", "TableStream")
    );
    assert_eq!(
        spec,
        &DynamoDbEventSpec {
            table: "Table".into(),
            starting_position: StartingPosition::Latest,
            batch_size: 100,
            maximum_batching_window_s: 0,
            maximum_retry_attempts: Some(5),
            parallelization_factor: 1,
            bisect: true,
            report_batch_item_failures: true,
            on_failure: Some("Failures".into()),
            filters: vec![
                serde_json::json!({"dynamodb": {"Keys": {"PK": {"S": [{"prefix": "WF#"}, {"prefix": "RUN#"}]}}}}),
                serde_json::json!({"eventName": ["REMOVE"]}),
            ],
            enabled: true,
        }
    );
    assert_eq!(
        events[1].2,
        DynamoDbEventSpec {
            table: "Table".into(),
            starting_position: StartingPosition::TrimHorizon,
            batch_size: DEFAULT_STREAM_BATCH_SIZE,
            maximum_batching_window_s: 0,
            maximum_retry_attempts: None,
            parallelization_factor: 1,
            bisect: false,
            report_batch_item_failures: false,
            on_failure: None,
            filters: vec![],
            enabled: false,
        }
    );
    // Not an SQS event, nor an HTTP route.
    assert!(template.sqs_events().is_empty() && template.http_routes().is_empty());
}

#[test]
fn dynamodb_stream_event_errors_are_clear() {
    let event = |props: &str| {
        format!(
            "{}\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      Events:\n        S:\n          Type: DynamoDB\n          Properties: {props}\n",
            STREAM_TEMPLATE.trim_end()
        )
    };
    let cases = [
        (
            event("{ Stream: !GetAtt Table.Arn, StartingPosition: LATEST }"),
            "property `Properties.Events.S.Properties.Stream`: expected `!GetAtt <table>.StreamArn` naming a table of this template, found `!GetAtt Table.Arn`",
        ),
        (
            event("{ Stream: !GetAtt NoStream.StreamArn, StartingPosition: LATEST }"),
            "resource `Fn`, property `Properties.Events.S.Properties.Stream`: `NoStream` is not an AWS::DynamoDB::Table of this template with a StreamSpecification",
        ),
        (
            event("{ Stream: !GetAtt Table.StreamArn }"),
            "property `Properties.Events.S.Properties.StartingPosition`: required, but missing",
        ),
        (
            event("{ Stream: !GetAtt Table.StreamArn, StartingPosition: AT_TIMESTAMP }"),
            "expected one of LATEST, TRIM_HORIZON, found `AT_TIMESTAMP`",
        ),
        (
            event("{ Stream: !GetAtt Table.StreamArn, StartingPosition: LATEST, BatchSize: 0 }"),
            "property `Properties.Events.S.Properties.BatchSize`: must be 1 to 10000, found 0",
        ),
        (
            event(
                "{ Stream: !GetAtt Table.StreamArn, StartingPosition: LATEST, MaximumRetryAttempts: -2 }",
            ),
            "must be -1 (no limit) or 0 to 10000, found -2",
        ),
        (
            event(
                "{ Stream: !GetAtt Table.StreamArn, StartingPosition: LATEST, FilterCriteria: { Filters: [{ Pattern: '{\"a\": ' }] } }",
            ),
            "property `Properties.Events.S.Properties.FilterCriteria.Filters[0].Pattern`: not a JSON filter pattern",
        ),
        (
            event(
                "{ Stream: !GetAtt Table.StreamArn, StartingPosition: LATEST, FilterCriteria: { Filters: [{ Pattern: '[1]' }] } }",
            ),
            "a filter pattern must be a JSON object",
        ),
        (
            event(
                "{ Stream: !GetAtt Table.StreamArn, StartingPosition: LATEST, DestinationConfig: { OnFailure: { Destination: !GetAtt Table.Arn } } }",
            ),
            "property `Properties.Events.S.Properties.DestinationConfig.OnFailure.Destination`: `Table` is not an AWS::SQS::Queue of this template",
        ),
        (
            event(
                "{ Stream: !GetAtt Table.StreamArn, StartingPosition: LATEST, DestinationConfig: { OnFailure: { Type: SNS, Destination: !GetAtt Failures.Arn } } }",
            ),
            "expected one of SQS, found `SNS`",
        ),
        (
            event(
                "{ Stream: !GetAtt Table.StreamArn, StartingPosition: LATEST, MaximumRecordAgeInSeconds: 60 }",
            ),
            "property `Properties.Events.S.Properties.MaximumRecordAgeInSeconds`: not supported by the local gateway",
        ),
    ];
    for (yaml, expected) in cases {
        let message = error_of(&yaml);
        assert!(
            message.contains(expected),
            "for\n{yaml}\nexpected {expected:?} in {message:?}"
        );
    }
}

#[test]
fn each_kms_alias_gives_the_kind_of_its_key() {
    let t = repository_template();
    // The audit seals' key makes and checks MACs; the signing keys' wraps data keys.
    assert_eq!(
        t.alias_key_spec("AuditKeyAlias"),
        (
            Some("HMAC_256".to_string()),
            Some("GENERATE_VERIFY_MAC".to_string())
        )
    );
    assert_eq!(t.alias_key_spec("SigningKeysKeyAlias"), (None, None));
    assert_eq!(t.alias_key_spec("NoSuchAlias"), (None, None));
}
