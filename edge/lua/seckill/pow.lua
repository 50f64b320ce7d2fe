-- Proof of work in front of the captcha: the edge issues a challenge and checks the solution
-- statelessly, so every captcha a client asks for costs it CPU while it costs us one HMAC.
--   token = <user_id>.<sale_id>.<expires_s>.<bits>.<nonce>.<mac>
--   mac   = hex HMAC-SHA256(pow_key, "p1.<user_id>.<sale_id>.<expires_s>.<bits>.<nonce>")
-- A solution is a decimal string x (at most 20 digits) such that SHA-256("<token>.<x>")
-- starts with `bits` zero bits (about 2^bits hashes to find, one to check). A challenge is
-- bound to the user, the sale and a short lifetime, and is spent when used (single use).
--
-- What it defends against: one client (or a botnet) asking for captchas as fast as it can,
-- to farm them or to make the backend draw them: each costs ~2^bits hashes. What it does not:
-- a patient attacker with enough CPU, or solving farms; it prices attempts, it does not
-- tell humans from machines (the captcha does that).
-- Failure policy: closed (no valid solution, no captcha).
local hmac = require "seckill.hmac"
local single_use = require "seckill.single_use"

local byte = string.byte
local match = string.match
local tonumber = tonumber
local floor = math.floor

local _M = { _VERSION = "0.1" }

local function mac(key, user_id, sale_id, expires_s, bits, nonce)
    return hmac.sign(key, "p1." .. user_id .. "." .. sale_id .. "." .. expires_s .. "."
        .. bits .. "." .. nonce)
end

-- A new challenge token; `nonce` is 16 random hex digits.
function _M.issue(key, user_id, sale_id, expires_s, bits, nonce)
    return user_id .. "." .. sale_id .. "." .. expires_s .. "." .. bits .. "." .. nonce .. "."
        .. mac(key, user_id, sale_id, expires_s, bits, nonce)
end

-- How many leading zero bits a raw digest has.
function _M.leading_zero_bits(digest)
    local n = 0
    for i = 1, #digest do
        local b = byte(digest, i)
        if b == 0 then
            n = n + 8
        else
            while b < 128 do
                n = n + 1
                b = b * 2
            end
            return n
        end
    end
    return n
end

-- true, or nil and why: "malformed", "foreign", "forged", "expired", "unsolved", "used",
-- "store_full" (no room to record the spend: refused, never evicting).
-- `max_ttl`: the longest lifetime the edge issues; `used`: the shared dict of spent nonces.
function _M.check(key, used, token, solution, user_id, sale_id, now_s, max_ttl)
    if type(token) ~= "string" or #token > 200 or type(solution) ~= "string" then
        return nil, "malformed"
    end
    local u, s, exp, bits, nonce, sig =
        match(token, "^(%d+)%.(%d+)%.(%d+)%.(%d+)%.(%x+)%.(%x+)$")
    if not u or #nonce ~= 16 or #sig ~= 64 or #exp > 12 or #bits > 2
            or not match(solution, "^%d+$") or #solution > 20 then
        return nil, "malformed"
    end
    if u ~= user_id or s ~= sale_id then
        return nil, "foreign"
    end
    if not hmac.equal(mac(key, u, s, exp, bits, nonce), sig) then
        return nil, "forged"
    end
    if _M.leading_zero_bits(hmac.sha256(token .. "." .. solution)) < tonumber(bits) then
        return nil, "unsolved"
    end
    local spent, why = single_use.spend(used, "pow:" .. nonce, exp, now_s, max_ttl)
    if not spent then
        return nil, why
    end
    return true
end

-- The difficulty now: `base` bits, one more for each doubling of the challenges asked for
-- this second (`issued_now`) beyond `busy_per_s`, at most `extra_max` more.
function _M.difficulty(base, issued_now, busy_per_s, extra_max)
    if base <= 0 then
        return 0
    end
    local extra = 0
    local n = issued_now
    while n > busy_per_s and extra < extra_max do
        n = floor(n / 2)
        extra = extra + 1
    end
    return base + extra
end

return _M
