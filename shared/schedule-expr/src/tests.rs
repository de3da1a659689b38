use super::*;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn times(schedule: &Schedule, from: &str, n: usize) -> Vec<String> {
    schedule
        .upcoming(t(from), n)
        .iter()
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .collect()
}

fn utc(expression: &str) -> Schedule {
    Schedule::new(expression, "").unwrap()
}

#[test]
fn cron_fires_at_its_minutes_hours_and_days() {
    assert_eq!(
        times(&utc("cron(0 12 * * ? *)"), "2026-01-01T12:00:00Z", 3),
        [
            "2026-01-02T12:00:00Z",
            "2026-01-03T12:00:00Z",
            "2026-01-04T12:00:00Z"
        ]
    );
    // Steps, AWS's `0/15`, and a lower-case `?`-less field mix.
    assert_eq!(
        times(&utc("cron(0/15 * * * ? *)"), "2026-01-01T10:07:00Z", 3),
        [
            "2026-01-01T10:15:00Z",
            "2026-01-01T10:30:00Z",
            "2026-01-01T10:45:00Z"
        ]
    );
    assert_eq!(
        times(&utc("cron(5/20 8 * * ? *)"), "2026-01-01T08:00:00Z", 3),
        [
            "2026-01-01T08:05:00Z",
            "2026-01-01T08:25:00Z",
            "2026-01-01T08:45:00Z"
        ]
    );
}

#[test]
fn cron_reads_names_ranges_and_lists() {
    // 2026-01-02 is a Friday; the weekend is skipped.
    assert_eq!(
        times(
            &utc("cron(30 8 ? JAN-MAR MON-FRI *)"),
            "2026-01-02T09:00:00Z",
            2
        ),
        ["2026-01-05T08:30:00Z", "2026-01-06T08:30:00Z"]
    );
    // Day of week 1 is Sunday; 2026-01-04 is one.
    assert_eq!(
        times(&utc("cron(0 6 ? * 1,7 *)"), "2026-01-01T00:00:00Z", 3),
        [
            "2026-01-03T06:00:00Z",
            "2026-01-04T06:00:00Z",
            "2026-01-10T06:00:00Z"
        ]
    );
    // A year bound ends the schedule.
    let once_a_year = utc("cron(0 0 1 1 ? 2026-2027)");
    assert_eq!(
        times(&once_a_year, "2025-06-01T00:00:00Z", 5),
        ["2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"]
    );
}

#[test]
fn cron_last_day_of_the_month_with_l() {
    assert_eq!(
        times(&utc("cron(0 0 L * ? *)"), "2026-02-10T00:00:00Z", 3),
        [
            "2026-02-28T00:00:00Z",
            "2026-03-31T00:00:00Z",
            "2026-04-30T00:00:00Z"
        ]
    );
    assert_eq!(
        times(&utc("cron(0 0 L 2 ? *)"), "2027-03-01T00:00:00Z", 1),
        ["2028-02-29T00:00:00Z"]
    );
    // The last Friday of May 2026, and `L` alone in day-of-week: Saturday.
    assert_eq!(
        times(&utc("cron(0 18 ? 5 6L 2026)"), "2026-05-01T00:00:00Z", 1),
        ["2026-05-29T18:00:00Z"]
    );
    assert_eq!(
        times(&utc("cron(0 18 ? * L *)"), "2026-05-01T00:00:00Z", 1),
        ["2026-05-02T18:00:00Z"]
    );
}

#[test]
fn cron_nearest_weekday_with_w() {
    // 2026-11-15 is a Sunday: Monday the 16th; 2026-08-15 a Saturday: Friday the 14th.
    let fifteenth = utc("cron(0 9 15W * ? *)");
    assert_eq!(
        times(&fifteenth, "2026-11-01T00:00:00Z", 1),
        ["2026-11-16T09:00:00Z"]
    );
    assert_eq!(
        times(&fifteenth, "2026-08-01T00:00:00Z", 1),
        ["2026-08-14T09:00:00Z"]
    );
    // The last weekday of February 2026 (the 28th is a Saturday).
    assert_eq!(
        times(&utc("cron(0 9 LW 2 ? *)"), "2026-02-01T00:00:00Z", 1),
        ["2026-02-27T09:00:00Z"]
    );
}

#[test]
fn cron_nth_weekday_with_hash() {
    // First Monday of March 2026 (the 1st is a Sunday), by number and by name.
    for expression in ["cron(0 10 ? 3 2#1 2026)", "cron(0 10 ? MAR MON#1 2026)"] {
        assert_eq!(
            times(&utc(expression), "2026-01-01T00:00:00Z", 1),
            ["2026-03-02T10:00:00Z"],
            "{expression}"
        );
    }
    // Third Friday of each month.
    assert_eq!(
        times(&utc("cron(0 10 ? * 6#3 *)"), "2026-05-01T00:00:00Z", 2),
        ["2026-05-15T10:00:00Z", "2026-06-19T10:00:00Z"]
    );
}

#[test]
fn cron_in_a_time_zone_keeps_wall_clock_time_across_dst() {
    // Berlin moves to summer time on 2026-03-29: 09:00 is 08:00Z before, 07:00Z after.
    let berlin = Schedule::new("cron(0 9 * * ? *)", "Europe/Berlin").unwrap();
    assert_eq!(
        times(&berlin, "2026-03-27T12:00:00Z", 3),
        [
            "2026-03-28T08:00:00Z",
            "2026-03-29T07:00:00Z",
            "2026-03-30T07:00:00Z"
        ]
    );
    // New York leaves summer time on 2026-11-01: 09:00 is 13:00Z before, 14:00Z after.
    let new_york = Schedule::new("cron(0 9 * * ? *)", "America/New_York").unwrap();
    assert_eq!(
        times(&new_york, "2026-10-31T00:00:00Z", 2),
        ["2026-10-31T13:00:00Z", "2026-11-01T14:00:00Z"]
    );
    assert_eq!(berlin.timezone(), Tz::Europe__Berlin);
}

#[test]
fn cron_respects_start_and_end_dates() {
    let daily = utc("cron(0 12 * * ? *)")
        .with_window(
            Some(t("2026-01-05T12:00:00Z")),
            Some(t("2026-01-07T12:00:00Z")),
        )
        .unwrap();
    // The start is inclusive, the end exclusive.
    assert_eq!(
        times(&daily, "2026-01-01T00:00:00Z", 5),
        ["2026-01-05T12:00:00Z", "2026-01-06T12:00:00Z"]
    );
    assert_eq!(daily.next_after(t("2026-01-06T12:00:00Z")), None);
}

#[test]
fn rate_fires_a_period_after_its_anchor() {
    // Anchored at the start date.
    let every_5 = utc("rate(5 minutes)")
        .with_window(Some(t("2026-01-01T10:02:00Z")), None)
        .unwrap();
    assert_eq!(
        times(&every_5, "2026-01-01T00:00:00Z", 3),
        [
            "2026-01-01T10:07:00Z",
            "2026-01-01T10:12:00Z",
            "2026-01-01T10:17:00Z"
        ]
    );
    assert_eq!(
        times(&every_5, "2026-01-01T10:12:00Z", 1),
        ["2026-01-01T10:17:00Z"]
    );
    // Anchored at the creation time when there is no start date.
    let hourly = utc("rate(1 hour)").anchored_at(t("2026-01-01T10:30:00Z"));
    assert_eq!(
        times(&hourly, "2026-01-01T12:00:00Z", 2),
        ["2026-01-01T12:30:00Z", "2026-01-01T13:30:00Z"]
    );
    // Neither: the Unix epoch.
    assert_eq!(
        times(&utc("rate(2 days)"), "2026-01-01T00:00:00Z", 1),
        ["2026-01-03T00:00:00Z"]
    );
    // An end date stops it.
    let ending = utc("rate(1 day)")
        .with_window(
            Some(t("2026-01-01T00:00:00Z")),
            Some(t("2026-01-03T00:00:00Z")),
        )
        .unwrap();
    assert_eq!(
        times(&ending, "2025-12-01T00:00:00Z", 5),
        ["2026-01-02T00:00:00Z"]
    );
    assert_eq!(
        utc("rate(15 minutes)").expression().period(),
        Some(TimeDelta::minutes(15))
    );
}

#[test]
fn at_fires_once_in_its_time_zone() {
    let at = Schedule::new("at(2026-07-01T09:30:00)", "Europe/Berlin").unwrap();
    assert!(at.is_one_time());
    assert_eq!(
        times(&at, "2026-01-01T00:00:00Z", 5),
        ["2026-07-01T07:30:00Z"]
    );
    // In the past (or now): never again.
    assert_eq!(at.next_after(t("2026-07-01T07:30:00Z")), None);
    assert_eq!(at.next_after(t("2027-01-01T00:00:00Z")), None);
    // A wall-clock time that does not exist (Berlin skips 02:00-03:00 on 2026-03-29) fires at
    // the end of the gap.
    let skipped = Schedule::new("at(2026-03-29T02:30:00)", "Europe/Berlin").unwrap();
    assert_eq!(
        times(&skipped, "2026-01-01T00:00:00Z", 1),
        ["2026-03-29T01:00:00Z"]
    );
    // Start and end dates do not apply to one-time schedules.
    let windowed = utc("at(2026-07-01T09:30:00)")
        .with_window(Some(t("2026-08-01T00:00:00Z")), None)
        .unwrap();
    assert_eq!(
        times(&windowed, "2026-01-01T00:00:00Z", 1),
        ["2026-07-01T09:30:00Z"]
    );
}

#[test]
fn between_lists_the_fire_times_of_a_window() {
    let every_10 = utc("rate(10 minutes)").anchored_at(t("2026-01-01T00:00:00Z"));
    let got = every_10.between(t("2026-01-01T00:00:00Z"), t("2026-01-01T00:30:00Z"), 100);
    assert_eq!(got.len(), 3);
    assert_eq!(got[2], t("2026-01-01T00:30:00Z"));
    assert_eq!(
        every_10
            .between(t("2026-01-01T00:00:00Z"), t("2026-01-02T00:00:00Z"), 5)
            .len(),
        5
    );
}

#[test]
fn expressions_display_as_written() {
    for text in [
        "cron(0 12 ? * MON-FRI *)",
        "rate(1 minute)",
        "rate(5 hours)",
        "at(2026-07-01T09:30:00)",
    ] {
        assert_eq!(Expression::parse(text).unwrap().to_string(), text);
    }
}

fn error(expression: &str) -> String {
    Expression::parse(expression).unwrap_err().to_string()
}

#[test]
fn every_error_names_the_problem() {
    let cases = [
        (
            "every 5 minutes",
            "expression must be cron(...), rate(...) or at(...), found 'every 5 minutes'",
        ),
        (
            "cron(0 12 * * ?)",
            "cron: expected 6 fields (minutes hours day-of-month month day-of-week year), found 5",
        ),
        (
            "cron(0 12 * * * *)",
            "cron: day-of-month and day-of-week cannot both be specified; use ? in one",
        ),
        (
            "cron(0 12 1 * MON *)",
            "cron: day-of-month and day-of-week cannot both be specified; use ? in one",
        ),
        (
            "cron(0 12 ? * ? *)",
            "cron: day-of-month and day-of-week cannot both be ?; give a value in one",
        ),
        (
            "cron(? 12 * * ? *)",
            "cron: ? is allowed only in day-of-month or day-of-week, found in minutes",
        ),
        (
            "cron(60 12 * * ? *)",
            "cron: minutes: 60 is out of range 0-59",
        ),
        ("cron(0 24 * * ? *)", "cron: hours: 24 is out of range 0-23"),
        (
            "cron(0 12 32 * ? *)",
            "cron: day-of-month: 32 is out of range 1-31",
        ),
        (
            "cron(0 12 * 13 ? *)",
            "cron: month: 13 is out of range 1-12",
        ),
        (
            "cron(0 12 ? * 8 *)",
            "cron: day-of-week: 8 is out of range 1-7",
        ),
        (
            "cron(0 12 * * ? 1969)",
            "cron: year: 1969 is out of range 1970-2199",
        ),
        (
            "cron(0 12 ? * FUN *)",
            "cron: day-of-week: invalid value 'FUN'",
        ),
        (
            "cron(0 12 * JANUARY ? *)",
            "cron: month: invalid value 'JANUARY'",
        ),
        ("cron(0 x * * ? *)", "cron: hours: invalid value 'x'"),
        (
            "cron(0 12 ? * 2#6 *)",
            "cron: day-of-week: # must be followed by 1 to 5, found '2#6'",
        ),
        (
            "cron(0/0 12 * * ? *)",
            "cron: minutes: step must be a positive whole number, found '0'",
        ),
        (
            "cron(0 12 * * ? 2030-2026)",
            "cron: year: range 2030-2026 runs backwards",
        ),
        (
            "rate(5)",
            "rate: expected rate(value unit), e.g. rate(5 minutes), found 'rate(5)'",
        ),
        (
            "rate(0 minutes)",
            "rate: value must be a positive whole number, found '0'",
        ),
        (
            "rate(-1 minutes)",
            "rate: value must be a positive whole number, found '-1'",
        ),
        (
            "rate(2 weeks)",
            "rate: unit must be minute(s), hour(s) or day(s), found 'weeks'",
        ),
        (
            "rate(1 minutes)",
            "rate: 1 takes the singular unit: rate(1 minute)",
        ),
        (
            "rate(5 hour)",
            "rate: 5 takes the plural unit: rate(5 hours)",
        ),
        (
            "at(2026-02-30T10:00:00)",
            "at: expected at(yyyy-mm-ddThh:mm:ss), found '2026-02-30T10:00:00'",
        ),
        (
            "at(2026-07-01 10:00)",
            "at: expected at(yyyy-mm-ddThh:mm:ss), found '2026-07-01 10:00'",
        ),
    ];
    for (expression, message) in cases {
        assert_eq!(error(expression), message, "{expression}");
    }
    assert_eq!(
        Schedule::new("rate(1 day)", "Mars/Base")
            .unwrap_err()
            .to_string(),
        "unknown timezone 'Mars/Base'"
    );
    assert_eq!(
        utc("rate(1 day)")
            .with_window(
                Some(t("2026-01-02T00:00:00Z")),
                Some(t("2026-01-01T00:00:00Z"))
            )
            .unwrap_err()
            .to_string(),
        "end date 2026-01-01T00:00:00+00:00 must be after start date 2026-01-02T00:00:00+00:00"
    );
    // Empty is UTC.
    assert_eq!(parse_timezone(" ").unwrap(), Tz::UTC);
}

#[test]
fn cron_in_a_skipped_or_repeated_hour_fires_once() {
    // Berlin skips 02:00-03:00 on 2026-03-29: 02:30 fires at the end of the gap (03:00 CEST).
    let half_past_two = Schedule::new("cron(30 2 * * ? *)", "Europe/Berlin").unwrap();
    assert_eq!(
        times(&half_past_two, "2026-03-28T00:00:00Z", 3),
        [
            "2026-03-28T01:30:00Z",
            "2026-03-29T01:00:00Z",
            "2026-03-30T00:30:00Z"
        ]
    );
    // It repeats 02:00-03:00 on 2026-10-25: 02:30 fires once, at its first occurrence (CEST).
    assert_eq!(
        times(&half_past_two, "2026-10-24T00:00:00Z", 3),
        [
            "2026-10-24T00:30:00Z",
            "2026-10-25T00:30:00Z",
            "2026-10-26T01:30:00Z"
        ]
    );
}
