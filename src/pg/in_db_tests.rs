//! Tests that need a running backend (`cargo pgrx test`): catalog reading and the
//! validator as PostgreSQL calls them. Scans are covered by the SQL regression tests,
//! which have a broker.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    use crate::pg::catalog;
    use crate::codec::{ColumnType, Format};
    use crate::options::layout::ColumnSource;
    use crate::options::MetaColumn;

    fn create_table() -> pg_sys::Oid {
        Spi::run("CREATE SERVER s FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers 'b:1', timeout_ms '1234')").unwrap();
        Spi::run(
            "CREATE FOREIGN TABLE t (
                 a int,
                 p smallint OPTIONS (partition 'true'),
                 gone int,
                 o bigint OPTIONS (offset 'true'),
                 b text
             ) SERVER s OPTIONS (topic 'events', format 'json', batch_size '7')",
        )
        .unwrap();
        Spi::run("ALTER FOREIGN TABLE t DROP COLUMN gone").unwrap();
        Spi::get_one::<pg_sys::Oid>("SELECT 't'::regclass::oid").unwrap().unwrap()
    }

    #[pg_test]
    fn the_definition_is_read_from_the_catalogs() {
        let relid = create_table();
        // SAFETY: inside a transaction; the relation is opened and closed here.
        let definition = unsafe {
            let relation = pg_sys::relation_open(relid, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
            let definition = catalog::foreign_table(relation);
            pg_sys::relation_close(relation, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
            definition
        };
        assert_eq!(definition.server.brokers, "b:1");
        assert_eq!(definition.server.timeout.as_millis(), 1234);
        assert_eq!(definition.table.topics.single(), Some("events"));
        assert_eq!(definition.table.format, Format::Json);
        assert_eq!(definition.table.batch_size, 7);
        assert_eq!(
            definition.layout.columns,
            vec![
                ColumnSource::Field(0),
                ColumnSource::Meta(MetaColumn::Partition, ColumnType::SmallInt),
                ColumnSource::Dropped,
                ColumnSource::Meta(MetaColumn::Offset, ColumnType::BigInt),
                ColumnSource::Field(1)
            ]
        );
    }

    #[pg_test]
    fn only_tables_of_this_wrapper_are_kafka_tables() {
        let relid = create_table();
        Spi::run("CREATE TABLE heap (x int)").unwrap();
        let heap = Spi::get_one::<pg_sys::Oid>("SELECT 'heap'::regclass::oid").unwrap().unwrap();
        // SAFETY: inside a transaction.
        unsafe {
            assert!(catalog::is_kafka_table(relid));
            assert!(!catalog::is_kafka_table(heap));
        }
    }

    #[pg_test(error = "invalid option \"bogus\"")]
    fn the_validator_runs_at_create_server() {
        Spi::run("CREATE SERVER s FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers 'b:1', bogus '1')").unwrap();
    }

    #[pg_test(error = "option \"topic\" is required for a kafka_fdw foreign table")]
    fn the_validator_runs_at_alter_foreign_table() {
        create_table();
        Spi::run("ALTER FOREIGN TABLE t OPTIONS (DROP topic)").unwrap();
    }

    #[pg_test(error = "column \"o\" with option \"offset\" must be of type bigint")]
    fn column_types_are_checked_after_alter() {
        create_table();
        Spi::run("ALTER FOREIGN TABLE t ALTER COLUMN o TYPE int").unwrap();
    }
}
