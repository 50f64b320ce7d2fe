package.path = "edge/lua/?.lua;" .. package.path

local metrics = require "seckill.metrics"

local function dict()
    local d = { data = {} }
    function d:incr(k, by, init)
        self.data[k] = (self.data[k] or init) + by
        return self.data[k]
    end
    function d:get(k) return self.data[k] end
    function d:get_keys()
        local keys = {}
        for k in pairs(self.data) do keys[#keys + 1] = k end
        return keys
    end
    function d:free_space() return 100 end
    function d:capacity() return 1000 end
    return d
end

describe("metrics", function()
    it("renders counters by route and outcome, and dict usage", function()
        local d = dict()
        metrics.inc("buy", "passed")
        metrics.inc("buy", "passed")
        metrics.inc("buy", "bad_link")
        metrics.flush(d)
        metrics.inc("buy", "passed")
        metrics.flush(d)
        local text = metrics.render(d, { "seckill_sales" }, { seckill_sales = d })
        assert.truthy(text:find('seckill_edge_requests_total{route="buy",outcome="passed"} 3', 1, true))
        assert.truthy(text:find('seckill_edge_requests_total{route="buy",outcome="bad_link"} 1', 1, true))
        assert.truthy(text:find('seckill_edge_dict_free_bytes{dict="seckill_sales"} 100', 1, true))
    end)
end)
