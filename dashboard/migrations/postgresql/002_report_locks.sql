-- Actions on the same open report serialise on its row here: every action bumps the counter in
-- its transaction, so two nurses acting at once conflict, one retries, and the retry sees the
-- other's action (who acknowledged first is then never ambiguous).
ALTER TABLE open_reports ADD COLUMN actions INTEGER NOT NULL DEFAULT 0;
