-- The admission cap: per sale, at most `multiple` x (units left) buy requests a second reach
-- the backend; the rest are told to try again (429) at the edge. With 1,000 units left and a
-- multiple of 3, 3,000 buyers a second get their chance at Redis; the other 97,000 of a crowd
-- never leave nginx. The count is in a shared dict, shared by all workers.
-- Failure policy: open. An unknown stock (sale not in the state dict yet) or a dict that
-- cannot count lets the request through; the backend's Redis script is the real guard.
local floor = math.floor

local _M = { _VERSION = "0.1" }

-- Returns true when the request may go on to the backend.
function _M.allow(dict, sale_id, stock_left, multiple, now)
    if not stock_left then
        return true
    end
    local n, err = dict:incr("adm:" .. sale_id .. ":" .. floor(now), 1, 0, 2)
    if not n then
        return true, "failed to count admission for sale " .. sale_id .. ": " .. tostring(err)
    end
    return n <= multiple * stock_left
end

return _M
