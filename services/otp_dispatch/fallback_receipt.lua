-- Record a delivery receipt: a delivered message needs no fallback; an undelivered one falls
-- back now. Only a delivery still awaiting changes; a receipt that comes before the delivery was
-- scheduled is remembered, so the schedule does not take it up afterwards.
--
-- KEYS[1] the schedule (zset)   KEYS[2] the delivery (hash)
-- ARGV[1] challenge id   ARGV[2] 'delivered' or 'undelivered'   ARGV[3] now ms
-- ARGV[4] record ttl ms
--
-- Returns the state the delivery had before ('' when it had none).
local state = redis.call('HGET', KEYS[2], 'state')
if not state then
  redis.call('HSET', KEYS[2], 'state', 'delivered')
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
  return ''
end
if state ~= 'awaiting' then
  return state
end
if ARGV[2] == 'delivered' then
  redis.call('HSET', KEYS[2], 'state', 'delivered')
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[2], 'reason', 'undelivered')
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
end
return state
