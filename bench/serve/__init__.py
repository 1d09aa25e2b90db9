"""Model servers the per-request and hybrid patterns call over HTTP."""
