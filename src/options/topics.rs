//! Which topics a foreign table reads and writes: one (`topic`), a list (`topics`), or
//! every topic whose name matches a regular expression (`topic_pattern`).

use regex::Regex;

use crate::error::{ErrorKind, FdwError, FdwResult};

/// The longest topic name Kafka accepts.
const MAX_TOPIC_NAME: usize = 249;

/// A table's topics, as its options name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topics {
    /// `topic 'a'`.
    One(String),
    /// `topics 'a,b,c'`: these, in this order.
    Listed(Vec<String>),
    /// `topic_pattern '…'`: the topics of the cluster whose whole name matches, looked up
    /// whenever a scan starts, so that topics created later are read too.
    Pattern(TopicPattern),
}

/// A regular expression a whole topic name must match, as Kafka Connect's
/// `topics.regex` (Java's `Pattern.matches`): `orders-.*` matches `orders-eu`, not
/// `old-orders-eu`.
#[derive(Debug, Clone)]
pub struct TopicPattern {
    source: String,
    whole_name: Regex,
}

impl PartialEq for TopicPattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for TopicPattern {}

impl TopicPattern {
    pub fn new(source: &str) -> FdwResult<Self> {
        // Checked as given, so that an error shows the user's pattern, not the anchored one.
        let anchored = Regex::new(source).and_then(|_| Regex::new(&format!("^(?:{source})$")));
        let whole_name = anchored.map_err(|error| {
            FdwError::new(ErrorKind::InvalidParameterValue, format!("invalid regular expression for option \"topic_pattern\": \"{source}\""))
                .with_detail(error.to_string())
        })?;
        Ok(TopicPattern { source: source.to_string(), whole_name })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether `topic` is one of the pattern's. Internal topics (`__consumer_offsets`,
    /// `__transaction_state`) never are, as consumers subscribed to a pattern exclude
    /// them (`exclude.internal.topics`).
    pub fn matches(&self, topic: &str) -> bool {
        !topic.starts_with("__") && self.whole_name.is_match(topic)
    }
}

impl Topics {
    /// `topics 'a, b'`: the names, each once.
    pub fn listed(value: &str) -> FdwResult<Topics> {
        let mut names: Vec<String> = Vec::new();
        for name in value.split(',').map(str::trim) {
            check_name("topics", name)?;
            if names.iter().any(|seen| seen == name) {
                return Err(FdwError::new(ErrorKind::InvalidParameterValue, format!("topic \"{name}\" is listed twice in option \"topics\"")));
            }
            names.push(name.to_string());
        }
        Ok(Topics::Listed(names))
    }

    /// `topic 'a'`.
    pub fn one(value: &str) -> FdwResult<Topics> {
        check_name("topic", value)?;
        Ok(Topics::One(value.to_string()))
    }

    /// The table's topic, if it has exactly one by definition (`topic`).
    pub fn single(&self) -> Option<&str> {
        match self {
            Topics::One(topic) => Some(topic),
            _ => None,
        }
    }

    /// Whether a row may be written to `topic` through the table.
    pub fn includes(&self, topic: &str) -> bool {
        match self {
            Topics::One(own) => own == topic,
            Topics::Listed(names) => names.iter().any(|name| name == topic),
            Topics::Pattern(pattern) => pattern.matches(topic),
        }
    }

    /// The topics read now, of those the cluster has (`cluster`, asked for only by a
    /// pattern): a pattern's in name order.
    pub fn resolve(&self, cluster: impl FnOnce() -> FdwResult<Vec<String>>) -> FdwResult<Vec<String>> {
        Ok(match self {
            Topics::One(topic) => vec![topic.clone()],
            Topics::Listed(names) => names.clone(),
            Topics::Pattern(pattern) => {
                let mut matching: Vec<String> = cluster()?.into_iter().filter(|topic| pattern.matches(topic)).collect();
                matching.sort();
                matching
            }
        })
    }

    /// EXPLAIN's label and value: `Kafka Topic: a`, `Kafka Topics: a, b`, `Kafka Topic
    /// Pattern: orders-.*`.
    pub fn explained(&self) -> (&'static str, String) {
        match self {
            Topics::One(topic) => ("Kafka Topic", topic.clone()),
            Topics::Listed(names) => ("Kafka Topics", names.join(", ")),
            Topics::Pattern(pattern) => ("Kafka Topic Pattern", pattern.source.clone()),
        }
    }

    /// For messages: `topic "a"`, `topics "a", "b"`, `topics matching "orders-.*"`.
    pub fn describe(&self) -> String {
        match self {
            Topics::One(topic) => format!("topic \"{topic}\""),
            Topics::Listed(names) => format!("topics {}", names.iter().map(|name| format!("\"{name}\"")).collect::<Vec<_>>().join(", ")),
            Topics::Pattern(pattern) => format!("topics matching \"{}\"", pattern.source),
        }
    }
}

/// Kafka's rule for topic names: 1 to 249 of ASCII letters, digits, `.`, `_` and `-`.
fn check_name(option: &str, name: &str) -> FdwResult<()> {
    let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name.len() > MAX_TOPIC_NAME || !name.chars().all(legal) || name == "." || name == ".." {
        return Err(FdwError::new(ErrorKind::InvalidParameterValue, format!("invalid topic name \"{name}\" in option \"{option}\""))
            .with_hint("Kafka topic names are 1 to 249 ASCII letters, digits, \".\", \"_\" and \"-\"."));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_matches_whole_names_and_never_internal_topics() {
        let pattern = TopicPattern::new("orders-.*").unwrap();
        assert!(pattern.matches("orders-eu"));
        assert!(!pattern.matches("old-orders-eu"));
        assert!(!pattern.matches("orders"));
        assert!(TopicPattern::new(".*").unwrap().matches("a") && !TopicPattern::new(".*").unwrap().matches("__consumer_offsets"));
        // An alternation is anchored as a whole.
        let either = TopicPattern::new("a|b").unwrap();
        assert!(either.matches("a") && either.matches("b") && !either.matches("ab"));
        let error = TopicPattern::new("orders-(").unwrap_err();
        assert_eq!(error.message, "invalid regular expression for option \"topic_pattern\": \"orders-(\"");
        assert!(error.detail.is_some());
    }

    #[test]
    fn listed_topics_are_trimmed_legal_and_distinct() {
        assert_eq!(Topics::listed("a, b ,c").unwrap(), Topics::Listed(vec!["a".into(), "b".into(), "c".into()]));
        assert_eq!(Topics::listed("a,a").unwrap_err().message, "topic \"a\" is listed twice in option \"topics\"");
        for bad in ["a,,b", "a b", "a/b", "..", &"x".repeat(250)] {
            assert!(Topics::listed(bad).is_err(), "{bad}");
        }
        assert!(Topics::one("ok.topic_name-1").is_ok());
        assert!(Topics::one("").is_err());
    }

    #[test]
    fn resolving_asks_the_cluster_only_for_a_pattern() {
        let never = || -> FdwResult<Vec<String>> { panic!("a list is not looked up") };
        assert_eq!(Topics::listed("b,a").unwrap().resolve(never).unwrap(), vec!["b", "a"]);
        assert_eq!(Topics::one("t").unwrap().resolve(never).unwrap(), vec!["t"]);
        let pattern = Topics::Pattern(TopicPattern::new("t-.*").unwrap());
        let cluster = || Ok(vec!["t-2".to_string(), "u".into(), "t-1".into(), "__t-0".into()]);
        assert_eq!(pattern.resolve(cluster).unwrap(), vec!["t-1", "t-2"]);
        assert!(pattern.includes("t-9") && !pattern.includes("u"));
        assert_eq!(pattern.describe(), "topics matching \"t-.*\"");
        assert_eq!(Topics::listed("a,b").unwrap().describe(), "topics \"a\", \"b\"");
    }
}
