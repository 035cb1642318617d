-- An event's Kinesis origin in typed columns instead of a JSON object in `origin`: writing
-- that JSON for every imported record (~230 bytes, its strings escaped by serde_json) was ~3 %
-- of the import's CPU and ~15 % of the bytes written per 1 KiB record. All NULL for events
-- that did not come from Kinesis (POST /api/collect); `kinesis_stream` says which is which.
--
-- `arrival_ns`: ApproximateArrivalTimestamp in nanoseconds since the Unix epoch (NULL when
-- unknown). Kinesis sends milliseconds, but as an epoch-seconds float that the AWS SDK turns
-- into nanoseconds with the float's error (…20.123 → …20.122999906), and the API has always
-- shown the time exactly as received; nanoseconds keep it so. i64 nanoseconds reach 2262.
ALTER TABLE events ADD COLUMN kinesis_stream TEXT;
ALTER TABLE events ADD COLUMN shard_id TEXT;
ALTER TABLE events ADD COLUMN sequence_number TEXT;
ALTER TABLE events ADD COLUMN sub_sequence_number INTEGER;
ALTER TABLE events ADD COLUMN partition_key TEXT;
ALTER TABLE events ADD COLUMN arrival_ns INTEGER;

-- Existing rows: the columns from their JSON, which is cleared in the same write so the row
-- does not grow (and split its page) on the way. The timestamps were written by chrono as
-- `YYYY-MM-DDTHH:MM:SS[.fff[fff[fff]]]Z`: whole seconds from the first 19 characters, then the
-- fraction's digits padded to nine. (SQLite's own date functions round to milliseconds.)
UPDATE events
   SET kinesis_stream      = json_extract(origin, '$.stream'),
       shard_id            = json_extract(origin, '$.shard_id'),
       sequence_number     = json_extract(origin, '$.sequence_number'),
       sub_sequence_number = json_extract(origin, '$.sub_sequence_number'),
       partition_key       = json_extract(origin, '$.partition_key'),
       arrival_ns          = (
           SELECT CASE
                      WHEN unixepoch(substr(t, 1, 19)) BETWEEN -9223372036 AND 9223372035
                      THEN unixepoch(substr(t, 1, 19)) * 1000000000
                           + CASE
                                 WHEN substr(t, 20, 1) = '.'
                                 THEN CAST(substr(substr(t, 21, length(t) - 21) || '000000000', 1, 9) AS INTEGER)
                                 ELSE 0
                             END
                  END
             FROM (SELECT json_extract(origin, '$.approximate_arrival_timestamp') AS t)
            WHERE substr(t, -1) = 'Z'
       ),
       origin              = NULL
 WHERE origin IS NOT NULL;

-- `origin` is no longer written or read: always NULL from here on.
ALTER TABLE events DROP COLUMN origin;
