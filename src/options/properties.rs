//! Which librdkafka properties a server or user mapping may set, and who may set them.
//!
//! The model follows postgres_fdw's: any role with USAGE on the wrapper may create a
//! server or user mapping, so properties that could make the database server load code,
//! run commands, or read or write its files are for superusers only. Properties kafka_fdw
//! manages itself (how scans end, how offsets and groups are used) are refused for
//! everyone, since setting them would break exactness.

/// Who may set a property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Anyone,
    Superuser,
    /// kafka_fdw sets it itself; the text says what to use instead.
    Reserved(&'static str),
}

/// Harmless properties: connection tuning, batching, compression, TLS material given
/// inline (PEM), SASL credentials.
const ANYONE: &[&str] = &[
    "acks",
    "api.version.fallback.ms",
    "api.version.request",
    "api.version.request.timeout.ms",
    "batch.num.messages",
    "batch.size",
    "broker.address.family",
    "broker.address.ttl",
    "broker.version.fallback",
    "check.crcs",
    "client.dns.lookup",
    "client.id",
    "client.rack",
    "compression.codec",
    "compression.level",
    "compression.type",
    "connections.max.idle.ms",
    "delivery.timeout.ms",
    "enable.idempotence",
    "enable.ssl.certificate.verification",
    "fetch.error.backoff.ms",
    "fetch.max.bytes",
    "fetch.message.max.bytes",
    "fetch.min.bytes",
    "fetch.queue.backoff.ms",
    "linger.ms",
    "log_level",
    "max.in.flight",
    "max.in.flight.requests.per.connection",
    "max.partition.fetch.bytes",
    "message.copy.max.bytes",
    "message.max.bytes",
    "message.send.max.retries",
    "message.timeout.ms",
    "metadata.max.age.ms",
    "partitioner",
    "queue.buffering.backpressure.threshold",
    "queue.buffering.max.kbytes",
    "queue.buffering.max.messages",
    "queue.buffering.max.ms",
    "queued.max.messages.kbytes",
    "queued.min.messages",
    "receive.message.max.bytes",
    "reconnect.backoff.jitter.ms",
    "reconnect.backoff.max.ms",
    "reconnect.backoff.ms",
    "request.required.acks",
    "request.timeout.ms",
    "retries",
    "retry.backoff.max.ms",
    "retry.backoff.ms",
    "sasl.kerberos.principal",
    "sasl.kerberos.service.name",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.oauthbearer.client.id",
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.config",
    "sasl.oauthbearer.extensions",
    "sasl.oauthbearer.scope",
    "sasl.password",
    "sasl.username",
    "security.protocol",
    "socket.connection.setup.timeout.ms",
    "socket.keepalive.enable",
    "socket.max.fails",
    "socket.nagle.disable",
    "socket.receive.buffer.bytes",
    "socket.send.buffer.bytes",
    "socket.timeout.ms",
    "ssl.ca.pem",
    "ssl.certificate.pem",
    "ssl.cipher.suites",
    "ssl.curves.list",
    "ssl.endpoint.identification.algorithm",
    "ssl.key.password",
    "ssl.key.pem",
    "ssl.sigalgs.list",
    "sticky.partitioning.linger.ms",
    "topic.metadata.propagation.max.ms",
    "topic.metadata.refresh.fast.interval.ms",
    "topic.metadata.refresh.interval.ms",
    "topic.metadata.refresh.sparse",
    "transaction.timeout.ms",
];

/// Properties kafka_fdw sets itself, with what to use instead.
const RESERVED: &[(&str, &str)] = &[
    ("bootstrap.servers", "Use the server option \"brokers\"."),
    ("metadata.broker.list", "Use the server option \"brokers\"."),
    ("fetch.wait.max.ms", "Use the table option \"buffer_delay\"."),
    ("group.id", "kafka_fdw reads partitions by offset, without consumer groups."),
    ("group.instance.id", "kafka_fdw reads partitions by offset, without consumer groups."),
    ("group.protocol", "kafka_fdw reads partitions by offset, without consumer groups."),
    ("group.protocol.type", "kafka_fdw reads partitions by offset, without consumer groups."),
    ("group.remote.assignor", "kafka_fdw reads partitions by offset, without consumer groups."),
    ("partition.assignment.strategy", "kafka_fdw reads partitions by offset, without consumer groups."),
    ("session.timeout.ms", "kafka_fdw reads partitions by offset, without consumer groups."),
    ("heartbeat.interval.ms", "kafka_fdw reads partitions by offset, without consumer groups."),
    ("max.poll.interval.ms", "kafka_fdw reads partitions by offset, without consumer groups."),
    ("enable.auto.commit", "kafka_fdw commits no offsets; kafka_fdw.import stores them in PostgreSQL."),
    ("auto.commit.enable", "kafka_fdw commits no offsets; kafka_fdw.import stores them in PostgreSQL."),
    ("auto.commit.interval.ms", "kafka_fdw commits no offsets; kafka_fdw.import stores them in PostgreSQL."),
    ("enable.auto.offset.store", "kafka_fdw commits no offsets; kafka_fdw.import stores them in PostgreSQL."),
    ("auto.offset.reset", "Scans start at the offsets their conditions select."),
    ("enable.partition.eof", "Scans need end-of-partition events to end exactly."),
    ("delivery.report.only.error", "INSERT counts every delivery report."),
    ("transactional.id", "Use the option \"transactional\" of the server or table: kafka_fdw derives one id per backend and server."),
    ("isolation.level", "Use the option \"isolation_level\" of the server or table."),
];

/// Who may set librdkafka property `name` (assumed to exist).
pub fn access(name: &str) -> Access {
    if let Some((_, instead)) = RESERVED.iter().find(|(reserved, _)| *reserved == name) {
        return Access::Reserved(instead);
    }
    if name.starts_with("offset.store.") || name.contains("_cb") || is_pointer_property(name) {
        return Access::Reserved("It is not a text property.");
    }
    if ANYONE.contains(&name) {
        Access::Anyone
    } else {
        // Everything else: plugin.library.paths (loads code), sasl.kerberos.kinit.cmd
        // (runs a command), *.location and *.file (server files), ssl.engine.*,
        // internal.*, debug, OAuth endpoints (requests from the server), …
        Access::Superuser
    }
}

fn is_pointer_property(name: &str) -> bool {
    matches!(
        name,
        "opaque"
            | "default_topic_conf"
            | "interceptors"
            | "enabled_events"
            | "log.queue"
            | "ssl_ca"
            | "ssl_certificate"
            | "ssl_key"
            | "ssl_engine_callback_data"
            | "builtin.features"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dangerous_properties_are_for_superusers() {
        for name in [
            "plugin.library.paths",
            "sasl.kerberos.kinit.cmd",
            "sasl.kerberos.keytab",
            "ssl.ca.location",
            "ssl.key.location",
            "ssl.keystore.location",
            "ssl.engine.location",
            "ssl.engine.id",
            "sasl.oauthbearer.assertion.file",
            "sasl.oauthbearer.token.endpoint.url",
            "https.ca.location",
            "debug",
            "internal.termination.signal",
        ] {
            assert_eq!(access(name), Access::Superuser, "{name}");
        }
    }

    #[test]
    fn credentials_and_tuning_are_for_anyone() {
        for name in ["sasl.username", "sasl.password", "security.protocol", "ssl.ca.pem", "client.id", "fetch.max.bytes", "message.timeout.ms"] {
            assert_eq!(access(name), Access::Anyone, "{name}");
        }
    }

    #[test]
    fn what_kafka_fdw_manages_is_refused() {
        for name in ["bootstrap.servers", "group.id", "enable.partition.eof", "auto.offset.reset", "fetch.wait.max.ms", "dr_msg_cb", "offset.store.path", "opaque"] {
            assert!(matches!(access(name), Access::Reserved(_)), "{name}");
        }
    }
}
