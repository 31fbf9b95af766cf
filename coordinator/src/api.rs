//! The HTTP API `bramble` talks to: JSON on Kubernetes-like paths. Every request needs
//! `Authorization: Bearer <api token>`. Handlers only translate HTTP to an [`ApiRequest`] for
//! the coordinator's loop, which owns all state, and its answer back.
//!
//! | method | path | |
//! |---|---|---|
//! | GET | `/api/v1/nodes`, `/api/v1/nodes/NAME` | boards |
//! | PATCH | `/api/v1/nodes/NAME` | `{"spec":{"unschedulable":true}}` cordons |
//! | GET | `/api/v1/pods`, `/api/v1/namespaces/NS/pods[/NAME]` | pods with status |
//! | DELETE | `/api/v1/namespaces/NS/pods/NAME` | a Deployment makes a new one |
//! | GET | `/api/v1/namespaces/NS/pods/NAME/log?container=&follow=&tailLines=` | text, streamed |
//! | POST | `/api/v1/namespaces/NS/pods/NAME/exec` | `{"command":[…],"container":…}`; NDJSON chunks, streamed |
//! | GET | `/apis/apps/v1/deployments`, `/apis/apps/v1/namespaces/NS/deployments[/NAME]` | |
//! | PUT | `/apis/apps/v1/namespaces/NS/deployments/NAME/scale` | `{"spec":{"replicas":N}}` |
//! | PATCH | `/apis/apps/v1/namespaces/NS/deployments/NAME` | `{"spec":{"paused":true}}` pauses a rollout |
//! | GET | `/apis/apps/v1/namespaces/NS/deployments/NAME/revisions` | its templates, numbered |
//! | POST | `/apis/apps/v1/namespaces/NS/deployments/NAME/rollback` | `{"toRevision":N}` (0: the one before) |
//! | GET, DELETE | `/api/v1/namespaces/NS/{services,configmaps}[/NAME]`, `/api/v1/namespaces[/NAME]` | |
//! | DELETE | `/apis/apps/v1/namespaces/NS/deployments/NAME` | |
//! | POST | `/apis/bramble.dev/v1/apply?namespace=NS` | body: YAML or JSON manifests |

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use bramble_common::Object;
use bramble_common::objects::Kind;
use bramble_common::wire::{Action, Response as Chunk};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use crate::images::{Pins, Resolver};
use crate::server::log;

/// What a client asked for.
#[derive(Debug)]
pub enum ApiRequest {
    /// Decoded and checked objects, with the digests their Deployments' images resolved to.
    Apply {
        namespace: String,
        objects: Vec<Object>,
        pins: Pins,
    },
    List {
        kind: Kind,
        namespace: Option<String>,
    },
    ListNodes,
    Get {
        kind: Kind,
        namespace: String,
        name: String,
    },
    GetNode {
        name: String,
    },
    Delete {
        kind: Kind,
        namespace: String,
        name: String,
    },
    Scale {
        namespace: String,
        name: String,
        replicas: u32,
    },
    /// `spec.paused` of a Deployment (`rollout pause|resume`).
    Pause {
        namespace: String,
        name: String,
        paused: bool,
    },
    /// `rollout undo [--to-revision N]`; 0 is the revision before the current one.
    Rollback {
        namespace: String,
        name: String,
        to_revision: u64,
    },
    /// `rollout history`.
    Revisions {
        namespace: String,
        name: String,
    },
    Cordon {
        name: String,
        cordoned: bool,
    },
    /// Logs or exec on the pod's board; the answer names the board, the chunks follow on
    /// `chunks`.
    Pod {
        namespace: String,
        name: String,
        container: Option<String>,
        action: Action,
        chunks: mpsc::Sender<Chunk>,
    },
}

/// How long a board may take to send the first chunk of an answer.
const FIRST_ANSWER: Duration = Duration::from_secs(10);

/// The loop's answer: a status code and a JSON body.
pub type ApiReply = (StatusCode, Value);

#[derive(Debug)]
pub struct ApiCall {
    pub request: ApiRequest,
    pub reply: oneshot::Sender<ApiReply>,
}

#[derive(Clone)]
struct ApiState {
    calls: mpsc::Sender<ApiCall>,
    token: String,
    /// Pins the images of applied Deployments; `None` leaves tags as they are.
    resolver: Option<Arc<Resolver>>,
}

/// A Kubernetes `Status` object for errors.
pub fn status(code: StatusCode, reason: &str, message: impl Into<String>) -> ApiReply {
    let message = message.into();
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "message": message, "code": code.as_u16()}),
    )
}

/// Serves the API on `listener` until the process ends.
pub fn serve(
    listener: tokio::net::TcpListener,
    token: String,
    calls: mpsc::Sender<ApiCall>,
    resolver: Option<Resolver>,
) {
    let state = ApiState { calls, token, resolver: resolver.map(Arc::new) };
    let namespaced = |plural: &'static str, kind: Kind| {
        Router::new()
            .route(
                &format!("/api/v1/namespaces/{{ns}}/{plural}"),
                get(move |s: State<ApiState>, Path(ns): Path<String>| list(s, kind, Some(ns))),
            )
            .route(
                &format!("/api/v1/namespaces/{{ns}}/{plural}/{{name}}"),
                get(move |s: State<ApiState>, Path((namespace, name)): Path<(String, String)>| {
                    call(s, ApiRequest::Get { kind, namespace, name })
                })
                .delete(
                    move |s: State<ApiState>, Path((namespace, name)): Path<(String, String)>| {
                        call(s, ApiRequest::Delete { kind, namespace, name })
                    },
                ),
            )
            .route(&format!("/api/v1/{plural}"), get(move |s: State<ApiState>| list(s, kind, None)))
    };
    let router = Router::new()
        .route("/api/v1/nodes", get(|s: State<ApiState>| call(s, ApiRequest::ListNodes)))
        .route(
            "/api/v1/nodes/{name}",
            get(|s: State<ApiState>, Path(name): Path<String>| call(s, ApiRequest::GetNode { name }))
                .patch(patch_node),
        )
        .merge(namespaced("pods", Kind::Pod))
        .route("/api/v1/namespaces/{ns}/pods/{name}/log", get(pod_log))
        .route("/api/v1/namespaces/{ns}/pods/{name}/exec", post(pod_exec))
        .merge(namespaced("services", Kind::Service))
        .merge(namespaced("configmaps", Kind::ConfigMap))
        .route("/api/v1/namespaces", get(|s: State<ApiState>| list(s, Kind::Namespace, None)))
        .route(
            "/api/v1/namespaces/{name}",
            get(|s: State<ApiState>, Path(name): Path<String>| {
                call(s, ApiRequest::Get { kind: Kind::Namespace, namespace: String::new(), name })
            })
            .delete(|s: State<ApiState>, Path(name): Path<String>| {
                call(s, ApiRequest::Delete { kind: Kind::Namespace, namespace: String::new(), name })
            }),
        )
        .route("/apis/apps/v1/deployments", get(|s: State<ApiState>| list(s, Kind::Deployment, None)))
        .route(
            "/apis/apps/v1/namespaces/{ns}/deployments",
            get(|s: State<ApiState>, Path(ns): Path<String>| list(s, Kind::Deployment, Some(ns))),
        )
        .route(
            "/apis/apps/v1/namespaces/{ns}/deployments/{name}",
            get(|s: State<ApiState>, Path((namespace, name)): Path<(String, String)>| {
                call(s, ApiRequest::Get { kind: Kind::Deployment, namespace, name })
            })
            .delete(|s: State<ApiState>, Path((namespace, name)): Path<(String, String)>| {
                call(s, ApiRequest::Delete { kind: Kind::Deployment, namespace, name })
            })
            .patch(patch_deployment),
        )
        .route("/apis/apps/v1/namespaces/{ns}/deployments/{name}/scale", put(scale))
        .route(
            "/apis/apps/v1/namespaces/{ns}/deployments/{name}/revisions",
            get(|s: State<ApiState>, Path((namespace, name)): Path<(String, String)>| {
                call(s, ApiRequest::Revisions { namespace, name })
            }),
        )
        .route("/apis/apps/v1/namespaces/{ns}/deployments/{name}/rollback", post(rollback))
        .route("/apis/bramble.dev/v1/apply", post(apply))
        .fallback(|| async { reply(status(StatusCode::NOT_FOUND, "NotFound", "no such path")) })
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .with_state(state);
    tokio::spawn(async move {
        if let Err(e) =
            axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>()).await
        {
            log(format!("http api stopped: {e}"));
        }
    });
}

fn reply((code, body): ApiReply) -> Response {
    (code, axum::Json(body)).into_response()
}

async fn call(State(state): State<ApiState>, request: ApiRequest) -> Response {
    reply(ask(&state, request).await)
}

/// The loop's answer to `request`.
async fn ask(state: &ApiState, request: ApiRequest) -> ApiReply {
    let (tx, rx) = oneshot::channel();
    if state.calls.send(ApiCall { request, reply: tx }).await.is_err() {
        return status(StatusCode::SERVICE_UNAVAILABLE, "ShuttingDown", "the coordinator is stopping");
    }
    rx.await.unwrap_or_else(|_| {
        status(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", "the request was dropped")
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogQuery {
    container: Option<String>,
    #[serde(default)]
    follow: bool,
    tail_lines: Option<u32>,
}

async fn pod_log(
    State(state): State<ApiState>,
    Path((namespace, name)): Path<(String, String)>,
    Query(query): Query<LogQuery>,
) -> Response {
    let action = Action::Logs { tail: query.tail_lines, follow: query.follow };
    on_board(&state, namespace, name, query.container, action, Streamed::Text).await
}

#[derive(Deserialize)]
struct ExecBody {
    command: Vec<String>,
    container: Option<String>,
}

async fn pod_exec(
    State(state): State<ApiState>,
    Path((namespace, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let body: ExecBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return reply(status(StatusCode::BAD_REQUEST, "BadRequest", format!("request body: {e}"))),
    };
    if body.command.is_empty() {
        return reply(status(StatusCode::BAD_REQUEST, "BadRequest", "command: expected at least one word"));
    }
    let action = Action::Exec { command: body.command };
    on_board(&state, namespace, name, body.container, action, Streamed::JsonLines).await
}

/// How the chunks of a board's answer reach the HTTP client.
#[derive(Clone, Copy)]
enum Streamed {
    /// The output as it is (`logs`); an error after output began ends it with a line saying so.
    Text,
    /// One JSON chunk a line (`exec`): `{"stream":"stdout","data":…}`, last `{"done":true,"exitCode":N}`.
    JsonLines,
}

/// Sends `action` to the board of pod `namespace/name` and streams its answer. Errors before
/// the first chunk are a `Status` with a code; the board not answering in time is 504.
async fn on_board(
    state: &ApiState,
    namespace: String,
    name: String,
    container: Option<String>,
    action: Action,
    streamed: Streamed,
) -> Response {
    let (chunks, mut rx) = mpsc::channel::<Chunk>(64);
    let (code, body) = ask(state, ApiRequest::Pod { namespace, name, container, action, chunks }).await;
    if !code.is_success() {
        return reply((code, body));
    }
    let node = body["node"].as_str().unwrap_or_default().to_owned();
    let first = match tokio::time::timeout(FIRST_ANSWER, rx.recv()).await {
        Ok(Some(chunk)) => chunk,
        Ok(None) => {
            return reply(status(StatusCode::BAD_GATEWAY, "BoardGone", format!("board {node} went away")));
        }
        Err(_) => {
            let message = format!("board {node} did not answer within {}s", FIRST_ANSWER.as_secs());
            return reply(status(StatusCode::GATEWAY_TIMEOUT, "Timeout", message));
        }
    };
    if let (true, Some(error)) = (first.done, &first.error) {
        return reply(status(StatusCode::NOT_FOUND, "BoardRefused", format!("board {node}: {error}")));
    }
    let content_type = match streamed {
        Streamed::Text => "text/plain; charset=utf-8",
        Streamed::JsonLines => "application/x-ndjson",
    };
    // The receiver is dropped after the last chunk, which tells the loop the request is over.
    let stream = futures_util::stream::unfold((Some(first), Some(rx)), move |(pending, rx)| async move {
        let mut rx = rx?;
        let chunk = match pending {
            Some(chunk) => chunk,
            // The loop let go of the request before its last chunk: say so, not a clean end.
            None => rx.recv().await.unwrap_or_else(|| Chunk {
                done: true,
                error: Some(
                    "the answer was cut off: the client read more slowly than the board wrote, or the board went away"
                        .to_owned(),
                ),
                ..Chunk::default()
            }),
        };
        let bytes = match streamed {
            Streamed::Text => match &chunk.error {
                Some(error) => format!("{}\n[bramble: {error}]\n", chunk.data).into_bytes(),
                None => chunk.data.clone().into_bytes(),
            },
            Streamed::JsonLines => {
                let mut line = serde_json::to_vec(&chunk).unwrap_or_default();
                line.push(b'\n');
                line
            }
        };
        let rx = (!chunk.done).then_some(rx);
        Some((Ok::<_, std::convert::Infallible>(Bytes::from(bytes)), (None, rx)))
    });
    (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], axum::body::Body::from_stream(stream))
        .into_response()
}

async fn list(state: State<ApiState>, kind: Kind, namespace: Option<String>) -> Response {
    call(state, ApiRequest::List { kind, namespace }).await
}

#[derive(Deserialize)]
struct ApplyQuery {
    namespace: Option<String>,
    source: Option<String>,
}

async fn apply(state: State<ApiState>, Query(query): Query<ApplyQuery>, body: Bytes) -> Response {
    let namespace = query.namespace.unwrap_or_else(|| bramble_common::objects::DEFAULT_NAMESPACE.to_owned());
    let source = query.source.unwrap_or_else(|| "request body".to_owned());
    let objects = match decode_objects(&source, &body) {
        Ok(objects) => objects,
        Err(error) => return reply(error),
    };
    // The registries are asked here, outside the loop, which never waits on the network.
    let pins = match &state.resolver {
        Some(resolver) => resolver.pins(&objects).await,
        None => Pins::new(),
    };
    call(state, ApiRequest::Apply { namespace, objects, pins }).await
}

/// The objects of an apply: `bramble apply` sends each as the JSON `Object` it decoded and
/// checked (checked again here); anyone else may send manifests as text, which go through the
/// same decoder. Nothing is applied if any document has an error.
fn decode_objects(source: &str, text: &[u8]) -> Result<Vec<Object>, ApiReply> {
    let invalid =
        |errors: Vec<String>| status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", errors.join("\n"));
    match serde_json::from_slice::<Object>(text) {
        Ok(object) => {
            let problems = bramble_common::validate::validate(&object);
            if !problems.is_empty() {
                return Err(invalid(problems.iter().map(|p| format!("{source}: {p}")).collect()));
            }
            Ok(vec![object])
        }
        Err(_) => {
            let manifests = bramble_common::parse_manifest_bytes(source, text);
            if !manifests.is_ok() {
                return Err(invalid(manifests.errors.iter().map(ToString::to_string).collect()));
            }
            Ok(manifests.objects.into_iter().map(|item| item.object).collect())
        }
    }
}

/// One field of a JSON request body, read by `read`; `expected` says what it should have been.
fn body_field<T>(body: &[u8], read: impl FnOnce(&Value) -> Option<T>, expected: &str) -> Result<T, ApiReply> {
    let body = if body.is_empty() { b"{}".as_slice() } else { body };
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| status(StatusCode::BAD_REQUEST, "BadRequest", format!("request body: {e}")))?;
    read(&value).ok_or_else(|| status(StatusCode::BAD_REQUEST, "BadRequest", expected))
}

async fn scale(
    state: State<ApiState>,
    Path((namespace, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let read = |v: &Value| v["spec"]["replicas"].as_u64().and_then(|n| u32::try_from(n).ok());
    match body_field(&body, read, "spec.replicas: expected a non-negative integer") {
        Ok(replicas) => call(state, ApiRequest::Scale { namespace, name, replicas }).await,
        Err(error) => reply(error),
    }
}

async fn patch_deployment(
    state: State<ApiState>,
    Path((namespace, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let read = |v: &Value| v["spec"]["paused"].as_bool();
    let expected =
        "spec.paused: expected true or false (the only field a patch changes; apply changes the rest)";
    match body_field(&body, read, expected) {
        Ok(paused) => call(state, ApiRequest::Pause { namespace, name, paused }).await,
        Err(error) => reply(error),
    }
}

async fn rollback(
    state: State<ApiState>,
    Path((namespace, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let read = |v: &Value| if v["toRevision"].is_null() { Some(0) } else { v["toRevision"].as_u64() };
    match body_field(&body, read, "toRevision: expected a revision number") {
        Ok(to_revision) => call(state, ApiRequest::Rollback { namespace, name, to_revision }).await,
        Err(error) => reply(error),
    }
}

async fn patch_node(state: State<ApiState>, Path(name): Path<String>, body: Bytes) -> Response {
    let read = |v: &Value| v["spec"]["unschedulable"].as_bool();
    match body_field(&body, read, "spec.unschedulable: expected true or false") {
        Ok(cordoned) => call(state, ApiRequest::Cordon { name, cordoned }).await,
        Err(error) => reply(error),
    }
}

async fn authorize(
    State(state): State<ApiState>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let ok = given.is_some_and(|t| crate::acl::same_secret(t.as_bytes(), state.token.as_bytes()));
    if ok {
        next.run(request).await
    } else {
        let message = if given.is_some() { "wrong bearer token" } else { "a bearer token is required" };
        reply(status(StatusCode::UNAUTHORIZED, "Unauthorized", message))
    }
}
