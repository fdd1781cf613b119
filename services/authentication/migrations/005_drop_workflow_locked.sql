-- The workflow's lock (workflow.workflow_locked / workflow_unlocked) stops the owner's changes,
-- not the recipients (workflow refuses the owner's commands on a locked workflow; recipients
-- still open, sign and decline), so this service has no rule that reads it: the column was
-- written and never read.
ALTER TABLE packages DROP COLUMN workflow_locked;
