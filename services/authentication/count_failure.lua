-- Count one wrong password or access code for a recipient, unless their attempts are spent.
-- KEYS[1] failures counter; KEYS[2] (optional) this attempt's answer, by its command's id.
-- ARGV[1] retry count; ARGV[2] memory of failures in ms; ARGV[3] memory of an answer in ms.
-- Returns {used, counted}: counted = 0 when the attempts were already spent (nothing counted).
-- With KEYS[2], the same attempt made again (its command delivered again) gets the answer it
-- got the first time and counts nothing.
local memo = KEYS[2]
if memo then
  local seen = redis.call('GET', memo)
  if seen then
    return cjson.decode(seen)
  end
end
local reply
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used >= tonumber(ARGV[1]) then
  reply = {used, 0}
else
  used = redis.call('INCR', KEYS[1])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
  reply = {used, 1}
end
if memo then
  redis.call('SET', memo, cjson.encode(reply), 'PX', ARGV[3])
end
return reply
