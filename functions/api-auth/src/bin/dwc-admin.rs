//! Operator commands that must not be reachable over HTTP.
//!
//! `dwc-admin promote <email>`: makes a registered, verified account an admin. This is how the
//! first admin of a deployment is made; later admins can be made through the admin API. Runs
//! with the operator's AWS credentials against the table named by `TABLE_NAME`.

use shared::aws::dynamo::DynamoAccounts;
use shared::clock::SystemClock;
use shared::ports::Clock;
use std::process::ExitCode;

const USAGE: &str = "usage: TABLE_NAME=<table> dwc-admin promote <email>";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [command, email] = args.as_slice() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    if command != "promote" {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    let table = match shared::config::table_name() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let sdk = match shared::aws::sdk_config().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("AWS configuration: {e}");
            return ExitCode::FAILURE;
        }
    };
    let accounts = DynamoAccounts::new(aws_sdk_dynamodb::Client::new(&sdk), table);
    match shared::app::auth::admin::promote(&accounts, email, SystemClock.now()).await {
        Ok(a) => {
            println!("{} ({}) is now an admin", a.email, a.user_id);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("could not promote {email}: {e}");
            ExitCode::FAILURE
        }
    }
}
