-- wrk script: POST OCSP requests read from a file of hex lines, cycling.
-- wrk.resolve is overridden so that wrk opens no probe connection before the
-- run: `openssl ocsp` wedges on a connection that sends nothing.
function wrk.resolve(host, service)
   wrk.addrs = wrk.lookup(host, service)
end

local bodies = {}
local n = 0

local function unhex(s)
   return (s:gsub("..", function(c) return string.char(tonumber(c, 16)) end))
end

function init(args)
   for line in io.lines(args[1]) do
      if #line > 0 then
         n = n + 1
         bodies[n] = wrk.format("POST", "/ocsp",
            { ["Content-Type"] = "application/ocsp-request",
              ["Host"] = "127.0.0.1" }, unhex(line))
      end
   end
   math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 1000)
end

function request()
   return bodies[math.random(n)]
end
