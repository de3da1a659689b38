use super::*;
use crate::domain::node::{Node, NodeFields, NodeStatus, Priority};
use crate::domain::run::{ErrorKind, RetryPolicy, RunOptions, StepError, Usage};
use chrono::TimeZone;

fn t(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, h, m, 0)
        .single()
        .expect("valid")
}

fn run(model: Option<&str>) -> (Run, Vec<Step>) {
    let options = RunOptions {
        plan: crate::domain::run::PlanRequest::Pending {},
        model: model.map(|m| crate::domain::run::ModelRef::parse(m).expect("model")),
        priority: 3,
        max_attempts: 3,
        timeout_s: 60,
        approval: false,
    };
    let run = Run::new(
        "r".into(),
        "w".into(),
        "alice".into(),
        &options,
        2,
        t(10, 0),
    );
    let plan: Vec<_> = ["a", "b"]
        .iter()
        .map(|n| crate::domain::run::StepPlan {
            node_id: n.to_string(),
            parent_node_id: None,
            depends_on: None,
            title: n.to_string(),
            creates_node: false,
        })
        .collect();
    let steps = crate::domain::run::steps_from_plan("r", &plan, &["s1".into(), "s2".into()], false);
    (run, steps)
}

fn counters(t: &Tally, g: &Group) -> BTreeMap<String, u64> {
    t.groups.get(g).cloned().unwrap_or_default()
}

fn change(old: Option<&(Run, Vec<Step>)>, new: &(Run, Vec<Step>)) -> Option<Tally> {
    tally(&Change::Run {
        old: old.cloned(),
        new: Some(new.clone()),
    })
}

#[test]
fn a_run_counts_its_start_steps_retries_tokens_latency_and_end_once_each() {
    let created = run(Some("openai:gpt-4o-mini"));
    let first = change(None, &created).expect("a new run counts");
    assert_eq!(first.owner_id, "alice");
    assert_eq!(first.workflow_id, "w");
    assert_eq!(counters(&first, &Group::All)[RUNS_STARTED], 1);
    let model = Group::Model("openai:gpt-4o-mini".into());

    // s1 starts, fails with a timeout (retry), starts again and succeeds.
    let policy = RetryPolicy::default();
    let mut running = created.clone();
    running
        .0
        .transition(RunStatus::Running, t(10, 1))
        .expect("start");
    running.1[0]
        .start(t(10, 1), std::time::Duration::from_secs(60))
        .expect("claim");
    let started = change(Some(&created), &running);
    assert!(started.is_none(), "a claim counts nothing: {started:?}");

    let mut retry = running.clone();
    retry.1[0]
        .fail(
            t(10, 2),
            StepError::new(ErrorKind::Timeout, "slow"),
            &policy,
            0.5,
        )
        .expect("fail");
    let failed = change(Some(&running), &retry).expect("a failed attempt counts");
    assert_eq!(counters(&failed, &model)[ERRORS], 1);
    assert_eq!(counters(&failed, &model)["f_timeout"], 1);
    assert!(!counters(&failed, &Group::All).contains_key(STEPS_FAILED));

    let mut again = retry.clone();
    again.1[0]
        .start(t(10, 3), std::time::Duration::from_secs(60))
        .expect("claim");
    let second = change(Some(&retry), &again).expect("a second attempt is a retry");
    assert_eq!(counters(&second, &Group::All)[RETRIES], 1);

    let mut done = again.clone();
    let usage = Usage {
        model: Some("gpt-4o-mini-2024".into()),
        input_tokens: 120,
        output_tokens: 480,
        latency_ms: 1_500,
    };
    done.1[0].succeed(t(10, 4), usage).expect("succeed");
    done.1[0].words = 250;
    done.1[0].quality = Some(71);
    let ok = change(Some(&again), &done).expect("success counts");
    let all = counters(&ok, &Group::All);
    assert_eq!(
        (all[STEPS_SUCCEEDED], all[TOKENS_IN], all[TOKENS_OUT]),
        (1, 120, 480)
    );
    assert_eq!((all[DOCUMENTS], all[WORDS]), (1, 250));
    let q = crate::domain::histogram::bucket_of(71);
    assert_eq!(all[&format!("q_{q}")], 1);
    let m = counters(&ok, &model);
    assert_eq!((m[GENERATIONS], m[TOKENS_IN], m[TOKENS_OUT]), (1, 120, 480));
    let bucket = crate::domain::histogram::bucket_of(1_500);
    assert_eq!(m[&format!("l_{bucket}")], 1);

    // The same image again (a retried stream batch is the store's business): no status
    // change, no count.
    assert!(change(Some(&done), &done).is_none());

    let mut finished = done.clone();
    finished
        .0
        .transition(RunStatus::Failed, t(10, 5))
        .expect("fail run");
    let end = change(Some(&done), &finished).expect("the end counts");
    assert_eq!(counters(&end, &Group::All)[RUNS_FAILED], 1);
    assert_eq!(end.at, t(10, 5));
}

#[test]
fn a_run_without_a_model_counts_under_default_and_node_changes_count_nothing() {
    let (r, _) = run(None);
    let mut lost = run(None);
    lost.1[1]
        .start(t(10, 0), std::time::Duration::from_secs(1))
        .expect("claim");
    let mut expired = lost.clone();
    expired.1[1]
        .expire_lease(t(10, 1), &RetryPolicy::default(), 0.5)
        .expect("expire");
    let counted = change(Some(&lost), &expired).expect("counted");
    assert_eq!(
        counters(&counted, &Group::Model(DEFAULT_MODEL.into()))[ERRORS],
        1
    );
    assert_eq!(r.model, None);

    // Node changes count nothing: the step that wrote the document carries its figures.
    let fields = NodeFields {
        title: "n".into(),
        content: String::new(),
        prompt: String::new(),
        priority: Priority::default(),
        status: NodeStatus::Pending,
        tags: vec![],
        metadata: Default::default(),
    };
    let old = Node::new("n".into(), "w".into(), None, fields, t(10, 0));
    let mut new = old.clone();
    new.content = "One two three four. Five six.".into();
    new.status = NodeStatus::Completed;
    assert!(
        tally(&Change::Node {
            old: Some(old),
            new: Some(new)
        })
        .is_none()
    );
}

#[test]
fn windows_cover_whole_buckets_and_errors_name_the_problem() {
    let now = t(10, 30);
    let w = Window::parse(Some("24h"), None, None, now).expect("24h");
    assert_eq!(
        (w.from, w.to, w.granularity),
        (t(10, 0) - Duration::hours(24), t(11, 0), Granularity::Hour)
    );
    let w = Window::parse(None, None, None, now).expect("default");
    assert_eq!(w.granularity, Granularity::Hour);
    let w = Window::parse(Some("7d"), None, None, now).expect("7d");
    assert_eq!(w.granularity, Granularity::Hour);
    let w = Window::parse(Some("30d"), None, None, now).expect("30d");
    assert_eq!(w.granularity, Granularity::Day);
    assert_eq!(
        w.to,
        Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0)
            .single()
            .expect("t")
    );
    for r in ["1h", "90d", "1y"] {
        Window::parse(Some(r), None, None, now).expect(r);
    }
    let custom = Window::parse(None, Some(t(1, 0)), Some(t(3, 0)), now).expect("from/to");
    assert_eq!((custom.from, custom.to), (t(1, 0), t(3, 0)));
    let err = |r, f, to| Window::parse(r, f, to, now).expect_err("refused");
    assert!(err(Some("2w"), None, None).contains("'2w'"));
    assert!(err(Some("1h"), Some(t(1, 0)), None).contains("not both"));
    assert!(err(None, Some(t(3, 0)), Some(t(1, 0))).contains("before"));
    assert!(err(None, None, Some(t(1, 0))).contains("needs from"));
    assert!(err(None, Some(t(1, 0) - Duration::days(800)), None).contains("two years"));
}

fn bucket(start: DateTime<Utc>, group: Group, counters: &[(&str, u64)]) -> Bucket {
    Bucket {
        start,
        group,
        counters: counters.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
    }
}

fn model_bucket(start: DateTime<Utc>, ok: u64, errors: u64, latency_ms: u64) -> Bucket {
    let l = format!("l_{}", crate::domain::histogram::bucket_of(latency_ms));
    bucket(
        start,
        Group::Model("m".into()),
        &[
            (GENERATIONS, ok),
            (ERRORS, errors),
            ("f_upstream", errors),
            (&l, ok),
        ],
    )
}

#[test]
fn reports_add_buckets_inside_the_window_and_rules_name_their_numbers() {
    let w = Window::parse(None, Some(t(8, 0)), Some(t(10, 0)), t(10, 0)).expect("w");
    let buckets = [
        bucket(
            t(8, 0),
            Group::All,
            &[
                (RUNS_STARTED, 10),
                (RUNS_SUCCEEDED, 8),
                (RUNS_FAILED, 1),
                ("q_70", 2),
            ],
        ),
        bucket(
            t(9, 0),
            Group::All,
            &[
                (RUNS_STARTED, 10),
                (RUNS_SUCCEEDED, 9),
                (RUNS_FAILED, 2),
                ("q_40", 1),
            ],
        ),
        bucket(t(10, 0), Group::All, &[(RUNS_STARTED, 99)]),
        model_bucket(t(8, 0), 10, 3, 2_000),
        model_bucket(t(9, 0), 10, 2, 4_000),
    ];
    let r = Report::of(&w, &buckets);
    let o = r.overview();
    assert_eq!(
        (o.runs_started, o.runs_succeeded, o.runs_failed),
        (20, 17, 3)
    );
    assert_eq!(o.completion_rate, Some(0.85));
    assert_eq!(r.series.len(), 2);
    let g = &r.generation()[0];
    assert_eq!((g.generations, g.errors, g.error_rate), (20, 5, Some(0.2)));
    assert_eq!(g.errors_by_class["upstream"], 5);
    let p50 = g.latency_ms.p50.expect("p50");
    assert!((p50 - 2_000.0).abs() / 2_000.0 <= 0.02, "{p50}");
    let q = r.quality();
    assert_eq!(q.documents, 3);
    assert_eq!(q.distribution[7].count, 2);
    assert_eq!(q.distribution[4].count, 1);

    // Previous window: same model, 1 error in 20 attempts and a quarter of the latency.
    let prev_w = w.previous();
    let prev = Report::of(
        &prev_w,
        &[
            model_bucket(t(6, 0), 19, 1, 500),
            bucket(t(6, 0), Group::All, &[("q_90", 10)]),
        ],
    );
    let found = insights(&r, &prev);
    let rules: Vec<&str> = found.iter().map(|i| i.rule.as_str()).collect();
    assert!(rules.contains(&"completion_rate_below_target"), "{rules:?}");
    assert!(rules.contains(&"model_failure_rate_rising"), "{rules:?}");
    assert!(rules.contains(&"model_latency_rising"), "{rules:?}");
    let rising = found
        .iter()
        .find(|i| i.rule == "model_failure_rate_rising")
        .expect("rule");
    assert_eq!(rising.figures["error_rate"], 0.2);
    assert_eq!(rising.figures["previous_error_rate"], 0.05);
    assert!(
        rising.message.contains("5.0% to 20.0%"),
        "{}",
        rising.message
    );
    // Too few samples say nothing.
    assert!(insights(&Report::default(), &Report::default()).is_empty());

    let row = export_row(&buckets[3], Granularity::Hour);
    assert_eq!(row.len(), EXPORT_COLUMNS.len());
    assert_eq!(row[2], "m");
    assert_eq!(row[14], 10);
}
