-- Profile states are written in their binary form (`ProfileState::encode`, tributary-lang's
-- codec.rs) as BLOBs in `profiles.state`, a third of the JSON's size and read without a
-- parser: the profile processor reads and rewrites one state per event. Rows written as JSON
-- text stay as they are and are read as before; each is rewritten in binary when its profile
-- next changes, so nothing has to be converted here (SQLite keeps a BLOB in a TEXT column as
-- is). This migration only records the change of format.
SELECT 1;
