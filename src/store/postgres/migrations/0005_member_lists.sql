-- Member lists in the profile row (bench/README.md, "Member lists in the profile row").
--
-- A row per membership cost a processor batch a heap row and two index entries per audience
-- a profile entered, a delete per one it left (~5 per event in the cdp bench), and every read
-- of profiles with their lists a join. A batch rewrites the profiles it touched anyway: their
-- lists now go in the same row version. `audience_nums`: the numbers (`audiences.num`, never
-- reused) of the profile's audiences, ascending; `entered_ats`: when it entered each. NULL for
-- none. Entries of a deleted audience stay until the list is next written and are never read
-- (postgres/members.rs).
--
-- Upgrading: nodes of an earlier version read `memberships`, which this drops; stop every node,
-- then start the new version (README, "Several nodes on PostgreSQL").
ALTER TABLE profiles ADD COLUMN audience_nums INT8[], ADD COLUMN entered_ats TIMESTAMPTZ[];

UPDATE profiles p
   SET audience_nums = l.nums, entered_ats = l.ats
  FROM (SELECT m.profile_id,
               array_agg(a.num ORDER BY a.num) AS nums,
               array_agg(m.entered_at ORDER BY a.num) AS ats
          FROM memberships m JOIN audiences a ON a.id = m.audience_id
         GROUP BY m.profile_id) l
 WHERE p.id = l.profile_id;

-- An audience's members: the profiles whose list holds its number. New entries go to the
-- index's pending list (fastupdate, the default) and are merged into it in bulk.
CREATE INDEX profiles_by_audience ON profiles USING gin (audience_nums);

DROP TABLE memberships;
