//! The whole client against slow, silent and down brokers, and interrupted waits.

use std::time::{Duration, Instant};

use super::*;
use super::testing::*;
use super::config::*;
use super::metadata::*;
use super::reader::*;
use super::sender::*;

/// Everything a statement asks of Kafka, against a cluster of two brokers that each
/// take `rtt` to answer; the answers, to compare across round-trip times.
#[allow(clippy::type_complexity)]
fn everything_at_round_trip(
    rtt: Duration,
) -> (Vec<i32>, Vec<Watermarks>, Vec<(i32, Option<i64>)>, Vec<(i32, i64, String)>, Vec<(i32, i64, String)>, u64, Vec<Watermarks>) {
    let mock = mock_cluster(2);
    let cluster = mock.cluster();
    cluster.create_topic("slow", 3, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let lines: Vec<String> = (0..30).map(|i| format!("m{i}")).collect();
    produce(&brokers, "slow", 0, &lines);
    produce(&brokers, "slow", 2, &lines[..4]);
    for broker in 0..=2 {
        cluster.broker_round_trip_time(broker, rtt).unwrap();
    }
    let mut settings = test_settings(&brokers);
    settings.timeout = Duration::from_secs(10);
    let consumer = new_consumer(&settings).unwrap();
    let partitions = topic_partitions(&consumer, &settings, "slow").unwrap();
    let marks = watermarks(&consumer, &settings, "slow", &partitions).unwrap();
    // The mock cluster has no time index: it answers "no such message" (-1).
    let by_time = offsets_for_time(&consumer, &settings, "slow", &partitions, 0).unwrap();
    let ranges: Vec<ReadRange> = marks.iter().map(|w| ReadRange { partition: w.partition, start: w.low, end: w.high }).collect();
    let mut reader = RangeReader::new(consumer, settings.clone(), "slow", &ranges).unwrap();
    let mut all = read_all(&mut reader);
    all.sort();
    reader.restart(&[ReadRange { partition: 2, start: 3, end: 4 }]).unwrap();
    let one = read_all(&mut reader);
    let producer = new_producer(&settings).unwrap();
    let mut sender = Sender::new(&producer, settings.clone(), "slow");
    for i in 0..10 {
        sender.send(Outgoing { partition: Some(i % 3), payload: Some(b"new"), ..Outgoing::default() }).unwrap();
    }
    let produced = sender.finish().unwrap();
    let after = watermarks(reader.consumer(), &settings, "slow", &partitions).unwrap();
    (partitions, marks, by_time, all, one, produced, after)
}

fn assert_same_as_without_delay(rtt: Duration) {
    let started = Instant::now();
    let slow = everything_at_round_trip(rtt);
    let took = started.elapsed();
    let fast = everything_at_round_trip(Duration::ZERO);
    assert_eq!(slow, fast);
    assert_eq!(fast.0, vec![0, 1, 2]);
    assert_eq!(fast.1[0], Watermarks { partition: 0, low: 0, high: 30 });
    assert_eq!(fast.2, vec![(0, None), (1, None), (2, None)]);
    assert_eq!(fast.3.len(), 34);
    assert_eq!(fast.4, vec![(2, 3, "m3".to_string())]);
    assert_eq!(fast.5, 10);
    assert_eq!(fast.6.iter().map(|w| w.high).sum::<i64>(), 44);
    eprintln!("round trip {rtt:?}: took {took:?}");
}

#[test]
fn a_300_ms_round_trip_changes_no_answer() {
    assert_same_as_without_delay(Duration::from_millis(300));
}

#[test]
fn a_1000_ms_round_trip_changes_no_answer() {
    assert_same_as_without_delay(Duration::from_millis(1000));
}

#[test]
fn a_silent_broker_fails_every_call_within_the_timeout() {
    let (_listener, brokers) = silent_broker();
    let mut settings = test_settings(&brokers);
    settings.timeout = Duration::from_millis(700);
    let timeout = settings.timeout;
    let consumer = new_consumer(&settings).unwrap();
    assert_fails_in_time("topic_partitions", timeout, || topic_partitions(&consumer, &settings, "t"));
    assert_fails_in_time("watermarks", timeout, || watermarks(&consumer, &settings, "t", &[0, 1]));
    assert_fails_in_time("offsets_for_time", timeout, || offsets_for_time(&consumer, &settings, "t", &[0], 5));
    assert_fails_in_time("all_topics", timeout, || all_topics(&consumer, &settings));
    assert_fails_in_time("commit_group_offsets", timeout, || commit_group_offsets(&consumer, &settings, "g", "t", &[(0, 1)]));
    assert_fails_in_time("group_offsets", timeout, || group_offsets(&consumer, &settings, "g", "t", &[0]));
    let mut reader =
        RangeReader::new(&consumer, settings.clone(), "t", &[ReadRange { partition: 0, start: 0, end: 5 }]).unwrap();
    assert_fails_in_time("next_message", timeout, || reader.next_message().map(|m| m.is_some()));
    // Messages fail at message.timeout.ms, found by librdkafka's scan once a second.
    let producer = new_producer(&settings).unwrap();
    let mut sender = Sender::new(&producer, settings.clone(), "t");
    let started = Instant::now();
    sender.send(Outgoing { partition: Some(0), payload: Some(b"x"), ..Outgoing::default() }).unwrap();
    let error = sender.finish().unwrap_err();
    assert!(error.message.starts_with("1 of 1 messages to Kafka topic \"t\" were not confirmed"), "{error}");
    assert!(started.elapsed() < timeout + Duration::from_millis(1500), "took {:?}", started.elapsed());
}

#[test]
fn a_down_mock_broker_fails_the_calls_within_the_timeout() {
    let mock = mock_cluster(1);
    let cluster = mock.cluster();
    cluster.create_topic("t", 2, 1).unwrap();
    let mut settings = test_settings(&cluster.bootstrap_servers());
    settings.timeout = Duration::from_millis(700);
    let consumer = new_consumer(&settings).unwrap();
    assert_eq!(topic_partitions(&consumer, &settings, "t").unwrap(), vec![0, 1]);
    for broker in 0..=1 {
        cluster.broker_down(broker).unwrap();
    }
    assert_fails_in_time("topic_partitions", settings.timeout, || topic_partitions(&consumer, &settings, "t"));
    assert_fails_in_time("watermarks", settings.timeout, || watermarks(&consumer, &settings, "t", &[0, 1]));
    for broker in 0..=1 {
        cluster.broker_up(broker).unwrap();
    }
    // The client reconnects with its own backoff, which can outlast the short timeout above.
    let mut patient = settings.clone();
    patient.timeout = Duration::from_secs(15);
    assert_eq!(watermarks(&consumer, &patient, "t", &[0]).unwrap(), vec![Watermarks { partition: 0, low: 0, high: 0 }]);
}

thread_local! {
    /// Interrupt checks left before [`panicking_interrupt`] unwinds; `u32::MAX` never.
    static INTERRUPTS_LEFT: std::cell::Cell<u32> = const { std::cell::Cell::new(u32::MAX) };
    static INTERRUPTS_SEEN: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    static UNWOUND_AT: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

const CANCEL: &str = "canceling statement due to user request";

/// Like CHECK_FOR_INTERRUPTS with a cancel pending after a few checks.
fn panicking_interrupt() {
    INTERRUPTS_SEEN.with(|seen| seen.set(seen.get() + 1));
    INTERRUPTS_LEFT.with(|left| match left.get() {
        u32::MAX => {}
        0 => {
            UNWOUND_AT.with(|at| at.set(Some(Instant::now())));
            std::panic::panic_any(CANCEL)
        }
        n => left.set(n - 1),
    });
}

/// Runs `call` with the interrupt armed to unwind at its `checks`+1st check; how long
/// it took until the interrupt unwound. (Unwinding itself can take a while in a test
/// binary: with RUST_BACKTRACE set, the panic hook symbolizes a backtrace.)
fn unwinds_after<T>(checks: u32, call: impl FnOnce() -> T) -> Duration {
    // The test's own cancels print nothing: a backtrace takes seconds to symbolize.
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() != Some(&CANCEL) {
                default(info)
            }
        }));
    });
    INTERRUPTS_LEFT.with(|left| left.set(checks));
    UNWOUND_AT.with(|at| at.set(None));
    let started = Instant::now();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(call));
    let unwound = started.elapsed();
    INTERRUPTS_LEFT.with(|left| left.set(u32::MAX));
    assert!(outcome.is_err(), "the interrupt did not unwind");
    // Bounded by the request in flight, if any (all_topics), so by the timeout.
    assert!(unwound < Duration::from_secs(10), "unwinding took {unwound:?}");
    UNWOUND_AT.with(|at| at.get()).expect("the interrupt unwound") - started
}

#[test]
fn interrupts_are_checked_while_waiting_and_unwinding_is_safe() {
    let mock = mock_cluster(1);
    let cluster = mock.cluster();
    cluster.create_topic("t", 2, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    produce(&brokers, "t", 1, &["a".to_string()]);
    let mut settings = test_settings(&brokers);
    settings.timeout = Duration::from_secs(10);
    settings.interrupt = panicking_interrupt;
    let consumer = new_consumer(&settings).unwrap();
    // Answers take 1.5 s: every call below is in flight when the interrupt unwinds.
    for broker in 0..=1 {
        cluster.broker_round_trip_time(broker, Duration::from_millis(1500)).unwrap();
    }
    let took = unwinds_after(2, || topic_partitions(&consumer, &settings, "t"));
    assert!(took < Duration::from_millis(500), "took {took:?}");
    let took = unwinds_after(2, || watermarks(&consumer, &settings, "t", &[0, 1]));
    assert!(took < Duration::from_millis(500), "took {took:?}");
    let took = unwinds_after(2, || offsets_for_time(&consumer, &settings, "t", &[0, 1], 0));
    assert!(took < Duration::from_millis(500), "took {took:?}");
    // The list of all topics is a synchronous request on a helper thread: the
    // interrupt is seen as quickly, but unwinds only once the request ended.
    let took = unwinds_after(2, || all_topics(&consumer, &settings));
    assert!(took < Duration::from_millis(500), "took {took:?}");
    // The abandoned requests' answers arrive later, to queues that are gone; the
    // same client goes on working.
    assert_eq!(topic_partitions(&consumer, &settings, "t").unwrap(), vec![0, 1]);
    std::thread::sleep(Duration::from_millis(1600));
    assert_eq!(
        watermarks(&consumer, &settings, "t", &[0, 1]).unwrap(),
        vec![Watermarks { partition: 0, low: 0, high: 0 }, Watermarks { partition: 1, low: 0, high: 1 }]
    );
    // Waits check for interrupts at least every POLL_SLICE.
    INTERRUPTS_SEEN.with(|seen| seen.set(0));
    let started = Instant::now();
    topic_partitions(&consumer, &settings, "t").unwrap();
    let checks = INTERRUPTS_SEEN.with(|seen| seen.get()) as u128;
    assert!(checks + 1 >= started.elapsed().as_millis() / POLL_SLICE.as_millis(), "{checks} checks in {:?}", started.elapsed());
}

#[test]
fn an_interrupt_against_a_silent_broker_unwinds_at_once() {
    let (_listener, brokers) = silent_broker();
    let mut settings = test_settings(&brokers);
    settings.timeout = Duration::from_secs(30);
    settings.interrupt = panicking_interrupt;
    let consumer = new_consumer(&settings).unwrap();
    for (what, took) in [
        ("topic_partitions", unwinds_after(3, || topic_partitions(&consumer, &settings, "t"))),
        ("watermarks", unwinds_after(3, || watermarks(&consumer, &settings, "t", &[0]))),
        ("offsets_for_time", unwinds_after(3, || offsets_for_time(&consumer, &settings, "t", &[0], 1))),
    ] {
        assert!(took < Duration::from_millis(500), "{what} took {took:?}");
    }
    drop(consumer);
}

#[test]
fn a_readers_wait_for_distant_brokers_is_timed() {
    let mock = mock_cluster(1);
    let cluster = mock.cluster();
    cluster.create_topic("far", 1, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let lines: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    produce(&brokers, "far", 0, &lines);
    let settings = test_settings(&brokers);
    let consumer = new_consumer(&settings).unwrap();
    for broker in 0..=1 {
        cluster.broker_round_trip_time(broker, Duration::from_millis(200)).unwrap();
    }
    let started = Instant::now();
    let mut reader = RangeReader::new(consumer, settings, "far", &[ReadRange { partition: 0, start: 0, end: 10 }]).unwrap();
    assert_eq!(read_all(&mut reader).len(), 10);
    let took = started.elapsed();
    // At least the fetch's round trip, and no more than the whole read.
    assert!(reader.waited >= Duration::from_millis(200) && reader.waited <= took, "waited {:?} of {took:?}", reader.waited);
}
