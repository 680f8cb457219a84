//! The Schema Registry calls the produce commands make: registering their schemas (and,
//! for Protobuf, the files they import, referenced by subject and version).

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::{json, Value};

use crate::registry::{Credentials, CONTENT_TYPE};
use crate::Result;

/// A schema to register: its text, type (`None`: Avro, the registry's default) and the
/// schemas it imports as (name, subject, version).
pub struct NewSchema<'a> {
    pub text: &'a str,
    pub schema_type: Option<&'a str>,
    pub references: Vec<(String, String, i64)>,
}

impl NewSchema<'_> {
    fn body(&self) -> String {
        let mut body = json!({ "schema": self.text });
        if let Some(schema_type) = self.schema_type {
            body["schemaType"] = json!(schema_type);
        }
        if !self.references.is_empty() {
            let references: Vec<Value> =
                self.references.iter().map(|(name, subject, version)| json!({"name": name, "subject": subject, "version": version})).collect();
            body["references"] = Value::Array(references);
        }
        body.to_string()
    }
}

/// Registers `schema` under `subject`; its id and version (the same each time the same
/// schema is registered).
pub fn register(base_url: &str, subject: &str, schema: &NewSchema<'_>, credentials: Option<&Credentials>) -> Result<(u32, i64)> {
    let subject_url = format!("{}/subjects/{}", base_url.trim_end_matches('/'), utf8_percent_encode(subject, NON_ALPHANUMERIC));
    let body = schema.body();
    let registered = post(&format!("{subject_url}/versions"), &body, credentials)
        .map_err(|e| format!("registering under subject {subject} at {base_url}: {e}"))?;
    let id = registered.get("id").and_then(Value::as_u64).ok_or_else(|| format!("no id in the registry's answer {registered}"))?;
    // The version: what looking the schema up under the subject answers.
    let found = post(&subject_url, &body, credentials).map_err(|e| format!("looking up under subject {subject} at {base_url}: {e}"))?;
    let version = found.get("version").and_then(Value::as_i64).ok_or_else(|| format!("no version in the registry's answer {found}"))?;
    Ok((u32::try_from(id)?, version))
}

/// A POST of `body`; the answer's JSON, or the registry's explanation of its refusal.
fn post(url: &str, body: &str, credentials: Option<&Credentials>) -> Result<Value> {
    let mut request = ureq::post(url)
        .config()
        // Error answers carry the registry's explanation: read them rather than fail early.
        .http_status_as_error(false)
        .build()
        .header("Content-Type", CONTENT_TYPE)
        .header("Accept", CONTENT_TYPE);
    if let Some(credentials) = credentials {
        request = request.header("Authorization", credentials.authorization());
    }
    let mut response = request.send(body)?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string()?;
    if status != 200 {
        return Err(format!("HTTP {status}: {text}").into());
    }
    Ok(serde_json::from_str(&text)?)
}
