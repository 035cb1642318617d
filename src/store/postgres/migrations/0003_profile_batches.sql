-- What a profile batch writes, made cheaper (bench/README.md, "PostgreSQL, one node").
--
-- A batch writes thousands of memberships. The foreign key to `audiences` checked (and
-- locked) the audience once per row, 40 % of a membership insert's time; the batch now locks
-- its audiences once (FOR KEY SHARE, postgres/profiles.rs), and deleting an audience deletes
-- its memberships in the same transaction (postgres/catalog.rs).
ALTER TABLE memberships DROP CONSTRAINT memberships_audience_id_fkey;

-- Every batch rewrites the state of the profiles it touched. Room left in each page lets the
-- new row version stay on its page (a HOT update: no new index entry, the old one pruned in
-- place) instead of adding a primary-key entry per update. Applies to pages written from now.
ALTER TABLE profiles SET (fillfactor = 80);
