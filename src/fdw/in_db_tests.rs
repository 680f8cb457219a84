//! Tests that need a running backend (`cargo pgrx test`): typed values put into columns
//! without their input function (`codec::native`) against the input function reading
//! their text, the path every other value takes.

#[pgrx::pg_schema]
mod tests {
    use std::ffi::{CStr, CString};

    use pgrx::prelude::*;

    use crate::codec::native::{self, Native, Target};
    use crate::fdw::row::{cell_datum, native_target};
    use crate::pg::encoding;

    /// xorshift64*: repeatable random values without a dependency.
    struct Random(u64);

    impl Random {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn pick<T: Copy>(&mut self, values: &[T]) -> T {
            values[self.below(values.len() as u64) as usize]
        }
    }

    const EDGE_INTEGERS: [i64; 12] = [0, -1, 1, -32769, -32768, 32767, 32768, -2_147_483_649, -2_147_483_648, 2_147_483_647, 2_147_483_648, i64::MIN];
    /// 0001-01-01 and 9999-12-31 (and the days either side), 1970-01-01, 2000-01-01, leap days.
    const EDGE_DAYS: [i32; 10] = [-719_163, -719_162, 2_932_896, 2_932_897, 0, 10_957, 11_016, -25_508, i32::MIN, i32::MAX];
    const TEXTS: [&str; 8] = ["", "plain", "é ü ß", "日本語", "🎉 surrogate pair", "a\0b", "  padded  ", "'quoted' \"and\" \\slashed"];

    fn random_value(random: &mut Random) -> Native<'static> {
        const MICROS_PER_DAY: i64 = 86_400_000_000;
        match random.below(7) {
            0 => Native::Boolean(random.below(2) == 1),
            1 if random.below(2) == 0 => Native::Integer(random.pick(&EDGE_INTEGERS)),
            1 => Native::Integer((random.next() as i64) >> random.below(64)),
            2 if random.below(3) == 0 => Native::Float(random.pick(&[0.1f32, -0.0, 1e-45, 3.4028235e38, f32::NAN, f32::INFINITY])),
            2 => Native::Float(f32::from_bits(random.next() as u32)),
            3 if random.below(3) == 0 => Native::Double(random.pick(&[0.1f64, -0.0, 5e-324, 1e308, f64::NAN, f64::NEG_INFINITY, 1e22])),
            3 => Native::Double(f64::from_bits(random.next())),
            4 => Native::Text(random.pick(&TEXTS)),
            5 if random.below(2) == 0 => Native::Date(random.pick(&EDGE_DAYS)),
            5 => Native::Date(random.below(3_700_000) as i32 - 750_000),
            _ => {
                let micros = if random.below(3) == 0 {
                    i64::from(random.pick(&EDGE_DAYS)) * MICROS_PER_DAY + random.pick(&[-1, 0, 1])
                } else {
                    (random.below(3_700_000) as i64 - 750_000) * MICROS_PER_DAY + random.below(MICROS_PER_DAY as u64) as i64
                };
                Native::Timestamp(micros, random.below(2) == 1)
            }
        }
    }

    /// The text a column's output function writes for `datum`.
    fn output(type_oid: pg_sys::Oid, datum: pg_sys::Datum) -> String {
        // SAFETY: `datum` is a value of `type_oid`; the function returns a palloc'd C string.
        unsafe {
            let (mut function, mut varlena) = (pg_sys::Oid::INVALID, false);
            pg_sys::getTypeOutputInfo(type_oid, &mut function, &mut varlena);
            CStr::from_ptr(pg_sys::OidOutputFunctionCall(function, datum)).to_string_lossy().into_owned()
        }
    }

    /// The datum `type_oid`'s input function makes of `text` (an ERROR fails the test).
    fn input(type_oid: pg_sys::Oid, text: &str) -> pg_sys::Datum {
        let text = CString::new(text).expect("values with NUL take the text path");
        // SAFETY: the input function of `type_oid` reads a NUL-terminated string.
        unsafe {
            let (mut function, mut io_param) = (pg_sys::Oid::INVALID, pg_sys::Oid::INVALID);
            pg_sys::getTypeInputInfo(type_oid, &mut function, &mut io_param);
            pg_sys::OidInputFunctionCall(function, text.as_ptr() as *mut _, io_param, -1)
        }
    }

    /// 100,000 random values of every typed kind, edge values among them, into every
    /// column type that takes them: wherever a value goes in without the input function,
    /// the datum is the one the input function makes of its text (same bits for types
    /// passed by value, same output text for all).
    #[pg_test]
    fn typed_values_fill_columns_as_their_input_functions_read_their_text() {
        // A zone other than UTC: a local timestamp into timestamptz would differ.
        Spi::run("SET TimeZone = 'Asia/Kolkata'").unwrap();
        let types = [
            pg_sys::INT2OID,
            pg_sys::INT4OID,
            pg_sys::INT8OID,
            pg_sys::FLOAT4OID,
            pg_sys::FLOAT8OID,
            pg_sys::BOOLOID,
            pg_sys::TEXTOID,
            pg_sys::DATEOID,
            pg_sys::TIMESTAMPOID,
            pg_sys::TIMESTAMPTZOID,
        ];
        let targets: Vec<(pg_sys::Oid, Target)> = types.iter().filter_map(|&oid| Some((oid, native_target(oid, -1)?))).collect();
        // Text goes in typed only where it needs no conversion.
        assert_eq!(targets.len(), if encoding::database_is_utf8() { 10 } else { 9 });
        assert_eq!(native_target(pg_sys::TIMESTAMPOID, 3), None, "a type modifier takes the input function");
        let mut random = Random(0x5eed_0f7e_57da_7a01);
        let mut filled = vec![0usize; targets.len()];
        for round in 0..100_000 {
            let value = random_value(&mut random);
            for (i, &(type_oid, target)) in targets.iter().enumerate() {
                let Some(cell) = native::cell(target, &value) else { continue };
                filled[i] += 1;
                let typed = cell_datum(cell);
                let read = input(type_oid, &value.text());
                if type_oid != pg_sys::TEXTOID {
                    assert_eq!(typed.value(), read.value(), "round {round}: {value:?} into {target:?}");
                }
                assert_eq!(output(type_oid, typed), output(type_oid, read), "round {round}: {value:?} into {target:?}");
            }
        }
        for ((_, target), count) in targets.iter().zip(&filled) {
            assert!(*count > 2_000, "{target:?}: only {count} values went in typed");
        }
    }
}
