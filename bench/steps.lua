-- wrk: each request is the next line of a requests file, so sessions, single-use challenges
-- and client addresses rotate as a crowd's would (per-user and per-address limits see a
-- crowd, not one client). Two kinds of line:
--   "PATH TOKEN ADDRESS"                 a signed buy (`benchkit shoppers`): POST PATH
--   "METHOD PATH TOKEN ADDRESS BODY"     any step (`benchkit step-lines`; "-": none)
--   wrk -s bench/steps.lua URL -- FILE
local lines, i, step = {}, 0, 2
local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end
function init(args)
  for l in io.lines(args[1]) do lines[#lines + 1] = l end
  i = id + 1
end
function request()
  i = (i + step - 1) % #lines + 1
  local method, path, token, ip, body = lines[i]:match("^(%S+) (%S+) (%S+) (%S+) (%S+)$")
  if not method then
    method, body = "POST", "-"
    path, token, ip = lines[i]:match("^(%S+) (%S+) (%S+)$")
  end
  local headers = { ["X-Forwarded-For"] = ip }
  if token ~= "-" then headers["Authorization"] = "Bearer " .. token end
  if body == "-" then
    body = nil
  elseif body:sub(1, 1) == "{" then
    headers["Content-Type"] = "application/json"
  else
    headers["Content-Type"] = "application/x-www-form-urlencoded"
  end
  return wrk.format(method, path, headers, body)
end
