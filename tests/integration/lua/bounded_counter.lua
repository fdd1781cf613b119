-- Test script: count one attempt in KEYS[1] unless ARGV[1] attempts are spent; TTL ARGV[2] seconds.
-- Returns the count after this call, or -1 when the limit was already reached.
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count >= tonumber(ARGV[1]) then
  return -1
end
count = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
return count
