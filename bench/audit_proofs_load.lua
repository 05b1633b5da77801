-- wrk script for bench/audit_serve.sh: inclusion and consistency proofs of
-- random leaves and sizes of a record of N leaves (the script's argument),
-- in turn, counting the answers by status (200, 503 past the cap, other).
function wrk.resolve(host, service)
   wrk.addrs = wrk.lookup(host, service)
end

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

local n, k = 1, 0
ok, busy, other = 0, 0, 0

function init(args)
   n = tonumber(args[1])
   math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 1000)
end

function request()
   k = k + 1
   local path
   if k % 2 == 0 then
      path = string.format("/audit/proof?leaf=%d&size=%d",
         math.random(0, n - 1), n)
   else
      path = string.format("/audit/consistency?old=%d&new=%d",
         math.random(1, n), n)
   end
   return wrk.format("GET", path, { ["Host"] = "127.0.0.1" })
end

function response(status, headers, body)
   if status == 200 then
      ok = ok + 1
   elseif status == 503 then
      busy = busy + 1
   else
      other = other + 1
   end
end

function done(summary, latency, requests)
   local o, b, x = 0, 0, 0
   for _, t in ipairs(threads) do
      o = o + t:get("ok")
      b = b + t:get("busy")
      x = x + t:get("other")
   end
   io.write(string.format("proofs %d %d %d %.3f %.3f\n", o, b, x,
      latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
