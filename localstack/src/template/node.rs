//! A YAML value that knows where it sits in the template, so that every complaint about its
//! shape names the resource and the property path (`Properties.KeySchema[1].KeyType`).

use serde_yaml_ng::Value;

use crate::Error;

/// The resource being read, for error messages.
pub(crate) struct Ctx<'a> {
    pub template: &'a str,
    pub resource: &'a str,
}

#[derive(Clone)]
pub(crate) struct Node<'a> {
    ctx: &'a Ctx<'a>,
    path: String,
    value: &'a Value,
}

impl<'a> Node<'a> {
    /// The resource's own mapping (the one holding `Type` and `Properties`).
    pub fn resource(ctx: &'a Ctx<'a>, value: &'a Value) -> Self {
        Node {
            ctx,
            path: String::new(),
            value,
        }
    }

    pub fn error(&self, message: impl Into<String>) -> Error {
        Error::Property {
            template: self.ctx.template.to_owned(),
            resource: self.ctx.resource.to_owned(),
            property: if self.path.is_empty() {
                "(the resource itself)".to_owned()
            } else {
                self.path.clone()
            },
            message: message.into(),
        }
    }

    fn child(&self, segment: &str, value: &'a Value) -> Node<'a> {
        let path = if self.path.is_empty() {
            segment.to_owned()
        } else if segment.starts_with('[') {
            format!("{}{segment}", self.path)
        } else {
            format!("{}.{segment}", self.path)
        };
        Node {
            ctx: self.ctx,
            path,
            value,
        }
    }

    /// The value under `key`, if any. An empty value (`Properties:` with nothing after it) counts
    /// as an empty mapping; anything else that is not a mapping is an error.
    pub fn field(&self, key: &str) -> Result<Option<Node<'a>>, Error> {
        match self.value {
            Value::Null => Ok(None),
            Value::Mapping(mapping) => Ok(mapping.get(key).map(|value| self.child(key, value))),
            other => Err(self.error(format!("expected a mapping, found {}", describe(other)))),
        }
    }

    pub fn required(&self, key: &str) -> Result<Node<'a>, Error> {
        self.field(key)?
            .ok_or_else(|| self.child(key, &Value::Null).error("required, but missing"))
    }

    pub fn str(&self) -> Result<&'a str, Error> {
        match self.value {
            Value::String(s) => Ok(s),
            other => Err(self.error(format!("expected a string, found {}", describe(other)))),
        }
    }

    /// The YAML value itself (tags kept).
    pub fn value(&self) -> &'a Value {
        self.value
    }

    /// A non-negative whole number (CloudFormation also accepts one written as a string).
    pub fn u64(&self) -> Result<u64, Error> {
        let parsed = match self.value {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        };
        parsed.ok_or_else(|| {
            self.error(format!(
                "expected a whole number, found {}",
                describe(self.value)
            ))
        })
    }

    /// A whole number that may be negative (`MaximumRetryAttempts: -1`).
    pub fn i64(&self) -> Result<i64, Error> {
        let parsed = match self.value {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        };
        parsed.ok_or_else(|| {
            self.error(format!(
                "expected a whole number, found {}",
                describe(self.value)
            ))
        })
    }

    pub fn bool(&self) -> Result<bool, Error> {
        match self.value {
            Value::Bool(b) => Ok(*b),
            // CloudFormation accepts the strings too.
            Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
            other => Err(self.error(format!("expected true or false, found {}", describe(other)))),
        }
    }

    pub fn list(&self) -> Result<Vec<Node<'a>>, Error> {
        match self.value {
            Value::Sequence(items) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, item)| self.child(&format!("[{i}]"), item))
                .collect()),
            other => Err(self.error(format!("expected a list, found {}", describe(other)))),
        }
    }

    /// The entries of a mapping with string keys, in document order.
    pub fn entries(&self) -> Result<Vec<(&'a str, Node<'a>)>, Error> {
        match self.value {
            Value::Null => Ok(Vec::new()),
            Value::Mapping(mapping) => {
                mapping
                    .iter()
                    .map(|(key, value)| match key {
                        Value::String(name) => Ok((name.as_str(), self.child(name, value))),
                        other => Err(self
                            .error(format!("expected names as keys, found {}", describe(other)))),
                    })
                    .collect()
            }
            other => Err(self.error(format!("expected a mapping, found {}", describe(other)))),
        }
    }

    /// One of `allowed` (a string), mapped to its value.
    pub fn one_of<T: Copy>(&self, allowed: &[(&str, T)]) -> Result<T, Error> {
        let found = self.str()?;
        allowed
            .iter()
            .find(|(name, _)| *name == found)
            .map(|(_, value)| *value)
            .ok_or_else(|| {
                let names: Vec<&str> = allowed.iter().map(|(name, _)| *name).collect();
                self.error(format!(
                    "expected one of {}, found `{found}`",
                    names.join(", ")
                ))
            })
    }
}

/// A short description of a value for error messages: `the string "x"`, `!Ref Foo`, `a list`.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "nothing (null)".to_owned(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {s:?}"),
        Value::Sequence(_) => "a list".to_owned(),
        Value::Mapping(_) => "a mapping".to_owned(),
        Value::Tagged(tagged) => match &tagged.value {
            Value::String(s) => format!("`{} {s}`", tagged.tag),
            _ => format!("`{} ...`", tagged.tag),
        },
    }
}
