//! An in-memory Schema Registry speaking the part of Confluent's REST API that serializers
//! and readers use, with Confluent's answers and error bodies, so that a client tested
//! against it works unchanged against Confluent Schema Registry, Karapace or Redpanda.
//!
//! Schema ids are global and count from 1; a schema registered again (under any subject)
//! keeps its id, and registering it again under the same subject adds no version. There
//! are no compatibility checks, deletions, modes or configs.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use percent_encoding::percent_decode_str;
use serde_json::{json, Value};
use tiny_http::{Header, Response, Server};

use crate::Result;

/// What the registry answers with, and what clients send.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";
/// Request bodies Confluent accepts.
const ACCEPTED_CONTENT_TYPES: [&str; 3] = [CONTENT_TYPE, "application/vnd.schemaregistry+json", "application/json"];

/// HTTP basic auth credentials.
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl Credentials {
    /// The `Authorization` header value.
    pub fn authorization(&self) -> String {
        let pair = format!("{}:{}", self.user, self.password);
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
    }
}

/// Hosts the registry on a free loopback port until the process is killed, answering
/// each request `delay` late (a slow registry, for tests).
pub fn serve(address_file: &Path, credentials: Option<Credentials>, delay: Duration) -> Result<()> {
    let server = Server::http("127.0.0.1:0").map_err(|e| e as Box<dyn std::error::Error>)?;
    let address = server.server_addr().to_ip().ok_or("the registry is not on an IP address")?;
    crate::write_address_file(address_file, &format!("http://{address}\n"))?;
    run(&server, Registry::new(credentials), delay);
    Ok(())
}

/// Answers requests one at a time, for as long as the server lives, and logs each to
/// stderr (`METHOD URL STATUS`), so that tests can count what clients asked.
fn run(server: &Server, mut registry: Registry, delay: Duration) {
    for mut request in server.incoming_requests() {
        let header = |name: &str| {
            request.headers().iter().find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name)).map(|h| h.value.as_str().to_string())
        };
        let mut received = Request {
            method: request.method().as_str().to_string(),
            url: request.url().to_string(),
            content_type: header("Content-Type"),
            authorization: header("Authorization"),
            body: Vec::new(),
        };
        let reply = match request.as_reader().read_to_end(&mut received.body) {
            Ok(_) => registry.handle(&received),
            Err(error) => Reply::error(400, 400, format!("could not read the request: {error}")),
        };
        std::thread::sleep(delay);
        eprintln!("{} {} {}", received.method, received.url, reply.status);
        let mut response = Response::from_string(reply.body.to_string())
            .with_status_code(reply.status)
            .with_header(Header::from_bytes("Content-Type", CONTENT_TYPE).expect("a valid header"));
        if reply.status == 401 {
            response.add_header(Header::from_bytes("WWW-Authenticate", "Basic realm=\"kafka-tool registry\"").expect("a valid header"));
        }
        // A client that went away is its own problem, not the registry's.
        let _ = request.respond(response);
    }
}

/// One HTTP request, as far as the registry looks at it.
pub struct Request {
    pub method: String,
    /// Path and query, as in the request line.
    pub url: String,
    pub content_type: Option<String>,
    pub authorization: Option<String>,
    pub body: Vec<u8>,
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    fn ok(body: Value) -> Self {
        Reply { status: 200, body }
    }

    /// Confluent's error body: an error code that refines the HTTP status, and a message.
    fn error(status: u16, code: u32, message: impl Into<String>) -> Self {
        Reply { status, body: json!({ "error_code": code, "message": message.into() }) }
    }

    fn subject_not_found(subject: &str) -> Self {
        Reply::error(404, 40401, format!("Subject '{subject}' not found."))
    }

    fn invalid_schema(message: impl Into<String>) -> Self {
        Reply::error(422, 42201, message)
    }
}

#[derive(Clone, Copy, PartialEq)]
enum SchemaType {
    Avro,
    Protobuf,
    Json,
}

impl SchemaType {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "AVRO" => Some(SchemaType::Avro),
            "PROTOBUF" => Some(SchemaType::Protobuf),
            "JSON" => Some(SchemaType::Json),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            SchemaType::Avro => "AVRO",
            SchemaType::Protobuf => "PROTOBUF",
            SchemaType::Json => "JSON",
        }
    }
}

/// A reference from a schema to a named type in another subject's version.
#[derive(Clone, PartialEq)]
struct Reference {
    name: String,
    subject: String,
    version: u32,
}

/// A registered schema; its id is its index in `Registry::schemas` plus 1.
#[derive(Clone, PartialEq)]
struct StoredSchema {
    schema_type: SchemaType,
    /// Avro and JSON schemas are kept as compact JSON, as Confluent keeps its parsed form,
    /// so that the same schema written with other spacing is the same schema.
    text: String,
    references: Vec<Reference>,
}

pub struct Registry {
    /// The `Authorization` header every request must carry, if any.
    authorization: Option<String>,
    schemas: Vec<StoredSchema>,
    /// Subject → the schema id of each version, version 1 first.
    subjects: BTreeMap<String, Vec<u32>>,
}

impl Registry {
    pub fn new(credentials: Option<Credentials>) -> Self {
        Registry { authorization: credentials.map(|c| c.authorization()), schemas: Vec::new(), subjects: BTreeMap::new() }
    }

    pub fn handle(&mut self, request: &Request) -> Reply {
        if let Some(expected) = &self.authorization {
            if request.authorization.as_ref() != Some(expected) {
                return Reply::error(401, 401, "Unauthorized");
            }
        }
        if request.method == "POST" {
            if let Some(content_type) = &request.content_type {
                let media_type = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
                if !ACCEPTED_CONTENT_TYPES.contains(&media_type.as_str()) {
                    return Reply::error(415, 415, "HTTP 415 Unsupported Media Type");
                }
            }
        }
        let path = request.url.split('?').next().unwrap_or_default();
        let segments: Vec<String> =
            path.trim_start_matches('/').split('/').map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned()).collect();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        match (request.method.as_str(), segments.as_slice()) {
            ("GET", ["subjects"]) => Reply::ok(json!(self.subjects.keys().collect::<Vec<_>>())),
            ("POST", ["subjects", subject]) => self.lookup(subject, &request.body),
            ("GET", ["subjects", subject, "versions"]) => match self.subjects.get(*subject) {
                Some(ids) => Reply::ok(json!((1..=ids.len()).collect::<Vec<_>>())),
                None => Reply::subject_not_found(subject),
            },
            ("POST", ["subjects", subject, "versions"]) => self.register(subject, &request.body),
            ("GET", ["subjects", subject, "versions", version]) => self.version(subject, version),
            ("GET", ["schemas", "ids", id]) => self.schema_by_id(id),
            (_, ["subjects"] | ["subjects", _] | ["subjects", _, "versions"] | ["subjects", _, "versions", _] | ["schemas", "ids", _]) => {
                Reply::error(405, 405, "HTTP 405 Method Not Allowed")
            }
            _ => Reply::error(404, 404, "HTTP 404 Not Found"),
        }
    }

    fn stored(&self, id: u32) -> &StoredSchema {
        &self.schemas[id as usize - 1]
    }

    fn register(&mut self, subject: &str, body: &[u8]) -> Reply {
        let schema = match self.parse_schema_request(body) {
            Ok(schema) => schema,
            Err(reply) => return reply,
        };
        let id = match self.schemas.iter().position(|s| *s == schema) {
            Some(index) => index as u32 + 1,
            None => {
                self.schemas.push(schema);
                self.schemas.len() as u32
            }
        };
        let versions = self.subjects.entry(subject.to_string()).or_default();
        if !versions.contains(&id) {
            versions.push(id);
        }
        Reply::ok(json!({ "id": id }))
    }

    fn lookup(&self, subject: &str, body: &[u8]) -> Reply {
        let Some(ids) = self.subjects.get(subject) else { return Reply::subject_not_found(subject) };
        let schema = match self.parse_schema_request(body) {
            Ok(schema) => schema,
            Err(reply) => return reply,
        };
        match ids.iter().position(|&id| *self.stored(id) == schema) {
            Some(index) => self.version_reply(subject, index + 1, ids[index]),
            None => Reply::error(404, 40403, "Schema not found"),
        }
    }

    fn version(&self, subject: &str, version: &str) -> Reply {
        let Some(ids) = self.subjects.get(subject) else { return Reply::subject_not_found(subject) };
        // Confluent takes -1 for "latest" too.
        let number = match version {
            "latest" | "-1" => ids.len(),
            _ => match version.parse::<i32>() {
                Ok(n) if n >= 1 => n as usize,
                _ => {
                    return Reply::error(
                        422,
                        42202,
                        format!(
                            "The specified version '{version}' is not a valid version id. \
                             Allowed values are between [1, 2^31-1] and the string \"latest\""
                        ),
                    )
                }
            },
        };
        match ids.get(number - 1) {
            Some(&id) => self.version_reply(subject, number, id),
            None => Reply::error(404, 40402, format!("Version {version} not found.")),
        }
    }

    fn version_reply(&self, subject: &str, version: usize, id: u32) -> Reply {
        let mut body = json!({ "subject": subject, "version": version, "id": id });
        self.describe(id, body.as_object_mut().expect("an object"));
        Reply::ok(body)
    }

    fn schema_by_id(&self, id: &str) -> Reply {
        match id.parse::<u32>() {
            Ok(n) if n >= 1 && n as usize <= self.schemas.len() => {
                let mut body = json!({});
                self.describe(n, body.as_object_mut().expect("an object"));
                Reply::ok(body)
            }
            Ok(_) => Reply::error(404, 40403, format!("Schema {id} not found")),
            Err(_) => Reply::error(404, 404, "HTTP 404 Not Found"),
        }
    }

    /// Adds `schemaType` (left out for Avro, as Confluent does), `references` (if any) and
    /// `schema`.
    fn describe(&self, id: u32, body: &mut serde_json::Map<String, Value>) {
        let schema = self.stored(id);
        if schema.schema_type != SchemaType::Avro {
            body.insert("schemaType".into(), json!(schema.schema_type.name()));
        }
        if !schema.references.is_empty() {
            let references: Vec<Value> =
                schema.references.iter().map(|r| json!({ "name": r.name, "subject": r.subject, "version": r.version })).collect();
            body.insert("references".into(), Value::Array(references));
        }
        body.insert("schema".into(), json!(schema.text));
    }

    /// The schema of a register or lookup request body, validated.
    fn parse_schema_request(&self, body: &[u8]) -> std::result::Result<StoredSchema, Reply> {
        let request: Value = serde_json::from_slice(body).map_err(|e| Reply::error(400, 400, format!("Malformed request: {e}")))?;
        let Some(text) = request.get("schema").and_then(Value::as_str).filter(|s| !s.is_empty()) else {
            return Err(Reply::invalid_schema("Empty schema"));
        };
        let schema_type = match request.get("schemaType") {
            None | Some(Value::Null) => SchemaType::Avro,
            Some(name) => {
                name.as_str().and_then(SchemaType::parse).ok_or_else(|| Reply::invalid_schema(format!("Invalid schema type {name}")))?
            }
        };
        let references = match request.get("references") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items.iter().map(|item| self.parse_reference(item)).collect::<std::result::Result<_, _>>()?,
            Some(_) => return Err(Reply::invalid_schema("references must be an array")),
        };
        let text = match schema_type {
            SchemaType::Avro => {
                let dependencies = self.dependencies(&references);
                apache_avro::Schema::parse_str_with_list(text, &dependencies)
                    .map_err(|e| Reply::invalid_schema(format!("Invalid schema {text}: {e}")))?;
                compact_json(text)?
            }
            SchemaType::Json => compact_json(text)?,
            // Not parsed here: nothing in kafka-tool reads Protobuf.
            SchemaType::Protobuf => text.to_string(),
        };
        Ok(StoredSchema { schema_type, text, references })
    }

    fn parse_reference(&self, item: &Value) -> std::result::Result<Reference, Reply> {
        let field = |name: &str| item.get(name).ok_or_else(|| Reply::invalid_schema(format!("a reference without {name}")));
        let name = field("name")?.as_str().unwrap_or_default().to_string();
        let subject = field("subject")?.as_str().unwrap_or_default().to_string();
        let version = field("version")?.as_u64().unwrap_or(0) as u32;
        let exists = self.subjects.get(&subject).is_some_and(|ids| version >= 1 && version as usize <= ids.len());
        if !exists {
            return Err(Reply::invalid_schema(format!(
                "Invalid schema: reference {name} to subject {subject} version {version} not found"
            )));
        }
        Ok(Reference { name, subject, version })
    }

    /// The texts of the schemas `references` name, and of theirs, dependencies first (the
    /// order Avro parsers need them in).
    fn dependencies(&self, references: &[Reference]) -> Vec<String> {
        let mut texts = Vec::new();
        for reference in references {
            let schema = self.stored(self.subjects[&reference.subject][reference.version as usize - 1]);
            for text in self.dependencies(&schema.references).into_iter().chain([schema.text.clone()]) {
                if !texts.contains(&text) {
                    texts.push(text);
                }
            }
        }
        texts
    }
}

fn compact_json(text: &str) -> std::result::Result<String, Reply> {
    let value: Value = serde_json::from_str(text).map_err(|e| Reply::invalid_schema(format!("Invalid schema {text}: {e}")))?;
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER_SCHEMA: &str = r#"{"type": "record", "name": "User", "fields": [{"name": "id", "type": "long"}]}"#;

    fn post(url: &str, body: Value) -> Request {
        Request {
            method: "POST".into(),
            url: url.into(),
            content_type: Some(CONTENT_TYPE.into()),
            authorization: None,
            body: body.to_string().into_bytes(),
        }
    }

    fn get(url: &str) -> Request {
        Request { method: "GET".into(), url: url.into(), content_type: None, authorization: None, body: Vec::new() }
    }

    fn ok(reply: Reply) -> Value {
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.body
    }

    #[test]
    fn registering_again_keeps_the_id_and_the_version() {
        let mut registry = Registry::new(None);
        let first = ok(registry.handle(&post("/subjects/users-value/versions", json!({ "schema": USER_SCHEMA }))));
        assert_eq!(first, json!({ "id": 1 }));
        // The same schema with other spacing is the same schema.
        let compact = serde_json::from_str::<Value>(USER_SCHEMA).unwrap().to_string();
        let again = ok(registry.handle(&post("/subjects/users-value/versions", json!({ "schema": compact }))));
        assert_eq!(again, json!({ "id": 1 }));
        assert_eq!(ok(registry.handle(&get("/subjects/users-value/versions"))), json!([1]));
        // Under another subject: the same id, that subject's version 1.
        let other = ok(registry.handle(&post("/subjects/other/versions", json!({ "schema": USER_SCHEMA }))));
        assert_eq!(other, json!({ "id": 1 }));
        let string = ok(registry.handle(&post("/subjects/other/versions", json!({ "schema": "\"string\"" }))));
        assert_eq!(string, json!({ "id": 2 }));
        assert_eq!(ok(registry.handle(&get("/subjects"))), json!(["other", "users-value"]));
        assert_eq!(ok(registry.handle(&get("/subjects/other/versions"))), json!([1, 2]));
    }

    #[test]
    fn schemas_by_id_version_and_lookup() {
        let mut registry = Registry::new(None);
        ok(registry.handle(&post("/subjects/t-value/versions", json!({ "schema": USER_SCHEMA }))));
        let proto = "syntax = \"proto3\";\nmessage M { int64 id = 1; }\n";
        ok(registry.handle(&post("/subjects/t-value/versions", json!({ "schema": proto, "schemaType": "PROTOBUF" }))));
        let stored = serde_json::from_str::<Value>(USER_SCHEMA).unwrap().to_string();

        // schemaType is left out for Avro.
        assert_eq!(ok(registry.handle(&get("/schemas/ids/1"))), json!({ "schema": stored }));
        assert_eq!(ok(registry.handle(&get("/schemas/ids/2"))), json!({ "schemaType": "PROTOBUF", "schema": proto }));
        assert_eq!(
            ok(registry.handle(&get("/subjects/t-value/versions/latest"))),
            json!({ "subject": "t-value", "version": 2, "id": 2, "schemaType": "PROTOBUF", "schema": proto })
        );
        assert_eq!(
            ok(registry.handle(&get("/subjects/t-value/versions/1"))),
            json!({ "subject": "t-value", "version": 1, "id": 1, "schema": stored })
        );
        assert_eq!(
            ok(registry.handle(&post("/subjects/t-value", json!({ "schema": USER_SCHEMA })))),
            json!({ "subject": "t-value", "version": 1, "id": 1, "schema": stored })
        );
        let missing = registry.handle(&post("/subjects/t-value", json!({ "schema": "\"int\"" })));
        assert_eq!((missing.status, missing.body), (404, json!({ "error_code": 40403, "message": "Schema not found" })));
    }

    #[test]
    fn references_resolve_through_other_subjects() {
        let mut registry = Registry::new(None);
        let address = r#"{"type": "record", "name": "Address", "namespace": "n", "fields": [{"name": "city", "type": "string"}]}"#;
        ok(registry.handle(&post("/subjects/address/versions", json!({ "schema": address }))));
        let person = r#"{"type": "record", "name": "Person", "namespace": "n", "fields": [{"name": "home", "type": "n.Address"}]}"#;
        let references = json!([{ "name": "n.Address", "subject": "address", "version": 1 }]);
        // Without its reference the schema names an unknown type.
        let alone = registry.handle(&post("/subjects/person/versions", json!({ "schema": person })));
        assert_eq!((alone.status, &alone.body["error_code"]), (422, &json!(42201)));
        ok(registry.handle(&post("/subjects/person/versions", json!({ "schema": person, "references": references }))));
        let got = ok(registry.handle(&get("/schemas/ids/2")));
        assert_eq!(got["references"], references);
    }

    #[test]
    fn errors_have_confluents_codes() {
        let mut registry = Registry::new(None);
        let cases = [
            (get("/subjects/nope/versions"), 404, json!({ "error_code": 40401, "message": "Subject 'nope' not found." })),
            (get("/subjects/nope/versions/latest"), 404, json!({ "error_code": 40401, "message": "Subject 'nope' not found." })),
            (
                post("/subjects/nope", json!({ "schema": "\"int\"" })),
                404,
                json!({ "error_code": 40401, "message": "Subject 'nope' not found." }),
            ),
            (get("/schemas/ids/7"), 404, json!({ "error_code": 40403, "message": "Schema 7 not found" })),
        ];
        for (request, status, body) in cases {
            let reply = registry.handle(&request);
            assert_eq!((reply.status, reply.body), (status, body), "{}", request.url);
        }
        ok(registry.handle(&post("/subjects/s/versions", json!({ "schema": "\"int\"" }))));
        let reply = registry.handle(&get("/subjects/s/versions/2"));
        assert_eq!((reply.status, reply.body), (404, json!({ "error_code": 40402, "message": "Version 2 not found." })));
        let reply = registry.handle(&get("/subjects/s/versions/zero"));
        assert_eq!((reply.status, &reply.body["error_code"]), (422, &json!(42202)));
        let invalid = registry.handle(&post("/subjects/s/versions", json!({ "schema": r#"{"type": "record", "name": "R"}"# })));
        assert_eq!((invalid.status, &invalid.body["error_code"]), (422, &json!(42201)));
        let mut wrong_type = post("/subjects/s/versions", json!({ "schema": "\"int\"" }));
        wrong_type.content_type = Some("text/plain".into());
        assert_eq!(registry.handle(&wrong_type).status, 415);
    }

    #[test]
    fn basic_auth_when_asked_for() {
        let credentials = || Credentials { user: "alice".into(), password: "secret".into() };
        let mut registry = Registry::new(Some(credentials()));
        let refused = json!({ "error_code": 401, "message": "Unauthorized" });
        let reply = registry.handle(&get("/subjects"));
        assert_eq!((reply.status, reply.body), (401, refused.clone()));
        let wrong = Credentials { user: "alice".into(), password: "guess".into() }.authorization();
        let reply = registry.handle(&Request { authorization: Some(wrong), ..get("/subjects") });
        assert_eq!((reply.status, reply.body), (401, refused));
        let right = credentials().authorization();
        assert_eq!(ok(registry.handle(&Request { authorization: Some(right), ..get("/subjects") })), json!([]));
    }

    /// Over HTTP, through the client `produce-avro` uses, each answer 100 ms late.
    #[test]
    fn serves_http() {
        let server = Server::http("127.0.0.1:0").unwrap();
        let base = format!("http://{}", server.server_addr().to_ip().unwrap());
        let credentials = Credentials { user: "u".into(), password: "p".into() };
        let delay = Duration::from_millis(100);
        std::thread::spawn(move || run(&server, Registry::new(Some(Credentials { user: "u".into(), password: "p".into() })), delay));

        let schema = crate::registry_client::NewSchema { text: USER_SCHEMA, schema_type: None, references: Vec::new() };
        let started = std::time::Instant::now();
        let (id, version) = crate::registry_client::register(&base, "a b/c", &schema, Some(&credentials)).unwrap();
        assert!(started.elapsed() >= delay);
        assert_eq!(version, 1);
        assert_eq!(id, 1);
        assert_eq!(crate::registry_client::register(&base, "a b/c", &schema, Some(&credentials)).unwrap(), (1, 1));
        let refused = crate::registry_client::register(&base, "x", &schema, None).unwrap_err().to_string();
        assert!(refused.contains("HTTP 401") && refused.contains(r#""error_code":401"#), "{refused}");

        let mut response = ureq::get(&format!("{base}/subjects")).header("Authorization", credentials.authorization()).call().unwrap();
        assert_eq!(response.headers()["content-type"], CONTENT_TYPE);
        assert_eq!(response.body_mut().read_to_string().unwrap(), r#"["a b/c"]"#);
    }
}
