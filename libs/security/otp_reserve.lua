-- Take a place for one delivery request in a destination's sliding window: the first of the two
-- steps of issuing a code (libs/security/otp_store.py says why two steps keep the limit).
--
-- KEYS[1] destination's sends (zset: request id -> sent at ms), slot {D}
-- ARGV[1] now ms   ARGV[2] request id   ARGV[3] destination limit   ARGV[4] window ms
--
-- Returns {'held'} when the request has its place already (an earlier delivery of it took it:
-- it is not counted again), {'reserved'} when it took one now, or {'refused', retry at ms}
-- when the window is full: a place frees once the oldest of the last `limit` leaves the window.
-- Times come from ARGV, not the server clock, so tests can inject them.
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[3])
local window_ms = tonumber(ARGV[4])

-- Pruned first: a place that left the window no longer counts, so it is not held either.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window_ms)
if redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  return {'held'}
end
local count = redis.call('ZCARD', KEYS[1])
if count >= limit then
  local entry = redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')
  return {'refused', tostring(tonumber(entry[2]) + window_ms)}
end
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('PEXPIRE', KEYS[1], window_ms)
return {'reserved'}
