-- Record the outcome of a delivery request once; the first outcome recorded wins.
--
-- KEYS[1] request record (hash)   KEYS[2] recipient's challenge (hash)
-- ARGV[1] outcome (the event, JSON)   ARGV[2] challenge id to withdraw, or ''
-- ARGV[3] record ttl ms
--
-- Returns the outcome that stands: ARGV[1], or the one an earlier attempt recorded (then
-- nothing is withdrawn). The challenge is withdrawn only while it is still the one this
-- request issued: a newer code of the same recipient is left alone.
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'settled' then
  return redis.call('HGET', KEYS[1], 'outcome')
end
if ARGV[2] ~= '' and redis.call('HGET', KEYS[2], 'challenge_id') == ARGV[2] then
  redis.call('DEL', KEYS[2])
end
redis.call('HSET', KEYS[1], 'state', 'settled', 'outcome', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return ARGV[1]
