-- Memberships move into the profile row: `profiles.audiences` holds the profile's memberships
-- as `[[audience num, entered_at in µs since the epoch], ...]`. A separate row per membership
-- (and a second index to read them by profile) cost two scattered b-tree writes per entry or
-- exit, ten per event at five changes per event: most of what the processor wrote. Now an
-- entry or exit rewrites the profile row the event changes anyway. Listing an audience's
-- members scans profiles in id order; member counts are kept per audience.
--
-- Unqualified names: these tables are in `cdp` (or, in databases made before the CDP got its
-- own file, in main); SQLite finds them either way.
ALTER TABLE profiles ADD COLUMN audiences TEXT NOT NULL DEFAULT '[]';
ALTER TABLE audiences ADD COLUMN num INTEGER;
ALTER TABLE audiences ADD COLUMN member_count INTEGER NOT NULL DEFAULT 0;
-- Audience numbers are never reused (`audience_num` counts up), so an entry left in a profile
-- by a deleted audience can never be read as a member of a new one.
UPDATE audiences SET num = rowid;
INSERT OR REPLACE INTO cdp_state (key, value)
    SELECT 'audience_num', CAST(COALESCE(MAX(num), 0) AS TEXT) FROM audiences;
-- Times are stored as written by the store (RFC 3339, UTC, 6 fraction digits): exact in µs.
UPDATE profiles SET audiences = (
    SELECT json_group_array(json_array(a.num, unixepoch(substr(m.entered_at, 1, 19) || 'Z') * 1000000
                                       + CAST(substr(m.entered_at, 21, 6) AS INTEGER)))
      FROM memberships m JOIN audiences a ON a.id = m.audience_id
     WHERE m.profile_id = profiles.id)
 WHERE id IN (SELECT profile_id FROM memberships);
UPDATE audiences SET member_count = (SELECT COUNT(*) FROM memberships m WHERE m.audience_id = audiences.id);
DROP TABLE memberships;
