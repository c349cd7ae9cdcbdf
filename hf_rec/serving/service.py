"""A REST service for a trained recommender: `hf-rec serve MODEL` (FastAPI + uvicorn).

    POST /recommend  {"users": [{"history": ["1193", "661"], "timestamps": [...], "exclude": [...],
                                 "user_features": {"age": "25", "gender": "F"}}], "k": 10}
                     -> {"recommendations": [[{"item_id": "2858", "score": 9.1, "text": "..."}, ...]]}
    GET  /health     -> {"status": "ok", "model_type": "sasrec", "num_items": 3706, "reads_timestamps": false,
                         "user_features": [], "interaction_features": []}
    GET  /docs, /openapi.json   the schema (FastAPI)

Raw item ids in and out (the model folder's `item_tokenizer.json` maps them). Every bad request gets a 4xx whose body
says what is wrong, never a 500: malformed JSON or a wrong type (422, FastAPI's validation), unknown ids with
`unknown_items="error"`, timestamps that do not fit the history (422), a body over `max_body_bytes` (413).
"""

from __future__ import annotations

import threading
from typing import Literal

import torch
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ..hub.push import load_recommender

__all__ = ["create_app"]


class UserRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    history: list[str | int] = Field(min_length=1, description="Raw item ids, oldest first.")
    timestamps: list[int] | None = Field(
        None, description="Unix seconds of each history item, optionally followed by the time of the request. "
        "Read by models with a time bias; others ignore them."  # fmt: skip
    )
    exclude: list[str | int] = Field(default_factory=list, description="Raw item ids never to return (unknown ones "
                                                                       "are ignored).")  # fmt: skip
    user_features: dict[str, str | int | float] | None = Field(
        None, description="The user's attributes, e.g. {\"age\": \"25\", \"gender\": \"F\"}, for models with user "
        "features (GET /health lists them; a numeric one takes a number); a value never seen in training counts as "
        "unknown."  # fmt: skip
    )
    interaction_features: list[dict[str, str | int | float]] | None = Field(
        None, description="One mapping per history item, e.g. [{\"rating\": \"5\"}, ...], for models with interaction "
        "features (GET /health lists them); unknown values likewise count as unknown."  # fmt: skip
    )


class RecommendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    users: list[UserRequest] = Field(min_length=1, description="One entry per user; scored as one batch.")
    k: int = Field(10, ge=1, description="Items per user.")
    exclude_seen: bool = Field(True, description="Never return an item of the user's history.")
    unknown_items: Literal["error", "ignore"] = Field(
        "error", description="History ids the model does not know: a 422 naming them, or dropped."
    )


class Recommendation(BaseModel):
    item_id: str
    score: float
    text: str | None = None


class RecommendResponse(BaseModel):
    recommendations: list[list[Recommendation]]


class Health(BaseModel):
    status: str
    model_type: str
    num_items: int
    reads_timestamps: bool
    user_features: list[str] = Field(default_factory=list, description="Names of the user features the model reads.")
    interaction_features: list[str] = Field(default_factory=list,
                                            description="Names of the interaction features the model reads.")  # fmt: skip


class RequestBatcher:
    """Scores the requests that arrive while a batch is being scored together, as the next batch (one
    `model.recommend` call for many users is several times cheaper than one call each).

    The thread of the first request of an idle batcher scores batches until none is waiting; the others wait for their
    rows. `score(users, options)` returns one row per user; requests with other options go in separate calls. A request
    whose users make the call fail (an unknown id, bad timestamps) gets its own error; the others are scored again
    without it.
    """

    def __init__(self, score, max_users: int):
        self.score = score
        self.max_users = max_users
        self._lock = threading.Lock()
        self._pending: list[dict] = []
        self._running = False

    def __call__(self, users: list[dict], options: tuple):
        job = {"users": users, "options": options, "done": threading.Event(), "rows": None, "error": None}
        with self._lock:
            self._pending.append(job)
            leader = not self._running
            self._running = True
        if leader:
            self._drain()
        job["done"].wait()
        if job["error"] is not None:
            raise job["error"]
        return job["rows"]

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._pending:
                    self._running = False
                    return
                batch, count = [], 0
                while self._pending and (not batch or count + len(self._pending[0]["users"]) <= self.max_users):
                    job = self._pending.pop(0)
                    batch.append(job)
                    count += len(job["users"])
            for options in dict.fromkeys(job["options"] for job in batch):
                self._run([job for job in batch if job["options"] == options], options)

    def _run(self, jobs: list[dict], options: tuple) -> None:
        try:
            rows = self.score([user for job in jobs for user in job["users"]], options)
        except (ValueError, TypeError) as err:  # bad input
            if len(jobs) > 1:  # find the request that failed: each on its own
                for job in jobs:
                    self._run([job], options)
                return
            jobs[0]["error"] = err
            jobs[0]["done"].set()
            return
        except Exception as err:  # a fault of the service: every waiting request gets it, none waits forever
            for job in jobs:
                job["error"] = err
                job["done"].set()
            return
        for job in jobs:
            job["rows"], rows = rows[: len(job["users"])], rows[len(job["users"]) :]
            job["done"].set()


def create_app(
    model_path: str,
    revision: str | None = None,
    trust_remote_code: bool = False,
    max_users: int = 1024,
    max_k: int = 1000,
    max_body_bytes: int = 1 << 20,
) -> FastAPI:
    """The FastAPI app serving the model at `model_path` (a run folder, a model folder or a Hub repo id).

    Requests go through the `next-item-recommendation` pipeline; those that arrive together are scored in one call
    (`RequestBatcher`). At most `max_users` users per request, `k <= max_k` and `max_body_bytes` bytes of body are
    accepted; more gets a 422 / 413 before any work.
    """
    from ..pipelines import NextItemRecommendationPipeline

    model, tokenizer = load_recommender(model_path, revision=revision, trust_remote_code=trust_remote_code)
    recommender = NextItemRecommendationPipeline(model=model.eval(), item_tokenizer=tokenizer)
    reads_timestamps = bool(getattr(model, "reads_timestamps", getattr(model.config, "use_time_bias", False)))

    def score(users: list[dict], options: tuple) -> list:
        k, exclude_seen, unknown_items = options
        with torch.inference_mode():
            return recommender(users, top_k=k, exclude_seen=exclude_seen, unknown_items=unknown_items)

    batcher = RequestBatcher(score, max_users)  # one batch at a time: torch already spreads one over the cores
    app = FastAPI(title="hf_rec recommender", description=f"Next-item recommendations from {model_path}.")

    @app.middleware("http")
    async def limit_body_size(request: Request, call_next):
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > max_body_bytes:
            return JSONResponse({"detail": f"request body of {length} bytes is over the limit of {max_body_bytes}"},
                                status_code=413)  # fmt: skip
        if length is None and request.method == "POST":  # chunked: count while reading
            body = b""
            async for chunk in request.stream():
                body += chunk
                if len(body) > max_body_bytes:
                    return JSONResponse({"detail": f"request body is over the limit of {max_body_bytes} bytes"},
                                        status_code=413)  # fmt: skip
            request._body = body  # where starlette keeps a body that has been read
        return await call_next(request)

    @app.get("/health", response_model=Health)
    def health() -> Health:
        return Health(status="ok", model_type=model.config.model_type, num_items=tokenizer.num_items,
                      reads_timestamps=reads_timestamps, user_features=tokenizer.user_feature_names,
                      interaction_features=tokenizer.interaction_feature_names)  # fmt: skip

    @app.post("/recommend", response_model=RecommendResponse)
    def recommend(request: RecommendRequest) -> RecommendResponse:
        if len(request.users) > max_users:
            raise HTTPException(422, f"{len(request.users)} users in one request; the limit is {max_users}")
        if request.k > max_k:
            raise HTTPException(422, f"k={request.k} is over the limit of {max_k}")
        users = [{"history": [str(raw) for raw in user.history], "timestamps": user.timestamps,
                  "exclude": [str(raw) for raw in user.exclude], "user_features": user.user_features,
                  "interaction_features": user.interaction_features}
                 for user in request.users]  # fmt: skip
        try:
            rows = batcher(users, (request.k, request.exclude_seen, request.unknown_items))
        except (ValueError, TypeError) as err:
            raise HTTPException(422, str(err)) from None
        return RecommendResponse(recommendations=rows)

    app.state.recommender = recommender
    return app
