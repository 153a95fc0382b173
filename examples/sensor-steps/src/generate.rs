use std::io::Write;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_array::{ArrayRef, Float64Array, StringArray, TimestampMillisecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::errors::Result;
use parquet::file::properties::WriterProperties;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const SENSOR_TYPES: [&str; 10] = [
    "temperature",
    "humidity",
    "pressure",
    "vibration",
    "current",
    "voltage",
    "light",
    "sound",
    "flow",
    "gas",
];
const DEVICES: u32 = 500;
const READINGS: usize = 60;

/// Shape of a generated sensorData file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataSpec {
    /// Rows per file (139,000 in the reference case).
    pub rows: usize,
    /// Rows per row group (50,000).
    pub row_group_rows: usize,
    /// Seed; each file derives its own from it and its index, so files are reproducible.
    pub seed: u64,
}

impl Default for DataSpec {
    fn default() -> Self {
        Self {
            rows: 139_000,
            row_group_rows: 50_000,
            seed: 2019,
        }
    }
}

fn schema() -> SchemaRef {
    let mut fields = vec![
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new("device_id", DataType::Utf8, false),
        Field::new("sensor_type", DataType::Utf8, false),
        Field::new("x", DataType::Float64, true),
        Field::new("y", DataType::Float64, true),
    ];
    fields.extend((0..READINGS).map(|i| Field::new(format!("v{i:02}"), DataType::Float64, false)));
    Arc::new(Schema::new(fields))
}

/// Per-file generator state: the random source, the clock and the random walks.
struct Walk {
    rng: StdRng,
    ts: i64,
    readings: [f64; READINGS],
}

impl Walk {
    fn new(spec: &DataSpec, file: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(spec.seed ^ file.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let readings = std::array::from_fn(|_| rng.random_range(-50.0..50.0));
        Self {
            rng,
            // 2019-03-01T00:00:00Z plus a file's share of the day.
            ts: 1_551_398_400_000 + file as i64 * 720_000,
            readings,
        }
    }

    fn batch(&mut self, rows: usize) -> RecordBatch {
        let rng = &mut self.rng;
        let ts = TimestampMillisecondArray::from_iter_values((0..rows).map(|_| {
            self.ts += rng.random_range(1..20);
            self.ts
        }))
        .with_timezone("UTC");
        let device_id: StringArray = (0..rows)
            .map(|_| Some(format!("dev-{:05}", rng.random_range(0..DEVICES))))
            .collect();
        let sensor_type: StringArray = (0..rows)
            .map(|_| Some(SENSOR_TYPES[rng.random_range(0..SENSOR_TYPES.len())]))
            .collect();
        let mut coordinate = || -> Float64Array {
            (0..rows)
                .map(|_| match rng.random_range(0..10_000) {
                    0..10 => None,
                    10..13 => Some(0.0),
                    _ => Some(rng.random_range(-100.0..100.0)),
                })
                .collect()
        };
        let x = coordinate();
        let y = coordinate();
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(ts),
            Arc::new(device_id),
            Arc::new(sensor_type),
            Arc::new(x),
            Arc::new(y),
        ];
        for value in self.readings.iter_mut() {
            let walk: Float64Array = (0..rows)
                .map(|_| {
                    *value += rng.random_range(-0.5..0.5);
                    Some((*value * 1000.0).round() / 1000.0)
                })
                .collect();
            columns.push(Arc::new(walk));
        }
        RecordBatch::try_new(schema(), columns).expect("generated columns match the schema")
    }
}

/// One batch of `rows` rows of file `file` (tests that need data without Parquet).
pub fn generate_batch(spec: &DataSpec, file: u64, rows: usize) -> RecordBatch {
    Walk::new(spec, file).batch(rows)
}

/// Writes file number `file` of the data set as Snappy Parquet to `out`, one row group at a
/// time, so memory stays at one row group whatever the file size.
///
/// # Errors
/// Write errors from `out` or the encoder.
pub fn write_file<W: Write + Send>(spec: &DataSpec, file: u64, out: W) -> Result<W> {
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(spec.row_group_rows.max(1)))
        .build();
    let mut writer = ArrowWriter::try_new(out, schema(), Some(props))?;
    let mut walk = Walk::new(spec, file);
    let mut left = spec.rows;
    while left > 0 {
        let rows = left.min(spec.row_group_rows.max(1));
        writer.write(&walk.batch(rows))?;
        writer.flush()?;
        left -= rows;
    }
    writer.into_inner()
}

/// File number `file` of the data set, in memory.
///
/// ```
/// let spec = pqmigrate_sensor_steps::DataSpec { rows: 1000, row_group_rows: 400, seed: 1 };
/// let file = pqmigrate_sensor_steps::generate_file(&spec, 0);
/// assert_eq!(&file[..4], b"PAR1");
/// ```
pub fn generate_file(spec: &DataSpec, file: u64) -> Bytes {
    let out = write_file(spec, file, Vec::new()).expect("writing to memory does not fail");
    Bytes::from(out)
}
