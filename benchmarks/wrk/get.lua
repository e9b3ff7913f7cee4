-- GET a random key of KEYS preloaded keys in bucket BUCKET (env), uniform.
local keys = tonumber(os.getenv("KEYS") or "10000")
local bucket = os.getenv("BUCKET") or "bench"
local query = os.getenv("QUERY") or ""
math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)"), 16) or 0))

request = function()
  local k = math.random(0, keys - 1)
  return wrk.format("GET", "/buckets/" .. bucket .. "/keys/k" .. k .. query)
end
