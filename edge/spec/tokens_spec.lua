-- The edge and the backend must agree byte for byte on tokens. These vectors are also
-- asserted by the backend's unit tests (session.rs, link.rs: shared_vector tests).
package.path = "edge/lua/?.lua;" .. package.path

local hmac = require "seckill.hmac"
local session = require "seckill.session"
local link = require "seckill.link"

local SESSION_KEY = "test-session-key-0123456789"
local LINK_KEY = "test-link-key-0123456789"
local TOKEN = "42.2000000000.9e8e9805aed3a99b352af6fa9cb4ba0760712a22b1be18ee89983a570138be87"
local SIG = "a334ea94af0afd5221b46339eb65f7f8ac7b712b39ccd824eead091253e84322"

describe("hmac", function()
    it("matches RFC 4231 test case 2", function()
        assert.equal("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            hmac.sign("Jefe", "what do ya want for nothing?"))
    end)
    it("matches RFC 4231 test cases 1 and 6 (a key longer than the block is hashed first)", function()
        assert.equal("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            hmac.sign(string.rep("\11", 20), "Hi There"))
        assert.equal("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            hmac.sign(string.rep("\170", 131), "Test Using Larger Than Block-Size Key - Hash Key First"))
    end)
    it("gives the same answer for the same key twice (cached pads)", function()
        assert.equal(hmac.sign("k", "m"), hmac.sign("k", "m"))
        assert.are_not.equal(hmac.sign("k", "m"), hmac.sign("k2", "m"))
    end)
    it("compares in constant time but correctly", function()
        assert.is_true(hmac.equal("abc", "abc"))
        assert.is_false(hmac.equal("abc", "abd"))
        assert.is_false(hmac.equal("abc", "ab"))
        assert.is_false(hmac.equal(nil, "ab"))
    end)
    it("raises on programmer mistakes", function()
        assert.has_error(function() hmac.sign(nil, "x") end)
    end)
end)

describe("session", function()
    it("verifies the backend's token to its user", function()
        assert.equal("42", session.verify(SESSION_KEY, TOKEN, 1000))
    end)
    it("refuses expired, tampered, foreign and malformed tokens", function()
        local _, err = session.verify(SESSION_KEY, TOKEN, 2000000000)
        assert.equal("expired", err)
        _, err = session.verify(SESSION_KEY, TOKEN:gsub("^42", "43"), 1000)
        assert.equal("bad signature", err)
        _, err = session.verify("another-key-entirely-here", TOKEN, 1000)
        assert.equal("bad signature", err)
        for _, t in ipairs({ "", "42", "042.2000000000.ab", "x.1.ab", "42.-1.ab", 5 }) do
            _, err = session.verify(SESSION_KEY, t, 1000)
            assert.equal("malformed", err)
        end
    end)
    it("reads the bearer header before the cookie", function()
        assert.equal("t1", session.token_from("Bearer t1", "t2"))
        assert.equal("t2", session.token_from(nil, "t2"))
        assert.equal("t2", session.token_from("Basic xyz", "t2"))
    end)
end)

describe("link", function()
    it("signs what the backend signs", function()
        assert.equal(SIG, link.sign(LINK_KEY, "42", "7", 1000, 60))
    end)
    it("is valid in its window and the next only", function()
        assert.is_true(link.verify(LINK_KEY, SIG, "42", "7", 1000, 60))
        assert.is_true(link.verify(LINK_KEY, SIG, "42", "7", 1079, 60))
        assert.is_false(link.verify(LINK_KEY, SIG, "42", "7", 1140, 60))
        assert.is_false(link.verify(LINK_KEY, SIG, "42", "7", 900, 60))
    end)
    it("is bound to its user, sale and key", function()
        assert.is_false(link.verify(LINK_KEY, SIG, "43", "7", 1000, 60))
        assert.is_false(link.verify(LINK_KEY, SIG, "42", "8", 1000, 60))
        assert.is_false(link.verify("another-link-key-entirely", SIG, "42", "7", 1000, 60))
        assert.is_false(link.verify(LINK_KEY, "00", "42", "7", 1000, 60))
    end)
end)
