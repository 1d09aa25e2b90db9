"""The article's claims (C1–C10) and which measured patterns each verdict needs.

Statements are paraphrased; figures are the article's. A verdict is computed only when every pattern a
claim needs has valid runs; until then the report says what is missing instead of guessing.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Claim:
    id: str
    statement: str
    needs: tuple[str, ...]  #: patterns whose runs the verdict is computed from


CLAIMS: tuple[Claim, ...] = (
    Claim("C1", "Real-time serving costs 3–10× more than batch for the same predictions", ("batch", "request")),
    Claim("C2", "100k customers: batch ~30 min/day at $50–200/month; real time $500–3,000/month", ("batch", "request")),
    Claim(
        "C3",
        "Latency: batch minutes–hours, streaming seconds–minutes, real time ms–s",
        ("batch", "microbatch", "request"),
    ),
    Claim("C4", "Batch amortizes model loading; real time pays per request", ("batch", "request")),
    Claim(
        "C5",
        "Micro-batches handle high-throughput streams more simply than per-request calls",
        ("microbatch", "request"),
    ),
    Claim("C6", "Real time costs 5–10× more to operate", ("batch", "request")),
    Claim("C7", "Hybrid (batch pre-compute + lookup) gives batch cost with real-time response", ("hybrid", "request")),
    Claim(
        "C8", "A failed batch re-runs while stale scores serve; a down endpoint serves nothing", ("hybrid", "request")
    ),
    Claim(
        "C9",
        "Four questions (latency, update frequency, trigger, volume) pick the pattern",
        ("batch", "microbatch", "request", "hybrid"),
    ),
    Claim("C10", "Real-time features must be computed in ms; heavy aggregations belong in batch", ("request",)),
)
