package.path = "edge/lua/?.lua;edge/spec/?.lua;" .. package.path

local dict = require("fake_dict").new

local captcha = require "seckill.captcha"

local KEY = "test-captcha-key-0123456789"
-- The backend's captcha.rs asserts this same token for the answer "K7P2Q".
local TOKEN = "42.7.2000000000.00ff00ff00ff00ff."
    .. "33758fe6647841550caf2e88decde3a35576be711d0511f6951cfd950d94fdf3"

describe("captcha.check", function()
    it("accepts the right answer once, in any case", function()
        local used = dict()
        assert.is_true(captcha.check(KEY, used, TOKEN, "k7p2q", "42", "7", 1000))
        local ok, why = captcha.check(KEY, used, TOKEN, "K7P2Q", "42", "7", 1000)
        assert.is_nil(ok)
        assert.equal("used", why)
    end)
    it("spends the token on a wrong answer too", function()
        local used = dict()
        assert.equal("wrong", select(2, captcha.check(KEY, used, TOKEN, "AAAAA", "42", "7", 1000)))
        assert.equal("used", select(2, captcha.check(KEY, used, TOKEN, "K7P2Q", "42", "7", 1000)))
    end)
    it("refuses other users, other sales, expired and malformed tokens", function()
        assert.equal("foreign", select(2, captcha.check(KEY, dict(), TOKEN, "K7P2Q", "43", "7", 1000)))
        assert.equal("foreign", select(2, captcha.check(KEY, dict(), TOKEN, "K7P2Q", "42", "8", 1000)))
        assert.equal("expired",
            select(2, captcha.check(KEY, dict(), TOKEN, "K7P2Q", "42", "7", 2000000000)))
        assert.equal("malformed", select(2, captcha.check(KEY, dict(), "1.2.3", "x", "1", "2", 0)))
        assert.equal("wrong",
            select(2, captcha.check("another-captcha-key-here", dict(), TOKEN, "K7P2Q", "42", "7", 1)))
    end)
end)
