//! `gateway`: serves infra/sam-template.yaml's HTTP API on 127.0.0.1:$PORT (default 3000) and
//! its WebSocket API on 127.0.0.1:$WS_PORT (default 3001), running each function as its real
//! binary. `make dev` starts it after the emulator; see
//! `localstack::gateway` for what it does and `GatewayConfig::from_env` for its settings.

use localstack::gateway::{GatewayConfig, start_dev};
use localstack::template::Template;
use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    if std::env::args().len() > 1 {
        eprintln!(
            "usage: gateway   (settings come from the environment: PORT, WS_PORT, AWS_ENDPOINT_URL, GATEWAY_BIN_DIR, GATEWAY_CONCURRENCY)"
        );
        return ExitCode::from(2);
    }
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gateway: error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let template = Template::load_default().map_err(|e| e.to_string())?;
    let config = GatewayConfig::from_env(template.clone()).map_err(|e| e.to_string())?;
    let bind = config.bind;
    let (mut gateway, provisioned) = start_dev(config).await.map_err(|e| match e.to_string() {
        m if m.contains("Address already in use") => format!(
            "{m}\nIs another `make dev` running? Stop it, or choose other ports with PORT=... and WS_PORT=..."
        ),
        m => m,
    })?;
    let url = format!("http://{}", gateway.addr());
    println!();
    println!("Local gateway for {} serving {url}", template.source());
    for route in template.http_routes() {
        println!(
            "  {:<7} {}{}  -> {}",
            route.method, url, route.path, route.function
        );
    }
    if let (Some(ws_url), Some(api)) = (gateway.ws_url(), template.websocket_api()) {
        for route in &api.routes {
            let way = if route.two_way { " (answers)" } else { "" };
            println!(
                "  WS      {ws_url} {}{way}  -> {}",
                route.route_key, route.function
            );
        }
    }
    for (function, event, spec) in template.dynamodb_events() {
        if spec.enabled {
            println!("  stream {event} ({})  -> {function}", spec.table);
        }
    }
    for (function, event, spec) in template.sqs_events() {
        if spec.enabled {
            println!("  queue  {event} ({})  -> {function}", spec.queue);
        }
    }
    for line in &provisioned {
        println!("  {line}");
    }
    println!();
    println!("Sign up, confirm the email (read it from the emulator) and log in:");
    println!(
        "  curl -s -X POST {url}/api/v3/auth/register -H 'Content-Type: application/json' -d '{{\"email\": \"you@example.com\", \"password\": \"a long passphrase 2026\", \"display_name\": \"You\"}}'"
    );
    println!("  localstack/mail.sh you@example.com     # prints the token");
    println!(
        "  curl -s -X POST {url}/api/v3/auth/verify-email -H 'Content-Type: application/json' -d '{{\"token\": \"<token>\", \"password\": \"a long passphrase 2026\"}}'"
    );
    println!(
        "  TOKEN=$(curl -s -X POST {url}/api/v3/auth/login -H 'Content-Type: application/json' -d '{{\"email\": \"you@example.com\", \"password\": \"a long passphrase 2026\"}}' | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')"
    );
    println!("  curl -s {url}/api/v3/workflows -H \"Authorization: Bearer $TOKEN\"");
    println!(
        "Make that account an admin: localstack/admin.sh promote you@example.com (README \"Auth flows\")."
    );
    println!("  curl -s {url}/health");
    if let Some(ws_url) = gateway.ws_url() {
        println!("Follow a workflow live (WebSocket API at {ws_url}):");
        println!("  websocat \"{ws_url}?token=$TOKEN\"");
        println!("  then send: {{\"action\":\"subscribe_workflow\",\"workflow_id\":\"<id>\"}}");
    }
    println!();
    println!("Listening on {bind}; Ctrl-C stops the gateway and its functions.");
    tokio::select! {
        _ = gateway.wait() => Err("the HTTP server stopped".to_string()),
        _ = shutdown_signal() => {
            eprintln!("gateway: stopping");
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
