-- Count one wrong password or access code for a recipient, unless their attempts are spent.
-- KEYS[1] failures counter; ARGV[1] retry count; ARGV[2] memory of failures in ms.
-- Returns {used, counted}: counted = 0 when the attempts were already spent (nothing counted).
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used >= tonumber(ARGV[1]) then
  return {used, 0}
end
used = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return {used, 1}
