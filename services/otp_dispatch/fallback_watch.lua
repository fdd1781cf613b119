-- Put one delivery on the fallback schedule, once: due at ARGV[2] unless a receipt came first.
--
-- KEYS[1] the schedule (zset: challenge id -> due ms)   KEYS[2] the delivery (hash)
-- ARGV[1] challenge id   ARGV[2] due ms   ARGV[3] the sealed plan   ARGV[4] reason
-- ARGV[5] record ttl ms
--
-- Returns the delivery's state: 'awaiting' when it is (or already was) on the schedule,
-- 'delivered' when its receipt came before it was put there (nothing is scheduled), or
-- 'claimed' / 'done' when a fallback was claimed before (a redelivered request: no change).
local state = redis.call('HGET', KEYS[2], 'state')
if state then
  return state
end
redis.call('HSET', KEYS[2], 'state', 'awaiting', 'plan', ARGV[3], 'reason', ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return 'awaiting'
