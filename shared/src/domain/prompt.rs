//! What a step sends to its model: the system prompt and the prompt, shaped by the workflow's
//! `settings.system_prompt` and `settings.prompt_template`.
//!
//! The prompt of a node is its own `prompt`, or (when blank) a continuation of its parent
//! ([`super::run::default_prompt`]). A `prompt_template` (minijinja) wraps it, with the
//! variables `parent.title`, `parent.content`, `node.title`, `node.prompt` (that prompt) and
//! `workflow.name`; a root node's parent has empty strings. Undefined variables are errors, and
//! templates are checked when settings are written and when a run starts (422 there), by
//! rendering them with sample values, so a typo never fails a step later. Rendering has a fuel
//! budget, so a template's loops cannot hold a worker.

use super::error::Errors;
use super::node::Node;
use super::run::prompt_for;
use super::workflow::Settings;
use minijinja::{Environment, UndefinedBehavior, Value, context};
use serde_json::Value as Json;

/// The longest `settings.prompt_template` and `settings.system_prompt`, in characters.
pub const MAX_TEMPLATE_CHARS: usize = 10_000;
/// The longest prompt a template may produce, in characters (a parent's content is at most
/// 100,000).
pub const MAX_PROMPT_CHARS: usize = 120_000;
/// Instructions a rendering may execute: ample for loops over a few sections, and a bound for
/// a template that would loop over every character of a long document many times.
const FUEL: u64 = 200_000;

/// What a step's model call is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    pub system: Option<String>,
    pub prompt: String,
}

/// The values of a template's variables.
pub struct Variables<'a> {
    pub workflow_name: &'a str,
    pub node: &'a Node,
    pub parent: Option<&'a Node>,
}

/// The prompt of `vars.node` under `settings`. An error names what is wrong with the template
/// (settings checked at write time only fail here on what depends on the content, such as
/// fuel or the prompt's length).
pub fn render(settings: &Settings, vars: &Variables<'_>) -> Result<Prompt, String> {
    let own = prompt_for(vars.node, vars.parent);
    let system = text_setting(settings, "system_prompt")?
        .filter(|s| !s.trim().is_empty())
        .map(str::to_string);
    let prompt = match text_setting(settings, "prompt_template")? {
        Some(template) => {
            let (parent_title, parent_content) = vars
                .parent
                .map_or(("", ""), |p| (p.title.as_str(), p.content.as_str()));
            render_template(
                template,
                context! {
                    parent => context! { title => parent_title, content => parent_content },
                    node => context! { title => vars.node.title.as_str(), prompt => own },
                    workflow => context! { name => vars.workflow_name },
                },
            )?
        }
        None => own,
    };
    if prompt.trim().is_empty() {
        return Err("the prompt template produced an empty prompt".into());
    }
    Ok(Prompt { system, prompt })
}

/// Checks `settings.system_prompt` and `settings.prompt_template` under `field`: strings of
/// at most [`MAX_TEMPLATE_CHARS`], and a template that renders with sample values.
pub fn validate_settings(errors: &mut Errors, field: &str, settings: &Settings) {
    for key in ["system_prompt", "prompt_template"] {
        if let Err(e) = text_setting(settings, key) {
            errors.push(format!("{field}.{key}"), e);
        }
    }
    if let Ok(Some(template)) = text_setting(settings, "prompt_template") {
        let sample = context! {
            parent => context! { title => "Parent", content => "The parent's text." },
            node => context! { title => "Node", prompt => "Write the node." },
            workflow => context! { name => "Workflow" },
        };
        if let Err(e) = render_template(template, sample) {
            errors.push(format!("{field}.prompt_template"), e);
        }
    }
}

/// A string setting of at most [`MAX_TEMPLATE_CHARS`], if present.
fn text_setting<'a>(settings: &'a Settings, key: &str) -> Result<Option<&'a str>, String> {
    match settings.0.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) if s.chars().count() <= MAX_TEMPLATE_CHARS => Ok(Some(s)),
        Some(Json::String(_)) => Err(format!("must be at most {MAX_TEMPLATE_CHARS} characters")),
        Some(_) => Err("must be a string".into()),
    }
}

fn render_template(template: &str, ctx: Value) -> Result<String, String> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(50);
    let out = env
        .render_str(template, ctx)
        .map_err(|e| format!("the template does not render: {}", describe(&e)))?;
    if out.chars().count() > MAX_PROMPT_CHARS {
        return Err(format!(
            "the template produced a prompt over {MAX_PROMPT_CHARS} characters"
        ));
    }
    Ok(out)
}

/// The error's kind and detail with its line, without minijinja's debug dump.
fn describe(e: &minijinja::Error) -> String {
    let mut s = e.kind().to_string();
    if let Some(detail) = e.detail() {
        s.push_str(": ");
        s.push_str(detail);
    }
    if let Some(line) = e.line() {
        s.push_str(&format!(" (line {line})"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::NodeStatus;
    use crate::domain::node::{NodeFields, Priority};
    use crate::domain::run::default_prompt;
    use serde_json::json;

    fn node(title: &str, content: &str, prompt: &str) -> Node {
        let fields = NodeFields {
            title: title.into(),
            content: content.into(),
            prompt: prompt.into(),
            priority: Priority::default(),
            status: NodeStatus::Pending,
            tags: vec![],
            metadata: Default::default(),
        };
        Node::new("n".into(), "w".into(), None, fields, chrono::Utc::now())
    }

    fn settings(v: serde_json::Value) -> Settings {
        Settings(v.as_object().unwrap().clone())
    }

    fn errors_of(s: &Settings) -> Vec<(String, String)> {
        let mut e = Errors::default();
        validate_settings(&mut e, "settings", s);
        e.into_result(())
            .err()
            .map(|e| match e {
                crate::domain::DomainError::Validation(v) => {
                    v.into_iter().map(|f| (f.field, f.message)).collect()
                }
                other => panic!("{other:?}"),
            })
            .unwrap_or_default()
    }

    #[test]
    fn the_template_wraps_the_prompt_with_every_variable() {
        let parent = node("Chapter 1", "It was dark.", "");
        let child = node("Chapter 2", "", "Write chapter two.");
        let s = settings(json!({
            "system_prompt": "You write novels.",
            "prompt_template": "{{ workflow.name }} / {{ parent.title }}: {{ parent.content }} -> {{ node.title }}: {{ node.prompt }}"
        }));
        let p = render(
            &s,
            &Variables {
                workflow_name: "Book",
                node: &child,
                parent: Some(&parent),
            },
        )
        .unwrap();
        assert_eq!(p.system.as_deref(), Some("You write novels."));
        assert_eq!(
            p.prompt,
            "Book / Chapter 1: It was dark. -> Chapter 2: Write chapter two."
        );
    }

    #[test]
    fn without_a_template_the_prompt_is_the_nodes_or_the_continuation() {
        let parent = node("Intro", "Once upon a time.", "");
        let child = node("Next", "", "");
        let vars = Variables {
            workflow_name: "W",
            node: &child,
            parent: Some(&parent),
        };
        let p = render(&Settings::default(), &vars).unwrap();
        assert_eq!(p.system, None);
        assert_eq!(p.prompt, default_prompt(Some(&parent), "Next"));
        // A root's parent variables are empty strings, not errors.
        let s = settings(json!({"prompt_template": "[{{ parent.title }}]{{ node.prompt }}"}));
        let root = node("Root", "", "Begin.");
        let p = render(
            &s,
            &Variables {
                workflow_name: "W",
                node: &root,
                parent: None,
            },
        )
        .unwrap();
        assert_eq!(p.prompt, "[]Begin.");
    }

    #[test]
    fn bad_templates_are_refused_when_written_naming_the_problem() {
        let e = errors_of(&settings(json!({"prompt_template": "{{ node.titel }}"})));
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].0, "settings.prompt_template");
        assert!(e[0].1.contains("undefined"), "{}", e[0].1);
        let e = errors_of(&settings(json!({"prompt_template": "{% for x in %}"})));
        assert!(e[0].1.contains("syntax"), "{}", e[0].1);
        let e = errors_of(&settings(json!({"system_prompt": 5})));
        assert_eq!(
            e,
            vec![("settings.system_prompt".into(), "must be a string".into())]
        );
        let e = errors_of(&settings(
            json!({"prompt_template": "x".repeat(MAX_TEMPLATE_CHARS + 1)}),
        ));
        assert_eq!(e[0].0, "settings.prompt_template");
        assert!(errors_of(&settings(json!({"prompt_template": "{{ node.prompt }}"}))).is_empty());
    }

    #[test]
    fn a_runaway_template_runs_out_of_fuel() {
        let e = errors_of(&settings(json!({
            "prompt_template": "{% for a in range(1000) %}{% for b in range(1000) %}x{% endfor %}{% endfor %}"
        })));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].1.contains("fuel"), "{}", e[0].1);
    }

    #[test]
    fn an_empty_prompt_is_an_error() {
        let s = settings(json!({"prompt_template": "{{ '' }}"}));
        let n = node("T", "", "");
        let r = render(
            &s,
            &Variables {
                workflow_name: "W",
                node: &n,
                parent: None,
            },
        );
        assert!(r.is_err());
    }
}
