-- Clear one recipient after the sender's unlock: pending code, failures, cooldown, sends.
-- The destination's send counter is kept: it guards the phone or mailbox across packages.
--
-- KEYS[1] challenge   KEYS[2] failure count   KEYS[3] resend cooldown   KEYS[4] recipient's sends
-- Returns the failure count there was.
local failures = tonumber(redis.call('GET', KEYS[2]) or '0')
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
return failures
