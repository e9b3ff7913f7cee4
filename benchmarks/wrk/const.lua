-- GET the constant handler of benchmarks/ceiling_server.py.
request = function()
  return wrk.format("GET", "/const")
end
