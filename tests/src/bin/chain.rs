//! Chain benchmark (`make bench-chain`): the wall time of a 50-step `continue` run with the
//! `builtin` generator through the local stack, as `make dev` runs it: started over HTTP,
//! each step queued on SQS, delivered by the gateway's SQS event source to the worker binary,
//! each commit queueing the next step.
//!
//! For each of RUNS runs (default 3; each on a new workflow of one stack, so the first also pays
//! the function instances' cold starts) it prints
//! - wall: `POST .../runs` sent to `succeeded` seen by polling `GET .../runs/{id}` every
//!   250 ms (closer polling slows the shared emulator down), and that divided by the steps;
//! - by the run's own clock: the run's `created_at` to its last step's `finished_at`, per step;
//! - step to step: from one step's `started_at` to the next one's (the worker stamps a step's
//!   `started_at` and `finished_at` with the time its message arrived, so this is one whole
//!   cycle: reads, claim, generation, commit, send, the event source's receive and the next
//!   invocation), median and max.
//!
//! STEPS (default 50, the API's maximum) changes the chain's length. Needs the emulator
//! (AWS_ENDPOINT_URL) and debug binaries (`cargo build --workspace --bins`).

use chrono::{DateTime, Utc};
use e2e::Stack;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const USER: &str = "bench";
/// The longest a run may take before the benchmark gives up.
const DEADLINE: Duration = Duration::from_secs(600);

struct Measured {
    wall: Duration,
    /// The run's `created_at` to its last step's `finished_at`.
    by_run_clock_ms: f64,
    /// `started_at` of each step after the first minus that of the step before.
    cycles_ms: Vec<f64>,
}

fn env_number(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("not a time: {v}"))
}

fn ms(d: chrono::TimeDelta) -> f64 {
    d.num_microseconds().unwrap_or_default() as f64 / 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

async fn one_run(s: &Stack, steps: u32, n: u32) -> Measured {
    let w = s
        .active_workflow(USER, &format!("Chain benchmark {n}"), json!({}))
        .await;

    let start = Instant::now();
    let started = s
        .post(
            &format!("{w}/runs"),
            USER,
            json!({"plan": {"mode": "continue", "steps": steps}, "model": "builtin"}),
        )
        .await;
    assert_eq!(started.status, 202, "{}", started.text);
    let run_id = started.body["id"].as_str().expect("a run id").to_string();
    let run = s
        .until_succeeded(&w, &run_id, USER, DEADLINE, Duration::from_millis(250))
        .await;
    let wall = start.elapsed();

    let mut steps_of_run: Vec<&Value> = run["steps"].as_array().expect("steps").iter().collect();
    assert_eq!(steps_of_run.len(), steps as usize, "{run:#}");
    steps_of_run.sort_by_key(|st| time(&st["started_at"]));
    let mut cycles_ms = Vec::new();
    for (i, st) in steps_of_run.iter().enumerate() {
        assert_eq!(st["status"], "succeeded", "{run:#}");
        if i > 0 {
            cycles_ms.push(ms(
                time(&st["started_at"]) - time(&steps_of_run[i - 1]["started_at"])
            ));
        }
    }
    let last = steps_of_run.iter().map(|st| time(&st["finished_at"])).max();
    Measured {
        wall,
        by_run_clock_ms: ms(last.expect("a step") - time(&run["created_at"])),
        cycles_ms,
    }
}

#[tokio::main]
async fn main() {
    let steps = env_number("STEPS", 50);
    let runs = env_number("RUNS", 3).max(1);
    let stack = Stack::start().await;
    println!("{runs} `continue` runs of {steps} steps, model builtin, through the local stack");
    println!();
    println!(
        "| run | wall (s) | wall per step (ms) | run clock per step (ms) | step to step, median (ms) | step to step, max (ms) |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    let mut walls = Vec::new();
    for n in 1..=runs {
        let m = one_run(&stack, steps, n).await;
        let wall_s = m.wall.as_secs_f64();
        walls.push(wall_s);
        let max = m.cycles_ms.iter().copied().fold(0.0, f64::max);
        println!(
            "| {n}{} | {wall_s:.2} | {:.1} | {:.1} | {:.1} | {max:.1} |",
            if n == 1 { " (cold)" } else { "" },
            wall_s * 1000.0 / f64::from(steps),
            m.by_run_clock_ms / f64::from(steps),
            median(m.cycles_ms.clone()),
        );
    }
    let warm = if walls.len() > 1 {
        walls[1..].to_vec()
    } else {
        walls.clone()
    };
    let warm_median = median(warm);
    println!();
    println!(
        "median wall of the warm runs: {warm_median:.2} s, {:.1} ms per step",
        warm_median * 1000.0 / f64::from(steps)
    );
}
