//! The one Schema Registry call `produce-avro` makes: registering its schema.

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

use crate::registry::{Credentials, CONTENT_TYPE};
use crate::Result;

/// Registers an Avro schema under `subject` and returns its id (the same id every time
/// the same schema is registered).
pub fn register(base_url: &str, subject: &str, schema: &str, credentials: Option<&Credentials>) -> Result<u32> {
    let url = format!("{}/subjects/{}/versions", base_url.trim_end_matches('/'), utf8_percent_encode(subject, NON_ALPHANUMERIC));
    let body = serde_json::json!({ "schema": schema }).to_string();
    let mut request = ureq::post(&url)
        .config()
        // Error answers carry the registry's explanation: read them rather than fail early.
        .http_status_as_error(false)
        .build()
        .header("Content-Type", CONTENT_TYPE)
        .header("Accept", CONTENT_TYPE);
    if let Some(credentials) = credentials {
        request = request.header("Authorization", credentials.authorization());
    }
    let mut response = request.send(body.as_str())?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string()?;
    if status != 200 {
        return Err(format!("registering under subject {subject} at {base_url}: HTTP {status}: {text}").into());
    }
    let answer: serde_json::Value = serde_json::from_str(&text)?;
    let id = answer.get("id").and_then(serde_json::Value::as_u64).ok_or_else(|| format!("no id in the registry's answer {text}"))?;
    Ok(u32::try_from(id)?)
}
