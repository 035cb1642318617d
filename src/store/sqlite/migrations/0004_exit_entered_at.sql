-- An exit remembers when its membership began, so trigger records carry both times.
ALTER TABLE audience_changes ADD COLUMN entered_at TEXT;
