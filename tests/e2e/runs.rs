//! Chain runs end to end: started over HTTP, their steps queued on SQS by api-workflows, run by
//! the worker through the gateway's SQS event source, each step's commit queueing the next,
//! until the run has succeeded and the workflow has a chain of five new documents; and the
//! same when the worker process is killed in the middle of a step.

use e2e::Stack;
use localstack::template::Template;
use serde_json::{Value, json};
use shared::testing::openai_server::{FakeOpenAi, Reply};
use std::time::{Duration, Instant};

const ALICE: &str = "alice";
/// Five steps, each a cold or warm worker invocation and a few DynamoDB writes.
const DEADLINE: Duration = Duration::from_secs(90);

#[tokio::test]
async fn a_continue_run_of_five_steps_writes_a_chain_of_five_documents() {
    let s = Stack::start().await;
    let (w, run_id) = start_chain(&s, json!({})).await;
    let run = until_succeeded(&s, &w, &run_id, DEADLINE).await;
    assert_chain_of_five(&s, &w, &run).await;
    // The steps reached the worker through the gateway's SQS event source, batch by batch.
    let settled: Vec<String> = s
        .log_lines("WorkerFunction")
        .into_iter()
        .filter(|l| l.contains(": batch of "))
        .collect();
    assert!(!settled.is_empty(), "no SQS batch was settled");
    // The table's stream reached analytics-stream through the gateway: Alice's figures and the
    // workflow's show the run, its five steps and documents, counted once.
    let workflow_id = w.rsplit('/').next().expect("a workflow path");
    for path in [
        "/api/v3/analytics/overview?range=1h".to_string(),
        format!("/api/v3/analytics/workflows/{workflow_id}?range=1h"),
    ] {
        let started = Instant::now();
        loop {
            let r = s.get(&path, ALICE).await;
            assert_eq!(r.status, 200, "{path}: {}", r.text);
            let o = if r.body["overview"].is_object() {
                &r.body["overview"]
            } else {
                &r.body
            };
            if o["runs_succeeded"] == 1 && o["documents"] == 5 {
                assert_eq!(o["runs_started"], 1, "{path}: {o}");
                assert_eq!(o["steps_succeeded"], 5, "{path}: {o}");
                assert_eq!(o["completion_rate"], 1.0, "{path}: {o}");
                break;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "{path}: the run was not counted: {}",
                r.text
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // ... and the audit trail: who started the run, from where, and that the system ended it.
    let started = Instant::now();
    let events = loop {
        let r = s.get("/api/v3/audit?limit=200", ALICE).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let events = r.body["items"].as_array().cloned().unwrap_or_default();
        if events.iter().any(|e| e["action"] == "run.succeeded") {
            break events;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "the run's end was not audited: {}",
            r.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let one = |action: &str| {
        let found: Vec<&Value> = events.iter().filter(|e| e["action"] == action).collect();
        assert_eq!(found.len(), 1, "{action}: {events:#?}");
        found[0].clone()
    };
    let run_started = one("run.started");
    assert_eq!(run_started["actor"]["kind"], "user", "{run_started}");
    assert_eq!(run_started["source_ip"], "127.0.0.1", "{run_started}");
    assert!(run_started["request_id"].is_string(), "{run_started}");
    assert_eq!(one("run.succeeded")["actor"]["kind"], "system");
    assert_eq!(one("workflow.created")["target"]["id"], workflow_id);
    let verified = s.get("/api/v3/audit/verify", ALICE).await;
    assert_eq!(verified.body["ok"], true, "{}", verified.text);
}

/// The template as deployed, but for the step queues' visibility timeout (900 s there, 6x the
/// worker's timeout): 10 s here, so that the message of a killed invocation comes back within
/// the test. Everything else (the lease, the retry, the one commit per step) is as deployed.
fn template_with_short_visibility() -> Template {
    let path = Template::load_default()
        .expect("the template loads")
        .source()
        .to_owned();
    let text = std::fs::read_to_string(&path).expect("the template reads");
    assert_eq!(
        text.matches("VisibilityTimeout: 900").count(),
        4,
        "the four step queues"
    );
    Template::from_yaml(
        &path,
        &text.replace("VisibilityTimeout: 900", "VisibilityTimeout: 10"),
    )
    .expect("the variant loads")
}

#[tokio::test]
async fn a_worker_killed_mid_step_still_leaves_exactly_one_document_per_step() {
    // An OpenAI-compatible model whose first answer streams for 2 s; the rest answer at once.
    let model = FakeOpenAi::start().await;
    model.push(Reply::slow(
        "The first part, written slowly enough to be interrupted.",
        4,
        Duration::from_millis(500),
    ));
    let url = model.url();
    let s = Stack::start_with(
        template_with_short_visibility(),
        &[
            ("DefaultModel", "openai:fake"),
            ("GeneratorUrl", url.as_str()),
        ],
    )
    .await;
    // Steps time out after 3 s, so the lost attempt's lease (3 s + 3 s) is over before SQS
    // delivers its message again (10 s).
    let (w, run_id) = start_chain(&s, json!({"timeout_s": 3})).await;
    let started = Instant::now();
    while model.calls() == 0 {
        assert!(
            started.elapsed() < DEADLINE,
            "the first step never reached the model"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let worker = s.gateway.function("WorkerFunction").expect("the worker");
    let instances = worker.instances();
    assert!(
        !instances.is_empty(),
        "a worker process runs the first step"
    );
    for instance in instances {
        instance.kill();
    }
    let run = until_succeeded(&s, &w, &run_id, DEADLINE).await;
    assert_chain_of_five(&s, &w, &run).await;
    // The killed attempt counted (a timeout, then a retry); every other step ran once, and
    // the model was asked once per attempt.
    assert_eq!(run["steps"][0]["attempts"], 2, "{run:#}");
    for step in &run["steps"].as_array().unwrap()[1..] {
        assert_eq!(step["attempts"], 1, "{run:#}");
    }
    assert_eq!(model.calls(), 6, "5 steps and the killed attempt");
    // Exactly the five documents: no second node for the killed step.
    assert_eq!(all_nodes(&s, &w).await.len(), 5);
}

/// An active workflow of Alice's with `settings`, and a `continue` run of 5 steps started in
/// it: the workflow's path and the run's id.
async fn start_chain(s: &Stack, settings: Value) -> (String, String) {
    let w = s.active_workflow(ALICE, "Chain", settings).await;
    let started = s
        .post(
            &format!("{w}/runs"),
            ALICE,
            json!({"plan": {"mode": "continue", "steps": 5}}),
        )
        .await;
    assert_eq!(started.status, 202, "{}", started.text);
    (w, started.body["id"].as_str().unwrap().to_string())
}

async fn until_succeeded(s: &Stack, w: &str, run_id: &str, deadline: Duration) -> Value {
    s.until_succeeded(w, run_id, ALICE, deadline, Duration::from_millis(100))
        .await
}

/// The run's five steps succeeded and wrote a chain of five documents, each the child of the
/// one before, each with its content, metrics and quality scores.
async fn assert_chain_of_five(s: &Stack, w: &str, run: &Value) {
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
    let nodes = all_nodes(s, w).await;
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
