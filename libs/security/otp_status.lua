-- Read one recipient's OTP state in one step (a consistent snapshot).
--
-- KEYS[1] recipient's challenge (hash)   KEYS[2] failure count (string)
-- KEYS[3] resend cooldown (string: epoch ms)
--
-- Returns {failures, cooldown until ms or '', challenge id, issued at, expires at, channel,
-- masked destination}; the challenge fields are '' when no code is pending.
local challenge = redis.call('HMGET', KEYS[1], 'challenge_id', 'issued_at', 'expires_at',
  'channel', 'destination')
local result = {redis.call('GET', KEYS[2]) or '0', redis.call('GET', KEYS[3]) or ''}
for i = 1, 5 do
  result[i + 2] = challenge[i] or ''
end
return result
