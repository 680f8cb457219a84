//! A Confluent Schema Registry client: writer schemas by id, over the registry's REST
//! API exactly as Confluent Schema Registry, Karapace and Redpanda serve it.
//!
//! A request runs on the calling thread and waits in short slices, running the host's
//! interrupt hook between them (see `http`): a cancelled query stops waiting at once,
//! taking its request with it, and every request ends within the timeout.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde_json::Value;
use ureq::tls::{parse_pem, Certificate, PemItem, RootCerts, TlsConfig};

use crate::error::Interrupt;

mod http;

/// What went wrong asking a Schema Registry; `pg::errors` says what each is as an ERROR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryError {
    /// The registry has no such schema, subject or version (HTTP 404), or one of a
    /// schema's references does not resolve: which, in the registry's words or ours.
    NotFound(String),
    /// The registry refused a schema sent to it (HTTP 409 or 422: not compatible with
    /// the subject's versions, or invalid), in its words.
    Refused(String),
    /// The registry at this URL refused the credentials (HTTP 401 or 403).
    Credentials(String),
    /// No registry answered: each URL's failure.
    Unreachable(Vec<String>),
    /// An answer the registry's API does not give.
    BadAnswer { url: String, why: String },
    /// Certificates to trust (`schema_registry.ca.pem`) that cannot be used.
    Certificates(String),
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryError::NotFound(why) | RegistryError::Refused(why) | RegistryError::Certificates(why) => f.write_str(why),
            RegistryError::Credentials(url) => write!(f, "{url} refused the credentials"),
            RegistryError::Unreachable(failures) => write!(f, "no schema registry answered: {}", failures.join("; ")),
            RegistryError::BadAnswer { url, why } => write!(f, "unexpected answer from the schema registry at {url}: {why}"),
        }
    }
}

pub type RegistryResult<T> = Result<T, RegistryError>;

/// Media types the registry speaks, most specific first (Confluent's documentation).
const ACCEPT: &str = "application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json; q=0.9, application/json; q=0.5";

/// The media type of what clients send (Confluent's documentation).
const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

#[derive(Clone)]
pub struct RegistrySettings {
    /// Base URLs, tried in order until one answers.
    pub urls: Vec<String>,
    /// HTTP basic auth (user, password).
    pub credentials: Option<(String, String)>,
    /// Certificates (PEM) to trust instead of the usual public roots.
    pub ca_pem: Option<String>,
    /// The longest a request may take, connection included.
    pub timeout: Duration,
    pub interrupt: Interrupt,
}

/// A schema as the registry stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredSchema {
    pub schema: String,
    /// `AVRO` (the registry's default, often left out of answers), `PROTOBUF`, `JSON`.
    pub schema_type: String,
    /// The schemas it imports: (name as imported, subject, version).
    pub references: Vec<(String, String, i64)>,
    /// Its id, where the answer gives it (a subject's versions do).
    pub id: Option<u32>,
}

/// How many schemas one writer schema may import, transitively: a bound for cycles.
const MAX_REFERENCES: usize = 1000;

/// The schema registered under `id` (`NotFound` when the registry has none: messages
/// naming it are bad messages).
pub fn schema_by_id(settings: &RegistrySettings, id: u32) -> RegistryResult<RegisteredSchema> {
    lookup(settings, &format!("/schemas/ids/{id}"), &format!("schema {id} not found"))
}

/// Version `version` (a number, or `latest`) of `subject` (`GET /subjects/{subject}/versions/{version}`).
pub fn schema_by_version(settings: &RegistrySettings, subject: &str, version: &str) -> RegistryResult<RegisteredSchema> {
    let subject_segment = percent_encoding::utf8_percent_encode(subject, percent_encoding::NON_ALPHANUMERIC);
    lookup(settings, &format!("/subjects/{subject_segment}/versions/{version}"), &format!("subject \"{subject}\" version {version} not found"))
}

/// The schemas `schema` imports, transitively, as (name, text), each once: what a
/// Protobuf schema needs to compile. `NotFound` when one of them is missing.
pub fn referenced_schemas(settings: &RegistrySettings, schema: &RegisteredSchema) -> RegistryResult<Vec<(String, String)>> {
    let mut found: Vec<(String, String)> = Vec::new();
    let mut wanted: Vec<(String, String, i64)> = schema.references.clone();
    while let Some((name, subject, version)) = wanted.pop() {
        if found.iter().any(|(known, _)| *known == name) {
            continue;
        }
        if found.len() >= MAX_REFERENCES {
            return Err(RegistryError::NotFound(format!("more than {MAX_REFERENCES} referenced schemas")));
        }
        match schema_by_version(settings, &subject, &version.to_string()) {
            Ok(referenced) => {
                wanted.extend(referenced.references);
                found.push((name, referenced.schema));
            }
            Err(RegistryError::NotFound(why)) => return Err(RegistryError::NotFound(format!("reference \"{name}\": {why}"))),
            Err(other) => return Err(other),
        }
    }
    Ok(found)
}

/// Registers `schema` (of `schema_type`: AVRO, PROTOBUF) under `subject`
/// (`POST /subjects/{subject}/versions`) and returns its id (the existing one if the
/// subject has it already). `Refused` when the registry refuses it (e.g. not compatible
/// with the subject's versions).
pub fn register(settings: &RegistrySettings, subject: &str, schema_type: &str, schema: &str) -> RegistryResult<u32> {
    let subject_segment = percent_encoding::utf8_percent_encode(subject, percent_encoding::NON_ALPHANUMERIC);
    let mut body = serde_json::json!({ "schema": schema });
    // AVRO is the default; older registries know no schemaType.
    if schema_type != "AVRO" {
        body["schemaType"] = Value::from(schema_type);
    }
    let path = format!("/subjects/{subject_segment}/versions");
    let (url, body) = ask(settings, &path, Some(body.to_string()), &format!("subject \"{subject}\" not found"))?;
    let answer: Value = serde_json::from_str(&body).map_err(|e| bad_answer(&url, format!("not JSON: {e}")))?;
    let id = answer.get("id").and_then(Value::as_u64).and_then(|id| u32::try_from(id).ok());
    id.ok_or_else(|| bad_answer(&url, format!("no \"id\" in {body}")))
}

/// A GET of a schema at `path` from the first registry that answers.
fn lookup(settings: &RegistrySettings, path: &str, not_found: &str) -> RegistryResult<RegisteredSchema> {
    let (url, body) = ask(settings, path, None, not_found)?;
    parse_schema(&url, &body)
}

/// A GET (or with `post`, a POST of that JSON) at `path` from the first registry that
/// answers: the URL and body of a success; `NotFound`, `Refused` or `Credentials` for the
/// registry's refusal, `Unreachable` when none could answer.
fn ask(settings: &RegistrySettings, path: &str, post: Option<String>, not_found: &str) -> RegistryResult<(String, String)> {
    let mut failures = Vec::new();
    for url in &settings.urls {
        match send(settings, &format!("{url}{path}"), post.clone()) {
            Ok((200, body)) => return Ok((url.clone(), body)),
            Ok((404, body)) => return Err(RegistryError::NotFound(error_message(&body).unwrap_or_else(|| not_found.to_string()))),
            Ok((409 | 422, body)) if post.is_some() => {
                return Err(RegistryError::Refused(error_message(&body).unwrap_or_else(|| "the schema registry refused the schema".to_string())))
            }
            Ok((401 | 403, _)) => return Err(RegistryError::Credentials(url.clone())),
            Ok((status, body)) => {
                failures.push(format!("{url}: HTTP {status} {}", error_message(&body).unwrap_or_default()))
            }
            Err(error) => failures.push(format!("{url}: {error}")),
        }
    }
    Err(RegistryError::Unreachable(failures))
}

/// One request: the status and body, or why there was no answer (a line of
/// `Unreachable`'s list). Waits cancellably.
fn send(settings: &RegistrySettings, url: &str, post: Option<String>) -> Result<(u16, String), String> {
    let mut config = ureq::Agent::config_builder().timeout_global(Some(settings.timeout)).http_status_as_error(false);
    if let Some(pem) = &settings.ca_pem {
        let roots = RootCerts::Specific(Arc::new(certificates(pem).map_err(|error| error.to_string())?));
        config = config.tls_config(TlsConfig::builder().root_certs(roots).build());
    }
    let agent = http::agent(config.build(), settings.interrupt);
    let authorization = settings.credentials.as_ref().map(|(user, password)| {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
    });
    let sent = match &post {
        None => {
            let mut request = agent.get(url).header("Accept", ACCEPT);
            if let Some(authorization) = &authorization {
                request = request.header("Authorization", authorization);
            }
            request.call()
        }
        Some(body) => {
            let mut request = agent.post(url).header("Accept", ACCEPT).header("Content-Type", CONTENT_TYPE);
            if let Some(authorization) = &authorization {
                request = request.header("Authorization", authorization);
            }
            request.send(body.as_str())
        }
    };
    let mut response = sent.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().map_err(|e| e.to_string())?;
    Ok((status, body))
}

/// Whether `pem` holds certificates (and nothing unreadable): why not, if it doesn't.
pub fn check_ca_pem(pem: &str) -> RegistryResult<()> {
    certificates(pem).map(|_| ())
}

/// The certificates of a PEM text.
fn certificates(pem: &str) -> RegistryResult<Vec<Certificate<'static>>> {
    let unusable = |why: String| RegistryError::Certificates(why);
    let mut found = Vec::new();
    for item in parse_pem(pem.as_bytes()) {
        match item.map_err(|e| unusable(format!("not PEM: {e}")))? {
            PemItem::Certificate(certificate) => found.push(certificate),
            _ => return Err(unusable("PEM of something other than a certificate".to_string())),
        }
    }
    if found.is_empty() {
        return Err(unusable("no certificate in the PEM text".to_string()));
    }
    Ok(found)
}

/// `{"schema": "...", "schemaType": "...", "references": [{"name", "subject", "version"}], "id": …}`
/// of `GET /schemas/ids/{id}` and `GET /subjects/{subject}/versions/{version}`.
fn parse_schema(url: &str, body: &str) -> RegistryResult<RegisteredSchema> {
    let bad = |why: String| bad_answer(url, why);
    let answer: Value = serde_json::from_str(body).map_err(|e| bad(format!("not JSON: {e}")))?;
    let schema = answer.get("schema").and_then(Value::as_str).ok_or_else(|| bad("no \"schema\" in the answer".to_string()))?;
    let schema_type = answer.get("schemaType").and_then(Value::as_str).unwrap_or("AVRO");
    let references = match answer.get("references") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(references)) => references
            .iter()
            .map(|reference| {
                let text = |key| reference.get(key).and_then(Value::as_str).map(str::to_string);
                match (text("name"), text("subject"), reference.get("version").and_then(Value::as_i64)) {
                    (Some(name), Some(subject), Some(version)) => Ok((name, subject, version)),
                    _ => Err(bad(format!("a reference without name, subject and version: {reference}"))),
                }
            })
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(bad(format!("\"references\" is not an array: {other}"))),
    };
    let id = answer.get("id").and_then(Value::as_u64).and_then(|id| u32::try_from(id).ok());
    Ok(RegisteredSchema { schema: schema.to_string(), schema_type: schema_type.to_string(), references, id })
}

/// The `message` of an error body `{"error_code": 40403, "message": "..."}`.
fn error_message(body: &str) -> Option<String> {
    let answer: Value = serde_json::from_str(body).ok()?;
    answer.get("message").and_then(Value::as_str).map(str::to_string)
}

fn bad_answer(url: &str, why: String) -> RegistryError {
    RegistryError::BadAnswer { url: url.to_string(), why }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::mpsc;
    use std::time::Instant;

    fn no_interrupt() {}

    fn settings(urls: Vec<String>, timeout: Duration) -> RegistrySettings {
        RegistrySettings { urls, credentials: Some(("u".into(), "p w".into())), ca_pem: None, timeout, interrupt: no_interrupt }
    }

    /// A registry that answers each request with the next canned response, and
    /// reports the request lines and headers it got.
    fn canned(responses: Vec<(u16, &'static str)>) -> (String, mpsc::Receiver<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (seen, requests) = mpsc::channel();
        std::thread::spawn(move || {
            for (status, body) in responses {
                let (mut stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut head = Vec::new();
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if line.trim().is_empty() {
                        break;
                    }
                    head.push(line.trim().to_string());
                }
                seen.send(head).unwrap();
                let response = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/vnd.schemaregistry.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                stream.write_all(response.as_bytes()).unwrap();
            }
        });
        (url, requests)
    }

    #[test]
    fn schemas_are_fetched_by_id_with_basic_auth() {
        let (url, requests) = canned(vec![
            (200, r#"{"schema":"{\"type\":\"string\"}"}"#),
            (200, r#"{"schema":"syntax = \"proto3\";","schemaType":"PROTOBUF"}"#),
            (404, r#"{"error_code":40403,"message":"Schema 9 not found"}"#),
        ]);
        let settings = settings(vec![url], Duration::from_secs(5));
        let avro = schema_by_id(&settings, 1).unwrap();
        assert_eq!(avro, RegisteredSchema { schema: r#"{"type":"string"}"#.into(), schema_type: "AVRO".into(), references: vec![], id: None });
        let head = requests.recv().unwrap();
        assert_eq!(head[0], "GET /schemas/ids/1 HTTP/1.1");
        assert!(head.iter().any(|h| h.eq_ignore_ascii_case("authorization: Basic dTpwIHc=")), "{head:?}");
        assert!(head.iter().any(|h| h.to_ascii_lowercase().starts_with("accept: application/vnd.schemaregistry.v1+json")));
        assert_eq!(schema_by_id(&settings, 2).unwrap().schema_type, "PROTOBUF");
        assert_eq!(schema_by_id(&settings, 9), Err(RegistryError::NotFound("Schema 9 not found".to_string())));
    }

    #[test]
    fn a_subjects_latest_version_comes_with_its_id() {
        let (url, requests) = canned(vec![(200, r#"{"subject":"t-value","version":3,"id":21,"schema":"{\"type\":\"string\"}"}"#)]);
        let latest = schema_by_version(&settings(vec![url], Duration::from_secs(5)), "t-value", "latest").unwrap();
        assert_eq!(latest.id, Some(21));
        assert_eq!(requests.recv().unwrap()[0], "GET /subjects/t%2Dvalue/versions/latest HTTP/1.1");
    }

    #[test]
    fn schemas_are_registered_by_post_and_refusals_are_answers() {
        let (url, requests) = canned(vec![
            (200, r#"{"id":7}"#),
            (409, r#"{"error_code":409,"message":"Schema being registered is incompatible"}"#),
        ]);
        let settings = settings(vec![url], Duration::from_secs(5));
        assert_eq!(register(&settings, "t-value", "PROTOBUF", "syntax = \"proto3\";"), Ok(7));
        let head = requests.recv().unwrap();
        assert_eq!(head[0], "POST /subjects/t%2Dvalue/versions HTTP/1.1");
        assert!(head.iter().any(|h| h.eq_ignore_ascii_case("content-type: application/vnd.schemaregistry.v1+json")), "{head:?}");
        let refused = register(&settings, "t-value", "AVRO", "\"long\"");
        assert_eq!(refused, Err(RegistryError::Refused("Schema being registered is incompatible".to_string())));
    }

    #[test]
    fn references_are_fetched_by_subject_and_version_transitively_once() {
        let (url, requests) = canned(vec![
            (200, r#"{"schema":"import \"a.proto\"; import \"b.proto\";","schemaType":"PROTOBUF","references":[{"name":"a.proto","subject":"a/x","version":1},{"name":"b.proto","subject":"b","version":2}]}"#),
            (200, r#"{"subject":"b","version":2,"id":3,"schema":"import \"a.proto\";","schemaType":"PROTOBUF","references":[{"name":"a.proto","subject":"a/x","version":1}]}"#),
            (200, r#"{"subject":"a/x","version":1,"id":2,"schema":"message A {}","schemaType":"PROTOBUF"}"#),
            (404, r#"{"error_code":40402,"message":"Version 7 not found."}"#),
        ]);
        let settings = settings(vec![url], Duration::from_secs(5));
        let main = schema_by_id(&settings, 4).unwrap();
        assert_eq!(main.references.len(), 2);
        let found = referenced_schemas(&settings, &main).unwrap();
        assert_eq!(found, vec![("b.proto".into(), "import \"a.proto\";".into()), ("a.proto".into(), "message A {}".into())]);
        let paths: Vec<String> = (0..3).map(|_| requests.recv().unwrap()[0].clone()).collect();
        assert_eq!(paths[1..], ["GET /subjects/b/versions/2 HTTP/1.1", "GET /subjects/a%2Fx/versions/1 HTTP/1.1"]);
        let missing = RegisteredSchema { schema: String::new(), schema_type: "PROTOBUF".into(), references: vec![("c.proto".into(), "c".into(), 7)], id: None };
        assert_eq!(referenced_schemas(&settings, &missing), Err(RegistryError::NotFound("reference \"c.proto\": Version 7 not found.".into())));
    }

    #[test]
    fn refused_credentials_and_dead_registries_are_errors_in_time() {
        let (url, _requests) = canned(vec![(401, r#"{"error_code":401,"message":"Unauthorized"}"#)]);
        let error = schema_by_id(&settings(vec![url.clone()], Duration::from_secs(5)), 1);
        assert_eq!(error, Err(RegistryError::Credentials(url)));
        // A port nobody listens on, then one that accepts and never answers.
        let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let urls = vec![format!("http://{closed}"), format!("http://{}", silent.local_addr().unwrap())];
        let started = Instant::now();
        let error = schema_by_id(&settings(urls, Duration::from_millis(500)), 1);
        assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
        let Err(RegistryError::Unreachable(failures)) = error else { panic!("{error:?}") };
        assert!(failures[0].contains(&closed.to_string()), "{failures:?}");
    }

    thread_local! {
        static CHECKS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
        static CANCELLED_AT: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
    }

    fn cancel_on_third_check() {
        CHECKS.set(CHECKS.get() + 1);
        if CHECKS.get() == 3 {
            CANCELLED_AT.set(Some(Instant::now()));
            panic!("cancelled");
        }
    }

    #[test]
    fn an_interrupt_ends_the_request_at_once() {
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut settings = settings(vec![format!("http://{}", silent.local_addr().unwrap())], Duration::from_secs(30));
        settings.interrupt = cancel_on_third_check;
        let started = Instant::now();
        let unwound = std::panic::catch_unwind(|| schema_by_id(&settings, 1));
        assert!(unwound.is_err());
        // Timed to the interrupt itself: printing the panic's backtrace (RUST_BACKTRACE)
        // can take seconds on a loaded machine.
        let cancelled_after = CANCELLED_AT.get().expect("the interrupt ran") - started;
        assert!(cancelled_after < Duration::from_secs(1), "took {cancelled_after:?}");
        // Nothing goes on with the request: the registry sees its connection closed.
        let (mut connection, _) = silent.accept().unwrap();
        connection.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut request = Vec::new();
        connection.read_to_end(&mut request).expect("closed, not still waiting for an answer");
        assert!(String::from_utf8_lossy(&request).starts_with("GET /schemas/ids/1 "), "{request:?}");
    }
}
