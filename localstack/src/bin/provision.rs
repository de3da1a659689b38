//! Creates the resources of infra/sam-template.yaml in the AWS emulator; run by
//! localstack/start.sh once moto answers. Prints one line per table.

use std::process::ExitCode;

use localstack::provision::{dynamodb_client, provision_all};
use localstack::template::Template;

const USAGE: &str = "usage: provision

Creates the DynamoDB tables of infra/sam-template.yaml (or of the file named by DWC_TEMPLATE)
in the emulator at AWS_ENDPOINT_URL, each named by its logical id. Tables that exist already
are left as they are.";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    if std::env::args().len() > 1 {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("provision: error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    // This tool fills the emulator; without an endpoint it would create tables in a real account.
    let has_endpoint = ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"]
        .iter()
        .any(|var| std::env::var(var).is_ok_and(|v| !v.trim().is_empty()));
    if !has_endpoint {
        return Err(
            "AWS_ENDPOINT_URL is not set; this tool only provisions the emulator \
                    (localstack/start.sh starts it and sets the variable)"
                .to_owned(),
        );
    }

    let template = Template::load_default().map_err(|e| e.to_string())?;
    let client = dynamodb_client().await;
    let lines = provision_all(&client, &template)
        .await
        .map_err(|e| e.to_string())?;
    if lines.is_empty() {
        println!("{}: no AWS::DynamoDB::Table resources", template.source());
    }
    for line in lines {
        println!("{line}");
    }
    Ok(())
}
