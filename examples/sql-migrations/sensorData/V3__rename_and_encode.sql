-- sensorData 2 -> 3: sensor_type renamed to sensor_kind (its chunks are carried over under the
-- new name), device_id dictionary-encoded (the Rust step RenameAndEncode, as SQL).
SELECT * REPLACE (arrow_cast(device_id, 'Dictionary(Int32, Utf8)') AS device_id)
         RENAME (sensor_type AS sensor_kind)
FROM input
