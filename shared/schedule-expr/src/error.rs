//! What is wrong with an expression, a time zone or a window, in words a user can act on (the
//! API answers 422 with this text).

/// Why a schedule cannot be parsed. `Display` names the problem precisely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("expression must be cron(...), rate(...) or at(...), found '{0}'")]
    Form(String),
    #[error(
        "cron: expected 6 fields (minutes hours day-of-month month day-of-week year), found {0}"
    )]
    CronFieldCount(usize),
    #[error("cron: day-of-month and day-of-week cannot both be specified; use ? in one")]
    CronBothDays,
    #[error("cron: day-of-month and day-of-week cannot both be ?; give a value in one")]
    CronNeitherDay,
    #[error("cron: ? is allowed only in day-of-month or day-of-week, found in {0}")]
    CronQuestionMark(&'static str),
    #[error("cron: {field}: {value} is out of range {min}-{max}")]
    CronOutOfRange {
        field: &'static str,
        value: u32,
        min: u32,
        max: u32,
    },
    #[error("cron: {field}: invalid value '{item}'")]
    CronInvalid { field: &'static str, item: String },
    #[error("cron: {field}: step must be a positive whole number, found '{step}'")]
    CronStep { field: &'static str, step: String },
    #[error("cron: {field}: range {from}-{to} runs backwards")]
    CronBackwards {
        field: &'static str,
        from: u32,
        to: u32,
    },
    #[error("cron: day-of-week: # must be followed by 1 to 5, found '{0}'")]
    CronNth(String),
    /// What croner (which computes the fire times) rejected after the checks above.
    #[error("cron: {0}")]
    Cron(String),
    #[error("rate: expected rate(value unit), e.g. rate(5 minutes), found '{0}'")]
    RateForm(String),
    #[error("rate: value must be a positive whole number, found '{0}'")]
    RateValue(String),
    #[error("rate: unit must be minute(s), hour(s) or day(s), found '{0}'")]
    RateUnit(String),
    #[error("rate: 1 takes the singular unit: rate(1 {0})")]
    RateSingular(&'static str),
    #[error("rate: {value} takes the plural unit: rate({value} {unit}s)")]
    RatePlural { value: u32, unit: &'static str },
    #[error("at: expected at(yyyy-mm-ddThh:mm:ss), found '{0}'")]
    At(String),
    #[error("unknown timezone '{0}'")]
    Timezone(String),
    #[error("end date {end} must be after start date {start}")]
    Window { start: String, end: String },
}
