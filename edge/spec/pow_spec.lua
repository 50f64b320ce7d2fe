package.path = "edge/lua/?.lua;edge/spec/?.lua;" .. package.path

local dict = require("fake_dict").new
local pow = require "seckill.pow"
local hmac = require "seckill.hmac"

local KEY = "test-pow-key-0123456789abcdef"
local NOW = 1800000000
local MAX_TTL = 120

-- Solves a challenge the way a shopper's browser does (static/assets/app.js).
local function solve(token, bits)
    for x = 0, 10000000 do
        local s = tostring(x)
        if pow.leading_zero_bits(hmac.sha256(token .. "." .. s)) >= bits then
            return s
        end
    end
end

local function check(used, token, solution, user, sale, now)
    return pow.check(KEY, used, token, solution, user or "42", sale or "7", now or NOW, MAX_TTL)
end

describe("pow", function()
    local token = pow.issue(KEY, "42", "7", NOW + 60, 8, "0123456789abcdef")
    local solution = solve(token, 8)

    it("counts leading zero bits", function()
        assert.equal(0, pow.leading_zero_bits("\128"))
        assert.equal(7, pow.leading_zero_bits("\1\0"))
        assert.equal(12, pow.leading_zero_bits("\0\15"))
        assert.equal(16, pow.leading_zero_bits("\0\0"))
    end)
    it("accepts a solution once", function()
        local used = dict()
        assert.is_true(check(used, token, solution))
        assert.equal("used", select(2, check(used, token, solution)))
        assert.equal(60, used.ttls["pow:0123456789abcdef"])
    end)
    it("refuses wrong, stale, foreign and forged solutions, storing nothing", function()
        local used = dict()
        local wrong = solution == "0" and "1" or "0"
        if pow.leading_zero_bits(hmac.sha256(token .. "." .. wrong)) < 8 then
            assert.equal("unsolved", select(2, check(used, token, wrong)))
        end
        assert.equal("expired", select(2, check(used, token, solution, "42", "7", NOW + 60)))
        assert.equal("foreign", select(2, check(used, token, solution, "43")))
        assert.equal("foreign", select(2, check(used, token, solution, "42", "8")))
        local easier = token:gsub("%.8%.", ".1.", 1)
        assert.equal("forged", select(2, check(used, easier, solution)))
        local other = pow.issue("another-key-0123456789abcdef", "42", "7", NOW + 60, 8,
            "0123456789abcdef")
        assert.equal("forged", select(2, check(used, other, solve(other, 8))))
        local too_long = pow.issue(KEY, "42", "7", NOW + 100000, 8, "0123456789abcdef")
        assert.equal("forged", select(2, check(used, too_long, solve(too_long, 8))))
        assert.equal("malformed", select(2, check(used, token, "12a")))
        assert.equal("malformed", select(2, check(used, token, nil)))
        assert.same({}, used:get_keys(0))
    end)
    it("raises the difficulty a bit per doubling past the busy rate", function()
        assert.equal(0, pow.difficulty(0, 100000, 500, 8))
        assert.equal(12, pow.difficulty(12, 500, 500, 8))
        assert.equal(13, pow.difficulty(12, 1000, 500, 8))
        assert.equal(14, pow.difficulty(12, 2001, 500, 8))
        assert.equal(20, pow.difficulty(12, 10000000, 500, 8))
    end)
end)
