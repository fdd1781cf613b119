-- Admit one checked TOTP code of one subject under its ceiling of wrong codes
-- (libs/security/totp.py, `GuessCeiling`): decided atomically once the code was compared, so
-- codes checked at once from any number of packages, logins and replicas never get more than
-- the ceiling's wrong answers between them.
--
-- KEYS[1] the subject's recent wrong codes (sorted set: attempt id -> when it was counted, ms)
-- ARGV[1] the attempt id   ARGV[2] now, ms   ARGV[3] the window, ms   ARGV[4] the ceiling
-- ARGV[5] 1: the code was wrong (count it), 0: right, or not compared (count nothing)
--
-- Returns {1, 0}: admitted (a wrong code counted, or counted before for this same attempt,
-- delivered again); {0, retry_after_ms}: the ceiling is reached, the code's answer must be the
-- refusal whatever the code was, and nothing was counted.
local now, window, ceiling = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return {1, 0}
end
if redis.call('ZCARD', KEYS[1]) >= ceiling then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, math.max(tonumber(oldest[2]) + window - now, 1)}
end
if ARGV[5] == '1' then
  redis.call('ZADD', KEYS[1], now, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], window)
end
return {1, 0}
