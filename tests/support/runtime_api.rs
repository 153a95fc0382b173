//! The Lambda Runtime API on loopback, as the Lambda service serves it to a bootstrap: `GET
//! /2018-06-01/runtime/invocation/next` hands out the next event (with its request id and
//! deadline), `POST .../invocation/<id>/response` and `.../error` take the answer. A test starts
//! a real bootstrap binary with `AWS_LAMBDA_RUNTIME_API` pointing here and invokes it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, mpsc, oneshot};

/// What a bootstrap answered to one invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// `/response`: the handler's result.
    Response(Value),
    /// `/error`: the error type (the body's `errorType`, else `Lambda-Runtime-Function-Error-Type`)
    /// and the body.
    Error { error_type: String, body: Value },
}

type Pending = (Value, Duration, oneshot::Sender<Answer>);

/// A Runtime API endpoint; invocations queue until a bootstrap asks for them.
pub struct RuntimeApi {
    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub address: String,
    queue: mpsc::UnboundedSender<Pending>,
    /// Init errors a bootstrap reported (`/runtime/init/error`).
    pub init_errors: Arc<Mutex<Vec<String>>>,
}

struct State {
    queue: Mutex<mpsc::UnboundedReceiver<Pending>>,
    in_flight: Mutex<HashMap<String, oneshot::Sender<Answer>>>,
    init_errors: Arc<Mutex<Vec<String>>>,
    next_id: std::sync::atomic::AtomicU64,
}

impl RuntimeApi {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let (queue, receiver) = mpsc::unbounded_channel();
        let init_errors = Arc::new(Mutex::new(Vec::new()));
        let state = Arc::new(State {
            queue: Mutex::new(receiver),
            in_flight: Mutex::new(HashMap::new()),
            init_errors: init_errors.clone(),
            next_id: Default::default(),
        });
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, state.clone()));
            }
        });
        Self {
            address,
            queue,
            init_errors,
        }
    }

    /// Invokes the function with `event`, `deadline` from the moment it is handed out, and
    /// waits for its answer.
    pub async fn invoke(&self, event: Value, deadline: Duration) -> Answer {
        let (tx, rx) = oneshot::channel();
        self.queue.send((event, deadline, tx)).unwrap();
        tokio::time::timeout(Duration::from_secs(120), rx)
            .await
            .expect("the bootstrap answered within 2 minutes")
            .expect("an answer")
    }

    /// Invokes the migrate function with `event`, then with each answer, as the state machine
    /// does, until a state other than `Migrating` (at most six invocations): the states
    /// answered, and the last answer.
    ///
    /// # Panics
    /// When an invocation fails (the handler answers errors only for requests to retry).
    pub async fn drive(&self, mut event: Value) -> (Vec<String>, Value) {
        let mut states = Vec::new();
        for _ in 0..6 {
            event = match self.invoke(event, Duration::from_secs(60)).await {
                Answer::Response(next) => next,
                Answer::Error { error_type, body } => panic!("{error_type}: {body}"),
            };
            let state = event["state"].as_str().expect("a state").to_string();
            states.push(state.clone());
            if state != "Migrating" {
                break;
            }
        }
        (states, event)
    }

    /// Starts one sandbox of function `name`: the bootstrap binary taking its invocations from
    /// this endpoint, against the S3 server the tests use, with `extra` environment on top.
    pub fn spawn(&self, name: &str, extra: &[(&str, String)]) -> std::process::Child {
        self.spawn_with(name, extra, std::process::Stdio::null())
    }

    /// As [`RuntimeApi::spawn`], with the bootstrap's standard output (its log and metric lines,
    /// as Lambda's log agent reads them) piped to the test.
    pub fn spawn_logged(&self, name: &str, extra: &[(&str, String)]) -> std::process::Child {
        self.spawn_with(name, extra, std::process::Stdio::piped())
    }

    fn spawn_with(&self, name: &str, extra: &[(&str, String)], stdout: std::process::Stdio) -> std::process::Child {
        let mut command = std::process::Command::new(super::bootstrap(name));
        command
            .env("PQM_S3_ENDPOINT", super::s3_endpoint())
            .env("PQM_LOG", "warn")
            .stdout(stdout)
            .stderr(std::process::Stdio::inherit());
        for (k, v) in self.environment(name) {
            command.env(k, v);
        }
        for (k, v) in extra {
            command.env(k, v);
        }
        command.spawn().unwrap()
    }

    /// The environment Lambda gives a bootstrap, pointing at this endpoint.
    pub fn environment(&self, function: &str) -> Vec<(String, String)> {
        [
            ("AWS_LAMBDA_RUNTIME_API", self.address.as_str()),
            ("AWS_LAMBDA_FUNCTION_NAME", function),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1769"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "test"),
            ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/test"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
}

/// One HTTP/1.1 request: method, path, lower-cased headers, body.
async fn read_request(
    socket: &mut TcpStream,
    buffer: &mut Vec<u8>,
) -> Option<(String, String, HashMap<String, String>, Vec<u8>)> {
    let head_end = loop {
        if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 8192];
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    while buffer.len() < head_end + length {
        let mut chunk = [0u8; 8192];
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let body = buffer[head_end..head_end + length].to_vec();
    buffer.drain(..head_end + length);
    Some((method, path, headers, body))
}

async fn respond(socket: &mut TcpStream, status: &str, headers: &[(String, String)], body: &[u8]) -> bool {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    socket.write_all(head.as_bytes()).await.is_ok() && socket.write_all(body).await.is_ok()
}

async fn serve(mut socket: TcpStream, state: Arc<State>) {
    let mut buffer = Vec::new();
    while let Some((method, path, headers, body)) = read_request(&mut socket, &mut buffer).await {
        let accepted = br#"{"status":"OK"}"#;
        let ok = match (method.as_str(), path.as_str()) {
            ("GET", "/2018-06-01/runtime/invocation/next") => {
                let Some((event, deadline, answer)) = state.queue.lock().await.recv().await else {
                    return;
                };
                let id = format!(
                    "req-{}",
                    state.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                );
                state.in_flight.lock().await.insert(id.clone(), answer);
                let deadline_ms = (SystemTime::now() + deadline)
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_millis();
                let headers = vec![
                    ("Lambda-Runtime-Aws-Request-Id".to_string(), id),
                    ("Lambda-Runtime-Deadline-Ms".to_string(), deadline_ms.to_string()),
                    (
                        "Lambda-Runtime-Invoked-Function-Arn".to_string(),
                        "arn:aws:lambda:us-east-1:123456789012:function:pqmigrate".to_string(),
                    ),
                    (
                        "Lambda-Runtime-Trace-Id".to_string(),
                        "Root=1-00000000-000000000000000000000000".to_string(),
                    ),
                ];
                respond(&mut socket, "200 OK", &headers, &serde_json::to_vec(&event).unwrap()).await
            }
            ("POST", "/2018-06-01/runtime/init/error") => {
                state
                    .init_errors
                    .lock()
                    .await
                    .push(String::from_utf8_lossy(&body).into_owned());
                respond(&mut socket, "202 Accepted", &[], accepted).await
            }
            ("POST", path) if path.starts_with("/2018-06-01/runtime/invocation/") => {
                let rest = path.trim_start_matches("/2018-06-01/runtime/invocation/");
                let (id, kind) = rest.split_once('/').unwrap_or((rest, ""));
                let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let answer = match kind {
                    "response" => Answer::Response(value),
                    // The body's errorType is the error a caller (Step Functions) sees; the
                    // header only says whether it was handled.
                    _ => Answer::Error {
                        error_type: value["errorType"]
                            .as_str()
                            .map(str::to_string)
                            .or_else(|| headers.get("lambda-runtime-function-error-type").cloned())
                            .unwrap_or_default(),
                        body: value,
                    },
                };
                if let Some(waiting) = state.in_flight.lock().await.remove(id) {
                    let _ = waiting.send(answer);
                }
                respond(&mut socket, "202 Accepted", &[], accepted).await
            }
            _ => respond(&mut socket, "404 Not Found", &[], b"{}").await,
        };
        if !ok {
            return;
        }
    }
}

/// What the [`gateway`] saw.
#[derive(Debug, Default)]
pub struct GatewayCounts {
    /// Invocations, by function.
    pub invocations: std::sync::Mutex<HashMap<String, u64>>,
    /// Invocations answered with an error, by error type.
    pub errors: std::sync::Mutex<HashMap<String, u64>>,
}

/// The loopback endpoint `scripts/run_state_machine.mjs` sends a state machine's Tasks to, as
/// Step Functions would call the Lambda service: `POST /function/<name>` invokes that function's
/// bootstrap through its Runtime API (`functions`) and answers its result (200) or its error
/// (500, `{"errorType", "errorMessage"}`); `POST /items` reads a Distributed Map's JSONL manifest
/// (`{"Bucket", "Key"}`) from the S3 server the tests use. Every `short_every`-th invocation
/// gets a deadline half a second away, shorter than the margin a handler keeps, as a sandbox
/// near its timeout would. Returns its URL.
pub async fn gateway(
    functions: HashMap<String, Arc<RuntimeApi>>,
    short_every: Option<u64>,
) -> (String, Arc<GatewayCounts>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let counts = Arc::new(GatewayCounts::default());
    let functions = Arc::new(functions);
    let seen = counts.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (functions, counts) = (functions.clone(), seen.clone());
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                while let Some((method, path, _, body)) = read_request(&mut socket, &mut buffer).await {
                    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let (status, answer) = match (method.as_str(), path.strip_prefix("/function/")) {
                        ("POST", Some(name)) if functions.contains_key(name) => {
                            let n = {
                                let mut invocations = counts.invocations.lock().unwrap();
                                let n = invocations.entry(name.to_string()).or_default();
                                *n += 1;
                                *n
                            };
                            let deadline = match short_every {
                                Some(every) if n % every == 0 => Duration::from_millis(500),
                                _ => Duration::from_secs(60),
                            };
                            match functions[name].invoke(request, deadline).await {
                                Answer::Response(value) => ("200 OK", value),
                                Answer::Error { error_type, body } => {
                                    *counts.errors.lock().unwrap().entry(error_type.clone()).or_default() += 1;
                                    let message = body["errorMessage"].clone();
                                    (
                                        "500 Internal Server Error",
                                        serde_json::json!({"errorType": error_type, "errorMessage": message}),
                                    )
                                }
                            }
                        }
                        ("POST", None) if path == "/items" => ("200 OK", read_items(&request).await),
                        _ => ("404 Not Found", Value::Null),
                    };
                    if !respond(&mut socket, status, &[], &serde_json::to_vec(&answer).unwrap()).await {
                        return;
                    }
                }
            });
        }
    });
    (url, counts)
}

/// The items of a JSONL manifest, as a Distributed Map's `ItemReader` reads them.
async fn read_items(request: &Value) -> Value {
    assert_eq!(request["ReaderConfig"]["InputType"], "JSONL", "{request}");
    let bucket = request["Bucket"].as_str().expect("Bucket");
    let key = request["Key"].as_str().expect("Key");
    let store = pqmigrate::Store::s3(bucket, &super::s3_options()).unwrap();
    let (_, bytes) = store.get(key, Default::default()).await.unwrap();
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .collect()
}
