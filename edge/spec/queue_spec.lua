-- The waiting room's pure parts: tickets (the backend's queue.rs signs them the same way), the
-- draw's permutation, and a ticket's status from a sale's state.
package.path = "edge/lua/?.lua;edge/spec/?.lua;" .. package.path

local queue = require "seckill.queue"
local sale_state = require "seckill.sale_state"
local dict = require("fake_dict").new

local LINK_KEY = "test-link-key-0123456789"

describe("queue tickets", function()
    local key = queue.ticket_key(LINK_KEY)
    local t = queue.sign(key, "7", "42", "1001")
    it("verify as issued, for their sale", function()
        local user, number = queue.verify(key, t, "7")
        assert.equal("42", user)
        assert.equal("1001", number)
    end)
    it("match the backend's signature byte for byte", function()
        -- Also asserted by queue.rs (a_shared_vector).
        assert.equal("7.42.1001.19d9c44388c2170de52de9a69ff7db8433b73358cd5b010efb3e73c4b012b61a", t)
    end)
    it("refuse altered numbers, users, sales, keys and shapes", function()
        assert.is_nil(queue.verify(key, t:gsub("%.1001%.", ".1000."), "7"))
        assert.is_nil(queue.verify(key, t:gsub("^7%.42", "7.43"), "7"))
        assert.is_nil(queue.verify(key, t, "8"))
        assert.is_nil(queue.verify(queue.ticket_key("another-link-key-0123"), t, "7"))
        assert.is_nil(queue.verify(key, nil, "7"))
        assert.is_nil(queue.verify(key, "7.42.1001", "7"))
        assert.is_nil(queue.verify(key, "7.42.01001." .. t:sub(-64), "7"))
        assert.is_nil(queue.verify(key, t .. "0", "7"))
        assert.is_nil(queue.verify(key, string.rep("1", 200), "7"))
    end)
end)

describe("the draw's permutation", function()
    it("is a bijection of 1..size for every size", function()
        local keys = queue.shuffle_keys(LINK_KEY, "7")
        for _, size in ipairs({ 1, 2, 3, 4, 5, 15, 16, 17, 63, 64, 65, 1000, 4097, 20000 }) do
            local seen = {}
            for n = 1, size do
                local p = queue.permute(keys, size, n)
                assert.is_true(p >= 1 and p <= size, "position out of range")
                assert.is_nil(seen[p], "position given twice")
                seen[p] = n
            end
        end
    end)
    it("differs per sale and is not the identity", function()
        local a, b = queue.shuffle_keys(LINK_KEY, "7"), queue.shuffle_keys(LINK_KEY, "8")
        local same_ab, fixed = 0, 0
        for n = 1, 1000 do
            local pa = queue.permute(a, 1000, n)
            if pa == queue.permute(b, 1000, n) then same_ab = same_ab + 1 end
            if pa == n then fixed = fixed + 1 end
        end
        -- A random permutation has about one fixed point and one agreement with another.
        assert.is_true(same_ab < 10, "sales 7 and 8 agree on " .. same_ab .. " places")
        assert.is_true(fixed < 10, fixed .. " fixed points")
    end)
    it("spreads the first joiners over the whole line", function()
        local keys = queue.shuffle_keys(LINK_KEY, "9")
        local front = 0
        for n = 1, 100 do
            if queue.permute(keys, 10000, n) <= 5000 then front = front + 1 end
        end
        assert.is_true(front > 30 and front < 70, front .. " of the first 100 in the front half")
    end)
end)

describe("a ticket's status", function()
    -- starts 1000, ends 100000; left units, mode, grace 0 s, ttl 120 s, multiple 1,
    -- cursor, expired_below, joined, drawn, rate (milli), flags
    local function state(fields)
        local d = dict({ ["5"] = fields })
        return sale_state.get(d, "5")
    end
    local opts = { reach = 3, shuffle = function(_, n) return n end }

    it("before the start: waiting, with the start as ETA when the opening admits it", function()
        local p = state("1000 100000 0 10 1 0 120 1 0 0 50 -1 -1 0")
        local s = queue.status(p, 7, 500, opts)
        assert.equal("waiting", s.state)
        assert.equal(7, s.position)
        assert.equal(6, s.ahead)
        assert.equal(0.5, s.eta_s)
        s = queue.status(p, 11, 500, opts)
        assert.equal("waiting", s.state)
        assert.is_nil(s.eta_s)
    end)
    it("admits up to the cursor, expires below expired_below", function()
        local p = state("1000 100000 0 10 1 0 120 1 20 5 50 -1 2000 0")
        assert.equal("admitted", queue.status(p, 20, 2000, opts).state)
        assert.equal("admitted", queue.status(p, 6, 2000, opts).state)
        assert.equal("expired", queue.status(p, 5, 2000, opts).state)
        local s = queue.status(p, 31, 2000, opts)
        assert.equal("waiting", s.state)
        assert.equal(10, s.ahead)
        assert.equal(5.5, s.eta_s) -- 11 places at 2 a second
    end)
    it("tells a shopper the units cannot reach them", function()
        local p = state("1000 100000 0 10 1 0 120 1 20 0 500 -1 2000 0")
        assert.equal("waiting", queue.status(p, 50, 2000, opts).state)
        assert.equal("out_of_reach", queue.status(p, 51, 2000, opts).state)
    end)
    it("says sold out to everyone once the units are gone, and keeps their place", function()
        local p = state("1000 100000 1 0 1 0 120 1 20 0 500 -1 2000 0")
        for _, n in ipairs({ 1, 20, 21, 499 }) do
            local s = queue.status(p, n, 2000, opts)
            assert.equal("sold_out", s.state)
            assert.is_true(s.waitlist)
        end
    end)
    it("reopens when units come back", function()
        local p = state("1000 100000 0 1 1 0 120 1 21 0 500 -1 2000 2")
        local s = queue.status(p, 21, 2000, opts)
        assert.equal("admitted", s.state)
        assert.is_true(s.reopened)
    end)
    it("in a random sale: a draw first, then shuffled places, later arrivals behind", function()
        local p = state("1000 100000 0 10 2 5 120 1 0 0 40 -1 -1 0")
        local s = queue.status(p, 3, 2000, opts)
        assert.equal("draw", s.state)
        assert.equal(6000, s.draw_at_ms)
        assert.is_nil(s.position)
        local reversed = { reach = 3, shuffle = function(size, n) return size + 1 - n end }
        p = state("1000 100000 0 10 2 5 120 1 10 0 40 30 -1 0")
        s = queue.status(p, 1, 7000, reversed)
        assert.equal(30, s.position)
        assert.is_true(s.in_draw)
        assert.equal("waiting", s.state)
        assert.equal("admitted", queue.status(p, 30, 7000, reversed).state)
        s = queue.status(p, 31, 7000, reversed)
        assert.equal(31, s.position)
        assert.is_false(s.in_draw)
    end)
    it("is ended after the end, whatever the place", function()
        local p = state("1000 100000 0 10 1 0 120 1 20 0 50 -1 -1 0")
        assert.equal("ended", queue.status(p, 1, 100000, opts).state)
    end)
    it("renders as JSON with nulls for what is unknown", function()
        local p = state("1000 100000 0 10 1 0 120 1 0 0 50 -1 -1 1")
        local body = queue.render(queue.status(p, 5, 2000, opts), 2000)
        assert.truthy(body:find('"state":"waiting"', 1, true))
        assert.truthy(body:find('"eta_s":null', 1, true))
        assert.truthy(body:find('"paused":true', 1, true))
        assert.truthy(body:find('"position":5,', 1, true))
    end)
end)
