-- Which dose explains a report, and which dose each fact rests on, are recomputed by the engine
-- when a report is shown (from the stored doses and the rules version), instead of being stored
-- for every report: a million lists cost a third of a full re-triage.
ALTER TABLE triage_results DROP COLUMN links;
ALTER TABLE triage_results DROP COLUMN evidence;
