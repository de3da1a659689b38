//! [`Triggers`] over EventBridge Scheduler: each user schedule has a Scheduler schedule named
//! `dwc-<schedule id>` whose target is the scheduler function, with an `Input` that names the
//! schedule and carries Scheduler's `<aws.scheduler.scheduled-time>` (the run's idempotency
//! key). AWS fires it; nothing of ours polls.

use crate::aws::errors::{build, classify};
use crate::domain::schedule::Schedule;
use crate::ports::{Fut, Triggers};
use aws_sdk_scheduler::Client;
use aws_sdk_scheduler::types::{FlexibleTimeWindow, FlexibleTimeWindowMode, ScheduleState, Target};

/// Where fires go: the scheduler function, invoked with a role Scheduler may assume.
#[derive(Debug, Clone)]
pub struct TriggerTarget {
    /// `SCHEDULER_TARGET_ARN`: the scheduler function's ARN.
    pub arn: String,
    /// `SCHEDULER_ROLE_ARN`: the role EventBridge Scheduler assumes to invoke it.
    pub role_arn: String,
    /// `SCHEDULE_GROUP`: the schedule group (`default` when unset).
    pub group: String,
}

impl TriggerTarget {
    /// From `SCHEDULER_TARGET_ARN`, `SCHEDULER_ROLE_ARN` and `SCHEDULE_GROUP`.
    pub fn from_env() -> Result<TriggerTarget, String> {
        let get = |k: &str| {
            std::env::var(k)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("environment variable {k} is required"))
        };
        Ok(TriggerTarget {
            arn: get("SCHEDULER_TARGET_ARN")?,
            role_arn: get("SCHEDULER_ROLE_ARN")?,
            group: std::env::var("SCHEDULE_GROUP")
                .ok()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "default".into()),
        })
    }
}

pub struct EventBridgeTriggers {
    client: Client,
    target: TriggerTarget,
}

impl EventBridgeTriggers {
    pub fn new(sdk: &aws_config::SdkConfig, target: TriggerTarget) -> Self {
        EventBridgeTriggers {
            client: Client::new(sdk),
            target,
        }
    }
}

/// The Scheduler schedule's name of user schedule `id`.
pub fn trigger_name(id: &str) -> String {
    format!("dwc-{id}")
}

/// The event a fire hands the scheduler function.
pub fn fire_input(schedule: &Schedule) -> String {
    serde_json::json!({
        "kind": "user_schedule",
        "workflow_id": schedule.workflow_id,
        "schedule_id": schedule.id,
        "scheduled_time": "<aws.scheduler.scheduled-time>",
    })
    .to_string()
}

impl Triggers for EventBridgeTriggers {
    fn put_trigger<'a>(&'a self, schedule: &'a Schedule, create: bool) -> Fut<'a, ()> {
        Box::pin(async move {
            let target = Target::builder()
                .arn(&self.target.arn)
                .role_arn(&self.target.role_arn)
                .input(fire_input(schedule))
                .build()
                .map_err(build)?;
            let window = FlexibleTimeWindow::builder()
                .mode(FlexibleTimeWindowMode::Off)
                .build()
                .map_err(build)?;
            let state = if schedule.enabled {
                ScheduleState::Enabled
            } else {
                ScheduleState::Disabled
            };
            let name = trigger_name(&schedule.id);
            let description = format!("workflow {} schedule {}", schedule.workflow_id, schedule.id);
            // CreateSchedule and UpdateSchedule take the same fields (an update replaces them
            // all) on builders of different types.
            macro_rules! send {
                ($op:ident) => {
                    self.client
                        .$op()
                        .name(name)
                        .group_name(&self.target.group)
                        .description(description)
                        .schedule_expression(&schedule.expression)
                        .schedule_expression_timezone(&schedule.timezone)
                        .flexible_time_window(window)
                        .target(target)
                        .state(state)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(classify)
                };
            }
            if create {
                send!(create_schedule)?;
            } else {
                send!(update_schedule)?;
            }
            Ok(())
        })
    }

    fn delete_trigger<'a>(&'a self, id: &'a str) -> Fut<'a, ()> {
        Box::pin(async move {
            let result = self
                .client
                .delete_schedule()
                .name(trigger_name(id))
                .group_name(&self.target.group)
                .send()
                .await;
            match result {
                Ok(_) => Ok(()),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_resource_not_found_exception()) =>
                {
                    Ok(())
                }
                Err(e) => Err(classify(e)),
            }
        })
    }
}
