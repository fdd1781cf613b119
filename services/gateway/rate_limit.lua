-- One fixed-window counter: KEYS[1] the counter, ARGV[1] the limit, ARGV[2] the window (ms).
-- Returns {1, remaining} while within the limit, {0, ms until the window ends} beyond it.
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
local limit = tonumber(ARGV[1])
if count > limit then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then
    -- a counter left without expiry (a crash between INCR and PEXPIRE cannot happen in a script,
    -- but a key set by hand can): give it one, so that it never blocks for ever
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    ttl = tonumber(ARGV[2])
  end
  return {0, ttl}
end
return {1, limit - count}
