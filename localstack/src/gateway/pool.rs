//! A function's instances: started on demand up to a concurrency limit, reused while idle,
//! replaced after a crash or a timeout (as Lambda replaces a failed execution environment).

use super::GatewayConfig;
use super::instance::{Instance, Invocation, Launch, Outcome};
use super::logs::LogSink;
use crate::Error;
use crate::resolve::Resolver;
use crate::template::FunctionSpec;
use bytes::Bytes;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::Semaphore;

/// How long Lambda lets a new execution environment initialise.
pub const INIT_LIMIT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("the function could not be started: {0}")]
    Spawn(String),
    #[error("the function's process exited during the invocation ({0})")]
    Crashed(String),
    #[error("the function did not answer within {0:?}")]
    Timeout(Duration),
    /// The function answered through `/error`; its error document.
    #[error("the function reported an error: {}", String::from_utf8_lossy(.0))]
    Function(Bytes),
}

pub struct FunctionPool {
    pub name: String,
    pub timeout: Duration,
    binary: PathBuf,
    env: Vec<(String, String)>,
    function_arn: String,
    slots: Semaphore,
    idle: Mutex<Vec<Arc<Instance>>>,
    live: Mutex<Vec<Arc<Instance>>>,
    next_id: AtomicU64,
    logs: LogSink,
}

impl FunctionPool {
    /// Resolves the function's environment as the template gives it, plus the emulator endpoint
    /// and Lambda's reserved variables, and nothing else.
    pub fn new(
        spec: &FunctionSpec,
        resolver: &Resolver,
        config: &GatewayConfig,
    ) -> Result<FunctionPool, Error> {
        let name = resolver
            .name(&spec.logical_id)
            .unwrap_or(&spec.logical_id)
            .to_string();
        let mut env = Vec::new();
        for (key, value) in &spec.environment {
            let context = format!("{}.Properties.Environment.Variables.{key}", spec.logical_id);
            env.push((key.clone(), resolver.string(&context, value)?));
        }
        let reserved = [
            ("AWS_ENDPOINT_URL", config.endpoint_url.clone()),
            ("AWS_REGION", config.region.clone()),
            ("AWS_DEFAULT_REGION", config.region.clone()),
            // The emulator accepts any credentials; real ones must never reach a local process.
            ("AWS_ACCESS_KEY_ID", "test".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
            ("AWS_LAMBDA_FUNCTION_NAME", name.clone()),
            (
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                spec.memory_mb.to_string(),
            ),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_string()),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_string()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "local".to_string()),
            (
                "AWS_EXECUTION_ENV",
                "AWS_Lambda_provided.al2023".to_string(),
            ),
            ("_HANDLER", "bootstrap".to_string()),
            ("TZ", ":UTC".to_string()),
            ("LANG", "en_US.UTF-8".to_string()),
        ];
        for (k, v) in reserved {
            env.retain(|(key, _)| key != k);
            env.push((k.to_string(), v));
        }
        Ok(FunctionPool {
            function_arn: format!(
                "arn:aws:lambda:{}:{}:function:{name}",
                resolver.region, resolver.account
            ),
            name,
            timeout: Duration::from_secs(spec.timeout_s),
            binary: config.bin_dir.join(&spec.binary),
            env,
            slots: Semaphore::new(config.concurrency),
            idle: Mutex::new(Vec::new()),
            live: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            logs: config.logs.clone(),
        })
    }

    /// Sets one more variable of every instance's environment (replacing one of that name):
    /// the gateway's own endpoints, known only once it listens.
    pub fn with_variable(mut self, key: &str, value: String) -> FunctionPool {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value));
        self
    }

    /// The function's ARN, as instances are told it.
    pub fn arn(&self) -> &str {
        &self.function_arn
    }

    /// The environment an instance gets (without its Runtime API address).
    pub fn environment(&self) -> &[(String, String)] {
        &self.env
    }

    /// Runs one invocation on an idle instance, or a new one if none is idle and the limit
    /// allows; otherwise waits for an instance to free up.
    pub async fn invoke(&self, payload: Bytes) -> Result<Bytes, InvokeError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| InvokeError::Spawn("gateway stopping".into()))?;
        let (instance, cold) = match self.take_idle() {
            Some(instance) => (instance, false),
            None => (self.start().await?, true),
        };
        // As in Lambda, a new instance's init has its own limit before the function's Timeout.
        let limit = if cold {
            self.timeout + INIT_LIMIT
        } else {
            self.timeout
        };
        let request_id = ulid::Ulid::new().to_string().to_lowercase();
        let (reply, outcome) = tokio::sync::oneshot::channel();
        let now = SystemTime::now();
        let invocation = Invocation {
            trace_id: format!(
                "Root=1-{:08x}-{:024x};Sampled=0",
                now.duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs(),
                ulid::Ulid::new().0 & ((1u128 << 96) - 1)
            ),
            request_id,
            payload,
            deadline: now + self.timeout,
            reply,
        };
        if let Err(e) = instance.submit(invocation).await {
            self.forget(&instance);
            return Err(InvokeError::Crashed(e));
        }
        let result = tokio::time::timeout(limit, async {
            tokio::select! {
                // An answer that arrived wins over the process exiting right after it.
                biased;
                outcome = outcome => match outcome {
                    Ok(Outcome::Response(body)) => Ok(body),
                    Ok(Outcome::Error(body)) => Err(InvokeError::Function(body)),
                    Err(_) => Err(InvokeError::Crashed(instance.exited().await)),
                },
                status = instance.exited() => Err(InvokeError::Crashed(status)),
            }
        })
        .await
        .unwrap_or(Err(InvokeError::Timeout(self.timeout)));
        match &result {
            Ok(_) | Err(InvokeError::Function(_)) => self.release(instance),
            Err(InvokeError::Timeout(_)) => {
                self.logs.line(
                    &self.name,
                    &format!(
                        "instance {} timed out after {:?}; stopping it",
                        instance.id, self.timeout
                    ),
                );
                instance.kill();
                self.forget(&instance);
            }
            Err(_) => self.forget(&instance),
        }
        result
    }

    async fn start(&self) -> Result<Arc<Instance>, InvokeError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let instance = Instance::spawn(Launch {
            name: &self.name,
            id,
            binary: &self.binary,
            env: &self.env,
            function_arn: &self.function_arn,
            logs: &self.logs,
        })
        .await
        .map_err(InvokeError::Spawn)?;
        if let Ok(mut live) = self.live.lock() {
            live.push(instance.clone());
        }
        Ok(instance)
    }

    fn take_idle(&self) -> Option<Arc<Instance>> {
        let mut idle = self.idle.lock().ok()?;
        while let Some(instance) = idle.pop() {
            if instance.has_exited() {
                self.forget(&instance);
                continue;
            }
            return Some(instance);
        }
        None
    }

    fn release(&self, instance: Arc<Instance>) {
        if instance.has_exited() {
            self.forget(&instance);
        } else if let Ok(mut idle) = self.idle.lock() {
            idle.push(instance);
        }
    }

    fn forget(&self, instance: &Arc<Instance>) {
        if let Ok(mut live) = self.live.lock() {
            live.retain(|i| !Arc::ptr_eq(i, instance));
        }
    }

    /// Instances that are running now.
    pub fn instances(&self) -> Vec<Arc<Instance>> {
        self.live
            .lock()
            .map(|l| l.iter().filter(|i| !i.has_exited()).cloned().collect())
            .unwrap_or_default()
    }

    /// Stops every instance.
    pub fn stop_all(&self) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
        if let Ok(mut live) = self.live.lock() {
            for instance in live.drain(..) {
                instance.kill();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::Template;
    use std::collections::HashMap;

    #[test]
    fn an_instance_gets_the_template_environment_resolved_and_lambdas_reserved_variables_only() {
        let template = Template::load_default().unwrap();
        let mut config = GatewayConfig::from_env(template.clone()).unwrap();
        config.endpoint_url = "http://127.0.0.1:5999".into();
        config.name_suffix = "-x".into();
        config.parameters =
            HashMap::from([("MailFrom".to_string(), "ops@example.org".to_string())]);
        let resolver = Resolver::new(
            &template,
            &config.parameters,
            &config.name_suffix,
            "us-east-1",
        );
        let spec = template
            .functions()
            .into_iter()
            .find(|f| f.logical_id == "ApiAuthFunction")
            .unwrap();
        let pool = FunctionPool::new(&spec, &resolver, &config).unwrap();
        let env: HashMap<&str, &str> = pool
            .environment()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(env["TABLE_NAME"], "WorkflowTable-x");
        // A parameter given, a default, and an alias's `!Ref` (its local name).
        assert_eq!(env["MAIL_FROM"], "ops@example.org");
        assert_eq!(env["JWT_AUDIENCE"], "document-workflow-chain");
        assert_eq!(env["KMS_KEY_ID"], "alias/SigningKeysKeyAlias-x");
        assert_eq!(env["AWS_ENDPOINT_URL"], "http://127.0.0.1:5999");
        assert_eq!(env["AWS_LAMBDA_FUNCTION_NAME"], "ApiAuthFunction-x");
        assert_eq!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "512");
        assert!(
            !env.contains_key("PATH")
                && !env.contains_key("HOME")
                && !env.contains_key("RUST_BACKTRACE")
        );
        assert_eq!(pool.timeout, Duration::from_secs(10));
    }
}
