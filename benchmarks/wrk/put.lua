-- Blind PUT of a VALUE_BYTES value to a random key of KEYS keys (env), uniform.
local keys = tonumber(os.getenv("KEYS") or "10000")
local size = tonumber(os.getenv("VALUE_BYTES") or "1024")
local bucket = os.getenv("BUCKET") or "bench"
local query = os.getenv("QUERY") or ""
local body = string.rep("x", size)
local headers = { ["Content-Type"] = "application/octet-stream" }
math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)"), 16) or 0))

request = function()
  local k = math.random(0, keys - 1)
  return wrk.format("PUT", "/buckets/" .. bucket .. "/keys/k" .. k .. query, headers, body)
end
