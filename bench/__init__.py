"""Batch vs streaming vs per-request scoring of one LightGBM model, measured: the ``bench`` harness.

Importing ``bench`` imports nothing else: every child process (the HTTP server, Ray workers, the
hybrid refresh job) loads only the layers it uses. The layers, lowest first, are ``core``, ``data``,
``model``, ``measure``, ``results``, ``systems``, ``patterns``, ``analysis``, ``views``, ``app``
(README, "Layout"); a module imports only layers below its own.
"""
