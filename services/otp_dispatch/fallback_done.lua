-- A claimed fallback ran to its outcome: off the schedule for good.
--
-- KEYS[1] the schedule (zset)   KEYS[2] the delivery (hash)   ARGV[1] challenge id
redis.call('ZREM', KEYS[1], ARGV[1])
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('HSET', KEYS[2], 'state', 'done')
  redis.call('HDEL', KEYS[2], 'plan')
end
return 1
