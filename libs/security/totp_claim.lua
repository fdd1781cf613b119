-- Accept one TOTP time step for one subject, once (libs/security/totp.py).
--
-- KEYS[1] the subject's last accepted step ("<step>:<claim id>")
-- ARGV[1] the step   ARGV[2] the claim id (the attempt's event id)   ARGV[3] how long to keep (ms)
-- Returns 1: accepted (or accepted before by this same claim); 0: this step or a later one was.
local last = redis.call('GET', KEYS[1])
local step = tonumber(ARGV[1])
if last then
  local sep = string.find(last, ':', 1, true)
  local last_step = tonumber(string.sub(last, 1, sep - 1))
  local last_claim = string.sub(last, sep + 1)
  if step == last_step and last_claim == ARGV[2] then
    return 1
  end
  if step <= last_step then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. ARGV[2], 'PX', ARGV[3])
return 1
