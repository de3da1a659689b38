//! `cron(minutes hours day-of-month month day-of-week year)`: EventBridge's six fields, checked
//! field by field with AWS's rules (so an error names the field and the value), then handed to
//! croner, which computes the fire times.
//!
//! | field | values | wildcards |
//! | --- | --- | --- |
//! | minutes | 0-59 | `, - * /` |
//! | hours | 0-23 | `, - * /` |
//! | day-of-month | 1-31 | `, - * ? / L W` (`L`, `LW`, `15W`) |
//! | month | 1-12 or JAN-DEC | `, - * /` |
//! | day-of-week | 1-7 (1 is Sunday) or SUN-SAT | `, - * ? / L #` (`6L`: last Friday; `2#1`: first Monday; `L` alone: Saturday, the last day of the week) |
//! | year | 1970-2199 | `, - * /` |
//!
//! One of day-of-month and day-of-week must be `?` (and not both). croner reads the normalised
//! fields (names as numbers) with a leading `"0 "` for the seconds, `Seconds::Required`,
//! `Year::Required`, `alternative_weekdays(true)` (Quartz's 1 = Sunday) and
//! `sloppy_ranges(true)` (AWS's `0/15`).

use crate::ScheduleError;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    Minutes,
    Hours,
    DayOfMonth,
    Month,
    DayOfWeek,
    Year,
}

impl Field {
    const ALL: [Field; 6] = [
        Field::Minutes,
        Field::Hours,
        Field::DayOfMonth,
        Field::Month,
        Field::DayOfWeek,
        Field::Year,
    ];

    fn name(self) -> &'static str {
        match self {
            Field::Minutes => "minutes",
            Field::Hours => "hours",
            Field::DayOfMonth => "day-of-month",
            Field::Month => "month",
            Field::DayOfWeek => "day-of-week",
            Field::Year => "year",
        }
    }

    fn range(self) -> (u32, u32) {
        match self {
            Field::Minutes => (0, 59),
            Field::Hours => (0, 23),
            Field::DayOfMonth => (1, 31),
            Field::Month => (1, 12),
            Field::DayOfWeek => (1, 7),
            Field::Year => (1970, 2199),
        }
    }

    fn names(self) -> &'static [&'static str] {
        match self {
            Field::Month => &[
                "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
            ],
            Field::DayOfWeek => &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
            _ => &[],
        }
    }

    fn invalid(self, item: &str) -> ScheduleError {
        ScheduleError::CronInvalid {
            field: self.name(),
            item: item.to_owned(),
        }
    }

    /// A number or (month, day-of-week) a name, checked against the field's range.
    fn value(self, text: &str, item: &str) -> Result<u32, ScheduleError> {
        let upper = text.to_ascii_uppercase();
        let n = match self.names().iter().position(|n| *n == upper) {
            Some(i) => u32::try_from(i).map_err(|_| self.invalid(item))? + 1,
            None => {
                if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(self.invalid(item));
                }
                text.parse::<u32>().map_err(|_| self.invalid(item))?
            }
        };
        let (min, max) = self.range();
        if n < min || n > max {
            return Err(ScheduleError::CronOutOfRange {
                field: self.name(),
                value: n,
                min,
                max,
            });
        }
        Ok(n)
    }

    /// One comma-separated item, normalised (names as numbers).
    fn item(self, item: &str) -> Result<String, ScheduleError> {
        let upper = item.to_ascii_uppercase();
        match (self, upper.as_str()) {
            (_, "*") => return Ok("*".into()),
            (Field::DayOfMonth, "L") | (Field::DayOfMonth, "LW") => return Ok(upper),
            // The last day of the week.
            (Field::DayOfWeek, "L") => return Ok("7".into()),
            _ => {}
        }
        if self == Field::DayOfMonth
            && let Some(day) = upper.strip_suffix('W')
        {
            return Ok(format!("{}W", self.value(day, item)?));
        }
        if self == Field::DayOfWeek {
            if let Some((day, nth)) = upper.split_once('#') {
                let day = self.value(day, item)?;
                return match nth.parse::<u32>() {
                    Ok(n @ 1..=5) if nth.bytes().all(|b| b.is_ascii_digit()) => {
                        Ok(format!("{day}#{n}"))
                    }
                    _ => Err(ScheduleError::CronNth(item.to_owned())),
                };
            }
            if let Some(day) = upper.strip_suffix('L') {
                return Ok(format!("{}L", self.value(day, item)?));
            }
        }
        let (base, step) = match upper.split_once('/') {
            Some((base, step)) => {
                let ok = !step.is_empty() && step.bytes().all(|b| b.is_ascii_digit());
                match step.parse::<u32>() {
                    Ok(n) if ok && n > 0 => (base, Some(n)),
                    _ => {
                        return Err(ScheduleError::CronStep {
                            field: self.name(),
                            step: step.to_owned(),
                        });
                    }
                }
            }
            None => (upper.as_str(), None),
        };
        let base = if base == "*" {
            "*".to_owned()
        } else if let Some((from, to)) = base.split_once('-') {
            let (from, to) = (self.value(from, item)?, self.value(to, item)?);
            if from > to {
                return Err(ScheduleError::CronBackwards {
                    field: self.name(),
                    from,
                    to,
                });
            }
            format!("{from}-{to}")
        } else {
            self.value(base, item)?.to_string()
        };
        Ok(match step {
            Some(step) => format!("{base}/{step}"),
            None => base,
        })
    }

    fn field(self, text: &str) -> Result<String, ScheduleError> {
        let items: Result<Vec<String>, ScheduleError> =
            text.split(',').map(|item| self.item(item)).collect();
        Ok(items?.join(","))
    }
}

/// A checked cron expression, as written and as croner reads it.
#[derive(Debug, Clone)]
pub struct CronExpr {
    /// The six fields as written.
    pub fields: String,
    pub(crate) cron: Cron,
}

impl CronExpr {
    /// `fields`: what stands between `cron(` and `)`.
    pub fn parse(fields: &str) -> Result<CronExpr, ScheduleError> {
        let parts: Vec<&str> = fields.split_whitespace().collect();
        if parts.len() != 6 {
            return Err(ScheduleError::CronFieldCount(parts.len()));
        }
        let (dom, dow) = (parts[2], parts[4]);
        match (dom == "?", dow == "?") {
            (true, true) => return Err(ScheduleError::CronNeitherDay),
            (false, false) => return Err(ScheduleError::CronBothDays),
            _ => {}
        }
        let mut normalised = Vec::with_capacity(6);
        for (field, text) in Field::ALL.into_iter().zip(&parts) {
            if *text == "?" && matches!(field, Field::DayOfMonth | Field::DayOfWeek) {
                normalised.push("?".to_owned());
                continue;
            }
            if text.contains('?') {
                return Err(match field {
                    Field::DayOfMonth | Field::DayOfWeek => field.invalid(text),
                    _ => ScheduleError::CronQuestionMark(field.name()),
                });
            }
            normalised.push(field.field(text)?);
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Required)
            .year(Year::Required)
            .alternative_weekdays(true)
            .sloppy_ranges(true)
            .build()
            .parse(&format!("0 {}", normalised.join(" ")))
            .map_err(|e| ScheduleError::Cron(e.to_string()))?;
        Ok(CronExpr {
            fields: parts.join(" "),
            cron,
        })
    }
}
