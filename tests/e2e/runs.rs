//! A chain run end to end: started over HTTP, its steps queued on SQS by api-workflows, run by
//! the worker through the gateway's SQS event source (model `builtin`), each step's commit
//! queueing the next, until the run has succeeded and the workflow has a chain of five new
//! documents.

use e2e::Stack;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const ALICE: &str = "alice";
/// Five steps, each a cold or warm worker invocation and a few DynamoDB writes.
const DEADLINE: Duration = Duration::from_secs(90);

#[tokio::test]
async fn a_continue_run_of_five_steps_writes_a_chain_of_five_documents() {
    let s = Stack::start().await;
    let created = s
        .post("/api/v3/workflows", ALICE, json!({"name": "Chain"}))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_string();
    let w = format!("/api/v3/workflows/{id}");
    let active = s
        .post(&format!("{w}/status"), ALICE, json!({"status": "active"}))
        .await;
    assert_eq!(
        (active.status, active.body["status"].as_str()),
        (200, Some("active")),
        "{}",
        active.text
    );

    let started = s
        .post(
            &format!("{w}/runs"),
            ALICE,
            json!({"plan": {"mode": "continue", "steps": 5}}),
        )
        .await;
    assert_eq!(started.status, 202, "{}", started.text);
    let run_id = started.body["id"].as_str().unwrap().to_string();

    // Poll the run until it has succeeded (a failed or cancelled run ends the wait at once).
    let start = Instant::now();
    let run = loop {
        let r = s.get(&format!("{w}/runs/{run_id}"), ALICE).await;
        assert_eq!(r.status, 200, "{}", r.text);
        match r.body["status"].as_str() {
            Some("succeeded") => break r.body,
            Some("failed" | "cancelled") => panic!(
                "the run ended {}: {:#}\nworker log:\n{}",
                r.body["status"],
                r.body,
                s.log_lines("WorkerFunction").join("\n")
            ),
            _ => {}
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the run has not succeeded within {DEADLINE:?}: {:#}\nworker log:\n{}",
            r.body,
            s.log_lines("WorkerFunction").join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let steps = run["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 5, "{run:#}");
    for step in steps {
        assert_eq!(step["status"], "succeeded", "{run:#}");
        assert!(step["attempts"].as_u64().is_some_and(|a| a >= 1), "{run:#}");
    }
    let step_nodes: Vec<&str> = steps
        .iter()
        .map(|st| st["node_id"].as_str().expect("a step's node"))
        .collect();

    // The five nodes the run wrote: a chain, each the child of the one before, each with its
    // document, metrics and quality scores.
    let nodes = all_nodes(&s, &w).await;
    let by_id = |node_id: &str| -> &Value {
        nodes
            .iter()
            .find(|n| n["id"] == node_id)
            .unwrap_or_else(|| panic!("node {node_id} is not listed: {nodes:#?}"))
    };
    let chain: Vec<&Value> = step_nodes.iter().map(|n| by_id(n)).collect();
    let first = chain
        .iter()
        .find(|n| !step_nodes.contains(&n["parent_id"].as_str().unwrap_or_default()))
        .expect("a first node whose parent is not in the run");
    let mut ordered = vec![*first];
    while let Some(next) = chain
        .iter()
        .find(|n| n["parent_id"] == ordered[ordered.len() - 1]["id"])
    {
        ordered.push(next);
        assert!(ordered.len() <= 5, "a cycle: {chain:#?}");
    }
    assert_eq!(ordered.len(), 5, "not one chain: {chain:#?}");
    for node in &ordered {
        assert!(
            node["content"]
                .as_str()
                .is_some_and(|c| !c.trim().is_empty()),
            "no content: {node:#}"
        );
        assert!(
            node["metrics"]["words"].as_u64().is_some_and(|w| w > 0),
            "no metrics: {node:#}"
        );
        assert!(
            node["quality"]["overall"].as_u64().is_some_and(|q| q > 0),
            "no quality: {node:#}"
        );
    }

    // The steps reached the worker through the gateway's SQS event source, batch by batch.
    let settled: Vec<String> = s
        .log_lines("WorkerFunction")
        .into_iter()
        .filter(|l| l.contains(": batch of "))
        .collect();
    assert!(!settled.is_empty(), "no SQS batch was settled");
}

/// Every node of the workflow, page by page.
async fn all_nodes(s: &Stack, w: &str) -> Vec<Value> {
    let mut nodes = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("{w}/nodes?limit=100&cursor={c}"),
            None => format!("{w}/nodes?limit=100"),
        };
        let page = s.get(&path, ALICE).await;
        assert_eq!(page.status, 200, "{}", page.text);
        nodes.extend(page.body["items"].as_array().cloned().unwrap_or_default());
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return nodes,
        }
    }
}
