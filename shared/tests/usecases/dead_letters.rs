//! The admin's dead-letter use cases ([`shared::app::runs::dead_letters`]) over
//! [`MemoryDeadLetters`]: what a list shows (and that it hides nothing), what a redrive moves,
//! in what order of send and delete, and what a refusal or a failure leaves.

use serde_json::json;
use shared::app::AppError;
use shared::app::runs::dead_letters::{
    self, DeadLetterBody, MAX_LIST, Redrive, RedriveRequest, RedriveResult,
};
use shared::domain::{Principal, Role, Scope};
use shared::ports::{StepMessage, StepQueue};
use shared::testing::runs::MemoryDeadLetters;
use std::time::Duration;

fn admin() -> Principal {
    Principal::user("admin", Role::Admin)
}

fn step(n: u32) -> StepMessage {
    StepMessage {
        workflow_id: format!("wf-{n}"),
        run_id: format!("run-{n}"),
        step_id: format!("step-{n}"),
        attempt: n,
        node_id: Some(format!("node-{n}")),
        parent_node_id: None,
    }
}

fn body(n: u32) -> String {
    serde_json::to_string(&step(n)).unwrap()
}

async fn redrive(
    dl: &MemoryDeadLetters,
    principal: &Principal,
    queue: &str,
    max_messages: Option<u32>,
) -> Result<RedriveResult, AppError> {
    dead_letters::redrive(
        dl,
        Redrive {
            principal,
            queue,
            body: RedriveRequest { max_messages },
            budget: Duration::from_secs(30),
        },
    )
    .await
}

fn bodies(messages: &[shared::ports::DeadLetter]) -> Vec<String> {
    messages.iter().map(|m| m.body.clone()).collect()
}

#[tokio::test]
async fn a_list_shows_step_messages_parsed_and_hides_nothing() {
    let dl = MemoryDeadLetters::new();
    let id = dl.push(StepQueue::Critical, body(1), Some("owner"));
    dl.push(StepQueue::Critical, "{\"not\": \"a step\"}", None);
    dl.push(StepQueue::Low, body(2), Some("owner"));

    let list = dead_letters::list(&dl, &admin(), "critical", MAX_LIST)
        .await
        .unwrap();
    assert_eq!(list.queue, StepQueue::Critical);
    assert_eq!(list.approximate_messages, 2);
    assert_eq!(list.messages.len(), 2);
    assert_eq!(list.messages[0].message_id, id);
    assert_eq!(list.messages[0].body, DeadLetterBody::Step(step(1)));
    assert_eq!(
        list.messages[1].body,
        DeadLetterBody::Raw("{\"not\": \"a step\"}".into())
    );
    assert_eq!(list.messages[0].approximate_receive_count, 6);
    assert!(list.messages[0].sent_at.is_some());
    // As the API shows it: the step message as an object, any other body as a string.
    let shown = serde_json::to_value(&list).unwrap();
    assert_eq!(shown["queue"], "critical");
    assert_eq!(shown["messages"][0]["body"], json!(step(1)));
    assert_eq!(shown["messages"][1]["body"], "{\"not\": \"a step\"}");

    // Released at once: nothing is held, and a second list sees the same.
    assert_eq!(dl.in_flight(StepQueue::Critical), 0);
    let again = dead_letters::list(&dl, &admin(), "critical", 1)
        .await
        .unwrap();
    assert_eq!(again.messages.len(), 1);
    assert_eq!(again.approximate_messages, 2);
    assert_eq!(dl.dead(StepQueue::Critical).len(), 2);
    assert!(dl.redriven(StepQueue::Critical).is_empty());
}

#[tokio::test]
async fn a_redrive_sends_then_deletes_in_batches_of_ten() {
    let dl = MemoryDeadLetters::new();
    let sent: Vec<String> = (0..25).map(body).collect();
    for b in &sent {
        dl.push(StepQueue::High, b.clone(), Some("owner"));
    }
    dl.push(StepQueue::Normal, body(99), None);

    let r = redrive(&dl, &admin(), "high", None).await.unwrap();
    assert_eq!(
        r,
        RedriveResult {
            moved: 25,
            remaining_approx: 0
        }
    );
    let moved = dl.redriven(StepQueue::High);
    assert_eq!(bodies(&moved), sent, "every body, in order");
    assert!(
        moved
            .iter()
            .all(|m| m.message_group_id.as_deref() == Some("owner"))
    );
    assert!(dl.dead(StepQueue::High).is_empty());
    // The other queues are untouched.
    assert_eq!(dl.dead(StepQueue::Normal).len(), 1);
    assert!(dl.redriven(StepQueue::Normal).is_empty());
}

#[tokio::test]
async fn a_redrive_moves_at_most_max_messages() {
    let dl = MemoryDeadLetters::new();
    for n in 0..15 {
        dl.push(StepQueue::Low, body(n), None);
    }
    let r = redrive(&dl, &admin(), "low", Some(12)).await.unwrap();
    assert_eq!(
        r,
        RedriveResult {
            moved: 12,
            remaining_approx: 3
        }
    );
    assert_eq!(dl.redriven(StepQueue::Low).len(), 12);
    assert_eq!(
        bodies(&dl.dead(StepQueue::Low)),
        [body(12), body(13), body(14)]
    );
    assert_eq!(dl.in_flight(StepQueue::Low), 0);

    let empty = MemoryDeadLetters::new();
    assert_eq!(
        redrive(&empty, &admin(), "low", None).await.unwrap(),
        RedriveResult {
            moved: 0,
            remaining_approx: 0
        }
    );
}

#[tokio::test]
async fn a_message_whose_send_fails_stays_in_the_dead_letter_queue() {
    let dl = MemoryDeadLetters::new();
    dl.push(StepQueue::Normal, body(1), None);
    let failing = dl.push(StepQueue::Normal, body(2), None);
    dl.push(StepQueue::Normal, body(3), None);
    dl.fail_send_of(&failing);

    let r = redrive(&dl, &admin(), "normal", None).await.unwrap();
    // The others of its batch moved; the redrive stopped there, and the message is visible.
    assert_eq!(r.moved, 2);
    assert_eq!(r.remaining_approx, 1);
    assert_eq!(bodies(&dl.redriven(StepQueue::Normal)), [body(1), body(3)]);
    assert_eq!(bodies(&dl.dead(StepQueue::Normal)), [body(2)]);
    assert_eq!(dl.in_flight(StepQueue::Normal), 0);
}

#[tokio::test]
async fn a_failed_send_call_deletes_nothing_and_releases_the_batch() {
    let dl = MemoryDeadLetters::new();
    dl.push(StepQueue::Critical, body(1), None);
    dl.push(StepQueue::Critical, body(2), None);
    dl.fail_next("send", "SQS is down");
    let err = redrive(&dl, &admin(), "critical", None).await.unwrap_err();
    assert!(matches!(err, AppError::Unavailable(_)), "{err:?}");
    assert_eq!(bodies(&dl.dead(StepQueue::Critical)), [body(1), body(2)]);
    assert_eq!(dl.in_flight(StepQueue::Critical), 0, "released at once");
    assert!(dl.redriven(StepQueue::Critical).is_empty());

    // Once SQS is back, the same redrive moves them.
    let r = redrive(&dl, &admin(), "critical", None).await.unwrap();
    assert_eq!(r.moved, 2);
}

#[tokio::test]
async fn a_failed_delete_is_an_error_and_leaves_the_copy_in_both_queues() {
    let dl = MemoryDeadLetters::new();
    dl.push(StepQueue::High, body(1), None);
    dl.fail_next("delete", "SQS is down");
    let err = redrive(&dl, &admin(), "high", None).await.unwrap_err();
    assert!(matches!(err, AppError::Unavailable(_)), "{err:?}");
    // Sent, not deleted: the worker takes the duplicate in its stride (the step is claimed
    // or done by then); the dead-letter copy comes back after the visibility timeout.
    assert_eq!(bodies(&dl.redriven(StepQueue::High)), [body(1)]);
    assert_eq!(bodies(&dl.dead(StepQueue::High)), [body(1)]);
}

#[tokio::test]
async fn a_list_whose_release_fails_still_answers() {
    let dl = MemoryDeadLetters::new();
    dl.push(StepQueue::Low, body(1), None);
    dl.fail_next("release", "SQS is down");
    let list = dead_letters::list(&dl, &admin(), "low", 10).await.unwrap();
    assert_eq!(list.messages.len(), 1);
    // Held until its visibility timeout passes (30 s), so not counted meanwhile.
    assert_eq!(dl.in_flight(StepQueue::Low), 1);
    assert_eq!(list.approximate_messages, 0);
}

#[tokio::test]
async fn only_admins_list_or_redrive_and_a_refusal_changes_nothing() {
    let dl = MemoryDeadLetters::new();
    dl.push(StepQueue::Critical, body(1), None);
    let editor = Principal::user("editor", Role::Editor);
    let viewer = Principal::user("viewer", Role::Viewer);
    // An admin's API key without the admin scope.
    let key = Principal {
        scopes: Some(vec![Scope::WorkflowsRead, Scope::WorkflowsWrite]),
        ..admin()
    };
    for p in [&editor, &viewer, &key] {
        for queue in ["critical", "nope"] {
            assert!(matches!(
                dead_letters::list(&dl, p, queue, 10).await,
                Err(AppError::Forbidden(_))
            ));
            // The body is not looked at either.
            assert!(matches!(
                redrive(&dl, p, queue, Some(0)).await,
                Err(AppError::Forbidden(_))
            ));
        }
    }
    assert_eq!(dl.dead(StepQueue::Critical).len(), 1);
    assert_eq!(dl.in_flight(StepQueue::Critical), 0);
    assert!(dl.redriven(StepQueue::Critical).is_empty());
}

#[tokio::test]
async fn unknown_queues_and_bad_limits_are_refused_before_any_call() {
    let dl = MemoryDeadLetters::new();
    dl.push(StepQueue::Critical, body(1), None);
    dl.fail_next("receive", "the first receive");
    for queue in ["", "Critical", "urgent", "critical "] {
        assert!(matches!(
            dead_letters::list(&dl, &admin(), queue, 10).await,
            Err(AppError::NotFound(_))
        ));
        assert!(matches!(
            redrive(&dl, &admin(), queue, None).await,
            Err(AppError::NotFound(_))
        ));
    }
    for max in [0, 1001] {
        let err = redrive(&dl, &admin(), "critical", Some(max))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, AppError::Validation(f) if f[0].field == "max_messages"),
            "{err:?}"
        );
    }
    for limit in [0, 11] {
        assert!(matches!(
            dead_letters::list(&dl, &admin(), "critical", limit).await,
            Err(AppError::Validation(_))
        ));
    }
    // The first receive takes the failure set up front: none was made above.
    assert!(matches!(
        redrive(&dl, &admin(), "critical", Some(1000)).await,
        Err(AppError::Unavailable(m)) if m == "the first receive"
    ));
    assert_eq!(dl.dead(StepQueue::Critical).len(), 1);
    assert!(dl.redriven(StepQueue::Critical).is_empty());
}
