package.path = "edge/lua/?.lua;edge/spec/?.lua;" .. package.path

local dict = require("fake_dict").new

local captcha = require "seckill.captcha"

local KEY = "test-captcha-key-0123456789"
-- The backend's captcha/mod.rs asserts this same token for the answer "K7P2Q".
local TOKEN = "42.7.2000000000.00ff00ff00ff00ff."
    .. "33758fe6647841550caf2e88decde3a35576be711d0511f6951cfd950d94fdf3."
    .. "450ffd870cf0628f860fc68e40566951004251ee09c2c8de0d4a27f55af19042"
local NOW = 2000000000 - 60
local MAX_TTL = 120

local function check(used, token, answer, user, sale, now)
    return captcha.check(KEY, used, token, answer, user or "42", sale or "7", now or NOW, MAX_TTL)
end

describe("captcha.check", function()
    it("accepts the right answer once, in any case", function()
        local used = dict()
        assert.is_true(check(used, TOKEN, "k7p2q"))
        local ok, why = check(used, TOKEN, "K7P2Q")
        assert.is_nil(ok)
        assert.equal("used", why)
    end)
    it("spends the token on a wrong answer too", function()
        local used = dict()
        assert.equal("wrong", select(2, check(used, TOKEN, "AAAAA")))
        assert.equal("used", select(2, check(used, TOKEN, "K7P2Q")))
    end)
    it("refuses other users, other sales, expired and malformed tokens", function()
        assert.equal("foreign", select(2, check(dict(), TOKEN, "K7P2Q", "43")))
        assert.equal("foreign", select(2, check(dict(), TOKEN, "K7P2Q", "42", "8")))
        assert.equal("expired", select(2, check(dict(), TOKEN, "K7P2Q", "42", "7", 2000000000)))
        assert.equal("malformed", select(2, check(dict(), "1.2.3", "x", "1", "2", 0)))
    end)
    it("stores nothing for a token it did not sign", function()
        local used = dict()
        -- Another key, an altered answer MAC, an altered nonce: all forged, none stored.
        local altered_mac = TOKEN:gsub("33758fe6", "33758fe7")
        local altered_nonce = TOKEN:gsub("00ff00ff00ff00ff", "11ff00ff00ff00ff")
        assert.equal("forged", select(2, captcha.check("another-captcha-key-here", used, TOKEN,
            "K7P2Q", "42", "7", NOW, MAX_TTL)))
        assert.equal("forged", select(2, check(used, altered_mac, "K7P2Q")))
        assert.equal("forged", select(2, check(used, altered_nonce, "K7P2Q")))
        assert.same({}, used:get_keys(0))
        -- The genuine token still works: a made-up one never blocked it.
        assert.is_true(check(used, TOKEN, "K7P2Q"))
    end)
    it("refuses a token that would live longer than the edge issues, storing nothing", function()
        local used = dict()
        -- Genuinely signed (here with the shared key), but expiring in 31,000 years' time.
        assert.equal("forged", select(2, check(used, TOKEN, "K7P2Q", "42", "7", NOW - 10000)))
        assert.same({}, used:get_keys(0))
    end)
    it("refuses rather than evict when the spent-token store is full", function()
        local used = dict({ ["cap:aaaaaaaaaaaaaaaa"] = true })
        used.capacity_entries = 1
        assert.equal("store_full", select(2, check(used, TOKEN, "K7P2Q")))
        assert.is_true(used:get("cap:aaaaaaaaaaaaaaaa"), "the spent entry is still there")
    end)
    it("spends a token for no longer than it lives", function()
        local used = dict()
        assert.is_true(check(used, TOKEN, "K7P2Q"))
        assert.equal(60, used.ttls["cap:00ff00ff00ff00ff"])
    end)
end)
