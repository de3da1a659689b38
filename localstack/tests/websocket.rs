//! The gateway's WebSocket API with a real function process (`ws-echo-lambda`, see its docs):
//! `$connect` refusing and accepting, routing by `$request.body.action`, two-way answers, a
//! failed invocation, the 128 KB limit, the `@connections` Management API (through the AWS
//! SDK, as functions call it) and `$disconnect`.
//!
//! Nothing here needs the AWS emulator: the template has no table or queue.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use aws_sdk_apigatewaymanagement::primitives::Blob;
use common::Local;
use futures_util::{SinkExt, StreamExt};
use localstack::gateway::{Gateway, GatewayConfig, MANAGEMENT_ENDPOINT_ENV};
use localstack::template::Template;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const TEMPLATE: &str = r#"
Resources:
  Api:
    Type: AWS::ApiGatewayV2::Api
    Properties:
      Name: test
      ProtocolType: WEBSOCKET
      RouteSelectionExpression: $request.body.action
  Integration:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref Api
      IntegrationType: AWS_PROXY
      IntegrationUri: !Sub "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${Echo.Arn}/invocations"
  ConnectRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties: { ApiId: !Ref Api, RouteKey: $connect, Target: !Sub "integrations/${Integration}" }
  DisconnectRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties: { ApiId: !Ref Api, RouteKey: $disconnect, Target: !Sub "integrations/${Integration}" }
  DefaultRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties: { ApiId: !Ref Api, RouteKey: $default, Target: !Sub "integrations/${Integration}" }
  PingRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties: { ApiId: !Ref Api, RouteKey: ping, Target: !Sub "integrations/${Integration}" }
  QuietRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties: { ApiId: !Ref Api, RouteKey: quiet, Target: !Sub "integrations/${Integration}" }
  DefaultResponse:
    Type: AWS::ApiGatewayV2::RouteResponse
    Properties: { ApiId: !Ref Api, RouteId: !Ref DefaultRoute, RouteResponseKey: $default }
  PingResponse:
    Type: AWS::ApiGatewayV2::RouteResponse
    Properties: { ApiId: !Ref Api, RouteId: !Ref PingRoute, RouteResponseKey: $default }
  Stage:
    Type: AWS::ApiGatewayV2::Stage
    Properties: { ApiId: !Ref Api, StageName: ws }
  Echo:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: echo } }
    Properties:
      Timeout: 5
      Environment:
        Variables:
          ENDPOINT: !Sub "https://${Api}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${Stage}"
"#;

const DEADLINE: Duration = Duration::from_secs(15);

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct Stack {
    gateway: Gateway,
    local: Local,
}

async fn stack() -> Stack {
    stack_with(|_| {}).await
}

/// A gateway for [`TEMPLATE`], its configuration changed by `adjust`.
async fn stack_with(adjust: impl FnOnce(&mut GatewayConfig)) -> Stack {
    let template = Template::from_yaml("ws-test.yaml", TEMPLATE).unwrap();
    let (local, mut config) = common::setup(
        "ws",
        template,
        &[("echo", env!("CARGO_BIN_EXE_ws-echo-lambda").into())],
        DEADLINE,
    );
    config.ws_bind = Some("127.0.0.1:0".parse().unwrap());
    adjust(&mut config);
    let gateway = Gateway::start(config).await.unwrap();
    Stack { gateway, local }
}

impl Stack {
    fn url(&self, query: &str) -> String {
        format!("{}{query}", self.gateway.ws_url().unwrap())
    }

    async fn connect(&self, protocols: Option<&str>) -> (Client, String) {
        let mut request = self.url("?token=t").into_client_request().unwrap();
        if let Some(p) = protocols {
            request
                .headers_mut()
                .insert("sec-websocket-protocol", p.parse().unwrap());
        }
        let before = self.ids();
        let (client, response) = tokio_tungstenite::connect_async(request).await.unwrap();
        let protocol = response
            .headers()
            .get("sec-websocket-protocol")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let ids = self.ids();
        let new: Vec<&String> = ids.iter().filter(|id| !before.contains(id)).collect();
        assert_eq!(new.len(), 1, "{ids:?}");
        let id = new[0].clone();
        (client, id + "\n" + &protocol)
    }

    fn ids(&self) -> Vec<String> {
        self.gateway.websocket().unwrap().connection_ids()
    }

    /// The Management API client a function builds from its environment.
    async fn management(&self) -> aws_sdk_apigatewaymanagement::Client {
        let pool = self.gateway.function("Echo").unwrap();
        let endpoint = pool
            .environment()
            .iter()
            .find(|(k, _)| k == MANAGEMENT_ENDPOINT_ENV)
            .map(|(_, v)| v.clone())
            .unwrap();
        assert_eq!(
            endpoint,
            format!("http://{}/ws", self.gateway.ws_addr().unwrap())
        );
        let config = aws_sdk_apigatewaymanagement::Config::builder()
            .behavior_version(aws_sdk_apigatewaymanagement::config::BehaviorVersion::latest())
            .region(aws_sdk_apigatewaymanagement::config::Region::new(
                "us-east-1",
            ))
            .credentials_provider(aws_sdk_apigatewaymanagement::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .endpoint_url(endpoint)
            .build();
        aws_sdk_apigatewaymanagement::Client::from_conf(config)
    }

    fn function_lines(&self) -> Vec<String> {
        self.local.lines("Echo")
    }

    /// The first line of the function's with `what` in it, once there is one.
    async fn until_logged(&self, what: &str) -> String {
        self.local
            .until_logged("Echo", &format!("a line with {what:?}"), |lines| {
                lines.iter().find(|l| l.contains(what)).cloned()
            })
            .await
    }
}

/// The next text frame (pings and pongs skipped).
async fn next_text(client: &mut Client) -> String {
    let message = tokio::time::timeout(DEADLINE, async {
        loop {
            match client.next().await {
                Some(Ok(Message::Text(t))) => return t.to_string(),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    })
    .await;
    message.expect("a text frame in time")
}

/// The close frame's code (the socket then ends).
async fn close_code(client: &mut Client) -> u16 {
    let code = tokio::time::timeout(DEADLINE, async {
        loop {
            match client.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    })
    .await;
    code.expect("a close frame in time").expect("a close code")
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap()
}

#[tokio::test]
async fn connect_without_a_token_is_refused_with_the_functions_status() {
    let s = stack().await;
    let refused = tokio_tungstenite::connect_async(s.url("")).await;
    let Err(WsError::Http(response)) = refused else {
        panic!("expected an HTTP refusal, got {refused:?}");
    };
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.body().as_deref(),
        Some(&br#"{"message":"no token"}"#[..])
    );
    assert!(s.ids().is_empty(), "nothing registered");
    s.until_logged("$connect").await;
    // The stage prefix is optional; other paths are not the API.
    let bare = format!("ws://{}/?token=t", s.gateway.ws_addr().unwrap());
    let (client, _) = tokio_tungstenite::connect_async(bare).await.unwrap();
    drop(client);
    let elsewhere = format!("ws://{}/other?token=t", s.gateway.ws_addr().unwrap());
    assert!(tokio_tungstenite::connect_async(elsewhere).await.is_err());
}

#[tokio::test]
async fn messages_are_routed_answered_and_posted_to_until_the_client_leaves() {
    let s = stack().await;
    let (mut client, id_and_protocol) = s.connect(Some("chat.v1, other")).await;
    let (id, protocol) = id_and_protocol.split_once('\n').unwrap();
    assert_eq!(protocol, "chat.v1", "the function's choice is echoed");
    assert_eq!(id.len(), 16);

    // Routed by `action`; a two-way route answers on the connection.
    client
        .send(Message::text(r#"{"action":"ping","n":1}"#))
        .await
        .unwrap();
    let answer = json(&next_text(&mut client).await);
    assert_eq!(answer["routeKey"], "ping");
    assert_eq!(answer["body"], r#"{"action":"ping","n":1}"#);
    assert_eq!(answer["connectionId"], id);
    // An unknown action, or no JSON at all: $default.
    client
        .send(Message::text(r#"{"action":"nope"}"#))
        .await
        .unwrap();
    assert_eq!(json(&next_text(&mut client).await)["routeKey"], "$default");
    client.send(Message::text("plain text")).await.unwrap();
    assert_eq!(json(&next_text(&mut client).await)["routeKey"], "$default");
    // A one-way route sends nothing back: the next frame is the answer to the message after.
    client
        .send(Message::text(r#"{"action":"quiet"}"#))
        .await
        .unwrap();
    s.until_logged("quiet").await;
    // A failed invocation: API Gateway's error, and the connection stays.
    client.send(Message::text("fail")).await.unwrap();
    let error = json(&next_text(&mut client).await);
    assert_eq!(error["message"], "Internal server error");
    assert_eq!(error["connectionId"], id);

    // The Management API, as a function calls it.
    let api = s.management().await;
    api.post_to_connection()
        .connection_id(id)
        .data(Blob::new(r#"{"pushed":true}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(next_text(&mut client).await, r#"{"pushed":true}"#);
    assert_eq!(s.gateway.websocket().unwrap().posts_received(id), Some(1));
    let info = api.get_connection().connection_id(id).send().await.unwrap();
    assert!(info.connected_at.is_some() && info.last_active_at.is_some());
    assert_eq!(
        info.identity.and_then(|i| i.source_ip),
        Some("127.0.0.1".to_string())
    );
    let too_big = api
        .post_to_connection()
        .connection_id(id)
        .data(Blob::new(vec![b'x'; 129 * 1024]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        too_big.as_service_error().and_then(|e| e.meta().code()),
        Some("PayloadTooLargeException")
    );

    // The client leaves: $disconnect once, and the id is gone.
    client
        .close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        }))
        .await
        .unwrap();
    let line = s.until_logged("disconnected").await;
    assert_eq!(
        line,
        format!(
            "disconnected {id} 1000 \"Client-side close frame status code '1000' - reason 'bye'\""
        )
    );
    let gone = api
        .post_to_connection()
        .connection_id(id)
        .data(Blob::new("late"))
        .send()
        .await
        .unwrap_err();
    assert!(
        gone.as_service_error()
            .is_some_and(|e| e.is_gone_exception()),
        "{gone:?}"
    );
    let gone = api
        .get_connection()
        .connection_id(id)
        .send()
        .await
        .unwrap_err();
    assert!(
        gone.as_service_error()
            .is_some_and(|e| e.is_gone_exception())
    );
    assert!(s.ids().is_empty());
    let disconnects = s
        .function_lines()
        .iter()
        .filter(|l| l.starts_with("disconnected"))
        .count();
    assert_eq!(disconnects, 1);
}

#[tokio::test]
async fn a_deleted_connection_is_closed_and_a_message_too_big_closes_with_1009() {
    let s = stack().await;
    let (mut deleted, id) = s.connect(None).await;
    let id = id.split_once('\n').unwrap().0.to_string();
    let api = s.management().await;
    api.delete_connection()
        .connection_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(close_code(&mut deleted).await, 1000);
    s.until_logged(&format!("disconnected {id} 1000")).await;
    assert!(
        api.delete_connection()
            .connection_id(&id)
            .send()
            .await
            .unwrap_err()
            .as_service_error()
            .is_some_and(|e| e.is_gone_exception())
    );

    let (mut big, _) = s.connect(None).await;
    big.send(Message::text("x".repeat(129 * 1024)))
        .await
        .unwrap();
    assert_eq!(close_code(&mut big).await, 1009);
    s.until_logged("disconnected").await;
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let s = stack_with(|c| c.websocket.idle_timeout = Duration::from_millis(500)).await;
    let (mut client, _) = s.connect(None).await;
    assert_eq!(close_code(&mut client).await, 1001);
    s.until_logged("Connection idle timeout").await;
}
