-- wrk: each request is the next shopper's signed buy path, session and client address (a
-- trusted proxy's X-Forwarded-For), so per-user and per-address limits see a crowd, not one
-- client. Lines of `path token address`, from `benchkit shoppers`.
--   wrk -s bench/buy.lua URL -- SHOPPERS_FILE
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
  local path, token, ip = lines[i]:match("^(%S+) (%S+) (%S+)$")
  return wrk.format("POST", path, { ["Authorization"] = "Bearer " .. token, ["X-Forwarded-For"] = ip })
end
