"""``dynamo bench``: a load generator for the HTTP API that is cheaper than the server.

Pure parts (no I/O, no clock, injected randomness):

- ``histogram``: log-linear latency buckets that merge by adding counts.
- ``keys``: uniform and zipfian key samplers.
- ``http1``: building request bytes and a sans-I/O HTTP/1.1 response parser.
- ``tally``: one interval's counts, errors and histograms.

Shells:

- ``connection``: an ``asyncio.Protocol`` per keep-alive connection that issues the next
  request from a callback (no task or future per request).
- ``worker``: one process's connections, timeouts and phases (warmup, run).
- ``coordinator``: spawns the worker processes, merges their tallies, prints progress.
- ``report``: the final figures as text and JSON.  ``cli``: the ``dynamo bench`` command.
- ``testing``: a constant HTTP server for measuring the client's own cost.
"""
