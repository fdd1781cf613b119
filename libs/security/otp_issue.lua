-- Issue an OTP for one delivery request, once: claim the request, enforce the send limits,
-- replace the recipient's pending challenge, and count the send. All or nothing, on the keys of
-- one recipient (slot {R}); the destination's window was checked by otp_reserve.lua just before,
-- and its verdict comes in ARGV[9] (libs/security/otp_store.py says why the split is safe).
--
-- KEYS[1] request record (hash)   KEYS[2] recipient's challenge (hash)
-- KEYS[3] resend cooldown (string: when the next send is allowed, epoch ms)
-- KEYS[4] recipient's sends (zset: challenge id -> sent at ms)
-- ARGV[1] now ms            ARGV[2] challenge id        ARGV[3] code digest
-- ARGV[4] expires at ms     ARGV[5] ttl ms              ARGV[6] cooldown ms (0: none, and none checked)
-- ARGV[7] recipient limit   ARGV[8] recipient window ms
-- ARGV[9] '' when the destination gave the request a place, else when it will (ms)
-- ARGV[10] record ttl ms    ARGV[11] channel            ARGV[12] masked destination
--
-- Returns {'duplicate', field, value, ...} when the request was seen before (its record),
-- {'refused', limit, blocking ms} when a limit is spent (the request is recorded as refused:
-- a redelivery gets the same answer), or {'issued', sends in the recipient's window}.
-- Times come from ARGV, not the server clock, so tests can inject them.
local now = tonumber(ARGV[1])

local record = redis.call('HGETALL', KEYS[1])
if #record > 0 then
  table.insert(record, 1, 'duplicate')
  return record
end

local function refuse(limit, blocking_ms)
  redis.call('HSET', KEYS[1], 'state', 'refused', 'limit', limit,
    'retry_at', tostring(blocking_ms), 'at', ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[10])
  return {'refused', limit, tostring(blocking_ms)}
end

-- Sliding window: entries older than the window are dropped; when `limit` remain, the send
-- is allowed again once the oldest of the last `limit` leaves the window.
local function spent(key, limit, window_ms)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window_ms)
  local count = redis.call('ZCARD', key)
  if count < limit then
    return nil, count
  end
  local entry = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
  return tonumber(entry[2]) + window_ms, count
end

-- A cooldown of 0 checks none (a fallback's code: the service resends, not the recipient).
local cooldown_until = tonumber(redis.call('GET', KEYS[3]) or '0')
if tonumber(ARGV[6]) > 0 and cooldown_until > now then
  return refuse('cooldown', cooldown_until)
end
local recipient_retry, recipient_sends = spent(KEYS[4], tonumber(ARGV[7]), tonumber(ARGV[8]))
if recipient_retry then
  return refuse('recipient', recipient_retry)
end
if ARGV[9] ~= '' then
  return refuse('destination', ARGV[9])
end

-- The new challenge replaces any pending one of this recipient; failures are not touched.
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'challenge_id', ARGV[2], 'digest', ARGV[3], 'issued_at', ARGV[1],
  'expires_at', ARGV[4], 'channel', ARGV[11], 'destination', ARGV[12])
redis.call('PEXPIRE', KEYS[2], ARGV[5])

local cooldown_ms = tonumber(ARGV[6])
if cooldown_ms > 0 then
  redis.call('SET', KEYS[3], tostring(now + cooldown_ms), 'PX', cooldown_ms)
end
redis.call('ZADD', KEYS[4], now, ARGV[2])
redis.call('PEXPIRE', KEYS[4], ARGV[8])

redis.call('HSET', KEYS[1], 'state', 'claimed', 'challenge_id', ARGV[2], 'at', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[10])
return {'issued', recipient_sends + 1}
