-- Claim one due fallback for a lease: whoever claims it runs it; nobody else may until the lease
-- ends (then a replica that finds it still on the schedule, its claimer gone, runs it again,
-- and the fallback's idempotent issue makes the second run repeat the first's outcome).
--
-- KEYS[1] the schedule (zset)   KEYS[2] the delivery (hash)
-- ARGV[1] challenge id   ARGV[2] now ms   ARGV[3] lease ms
--
-- Returns {plan, reason} when claimed now, or {} when it is not due, not scheduled, or gone.
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not due or tonumber(due) > tonumber(ARGV[2]) then
  return {}
end
local delivery = redis.call('HMGET', KEYS[2], 'state', 'plan', 'reason')
if not delivery[1] or delivery[1] == 'delivered' or delivery[1] == 'done' or not delivery[2] then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return {}
end
redis.call('ZADD', KEYS[1], tonumber(ARGV[2]) + tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[2], 'state', 'claimed')
return {delivery[2], delivery[3]}
