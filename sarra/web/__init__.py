"""The web console, ``sarra web``: the operator's page, the JSON it polls,
/metrics (the exposition of sarra/metrics.py), the configuration builder
and the look-up of a file in dd_log's ledgers.

- ``server.py``: the HTTP server (the standard library's), its routes, who
  may use it (loopback, or HTTP basic auth from credentials.conf) and the
  guard of its POSTs (a per-server token, the Origin and Host checked);
- ``status.py``: what the page shows, from ``sarra/service.py:describe`` of
  each configuration and what its instances wrote in their metrics files
  (the last hour minute by minute, the latest deliveries and failures);
- ``builder.py``: a dd_subscribe configuration composed from a form,
  checked by the loader the tools use, written on request;
- ``static/``: the page, its script and its style (package data: nothing
  is fetched from elsewhere).
"""
