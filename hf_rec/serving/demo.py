"""`hf-rec demo MODEL`: a Gradio page to try a recommender (needs the `demo` extra: gradio).

Tab "Build a history": search the catalogue by title, add items to a history (or type raw ids), see the top-k with
titles and scores. Tab "A user's history" (when a dataset is given): a real user's history next to what the model
recommends after it. MovieLens model folders carry ids only, so titles come from the dataset files when given.
"""

from __future__ import annotations

__all__ = ["build_demo"]


def build_demo(model_path: str, data: str | None = None, data_dir: str | None = None, revision: str | None = None):
    """The `gradio.Blocks` page for the model at `model_path` (run folder, model folder or Hub repo)."""
    import gradio as gr

    from ..hub import load_recommender
    from ..pipelines import NextItemRecommendationPipeline

    model, tokenizer = load_recommender(model_path, revision=revision)
    recommender = NextItemRecommendationPipeline(model=model.eval(), item_tokenizer=tokenizer)
    titles = {raw: tokenizer.text(index) for raw, index in zip(tokenizer.item_ids, tokenizer.item_indices)}
    users = {}
    if data is not None:
        from ..data import load_sequential_dataset

        splits, data_tokenizer = load_sequential_dataset(data, data_dir)
        titles.update({raw: data_tokenizer.text(index) for raw, index in zip(data_tokenizer.item_ids,
                                                                              data_tokenizer.item_indices)})  # fmt: skip
        test = splits["test"]
        users = {user: data_tokenizer.decode(list(items) + [target])
                 for user, items, target in zip(test["user_id"], test["item_ids"], test["target"])}  # fmt: skip

    def title(raw: str) -> str:
        return titles.get(raw) or ""

    def search(query: str):
        query = (query or "").strip().lower()
        found = [raw for raw in tokenizer.item_ids if query and query in (title(raw) or raw).lower()][:50]
        return gr.Dropdown(choices=[(f"{title(raw) or raw} [{raw}]", raw) for raw in found],
                           value=found[0] if found else None)  # fmt: skip

    def add(history: str, raw: str | None) -> str:
        if not raw:
            return history
        return f"{history.strip()}, {raw}" if history.strip() else raw

    def recommend(history: str, k: float):
        raw_ids = [part.strip() for part in (history or "").split(",") if part.strip()]
        if not raw_ids:
            raise gr.Error("The history is empty: search for items and add them, or type raw ids.")
        try:
            rows = recommender({"history": raw_ids}, top_k=int(k), unknown_items="ignore")
        except ValueError as err:
            raise gr.Error(str(err)) from None
        return [[rank, row["item_id"], title(row["item_id"]), round(row["score"], 4)] for rank, row in enumerate(rows, 1)]

    def user_view(user: str, k: float):
        history = users[user]
        shown = [[n, raw, title(raw)] for n, raw in enumerate(history, 1)]
        return shown, recommend(", ".join(history), k)

    headers = ["rank", "item_id", "title", "score"]
    with gr.Blocks(title=f"hf_rec: {model_path}") as demo:
        gr.Markdown(f"## Next-item recommendations\n`{model_path}` ({model.config.model_type}, "
                    f"{tokenizer.num_items:,} items)")  # fmt: skip
        with gr.Tab("Build a history"):
            with gr.Row():
                query = gr.Textbox(label="Search the catalogue by title", elem_id="search")
                matches = gr.Dropdown(label="Matching items", choices=[], elem_id="matches")
                add_button = gr.Button("Add to history", elem_id="add")
            history = gr.Textbox(label="History: raw item ids, oldest first, comma-separated", elem_id="history")
            k = gr.Slider(1, 50, value=10, step=1, label="k", elem_id="k")
            go = gr.Button("Recommend", variant="primary", elem_id="recommend")
            table = gr.Dataframe(headers=headers, label="Recommendations", elem_id="recommendations")
            query.submit(search, query, matches)
            query.change(search, query, matches)
            add_button.click(add, [history, matches], history)
            go.click(recommend, [history, k], table)
        if users:
            with gr.Tab("A user's history"):
                user = gr.Dropdown(label="User", choices=list(users)[:1000], elem_id="user")
                user_k = gr.Slider(1, 50, value=10, step=1, label="k")
                with gr.Row():
                    user_history = gr.Dataframe(headers=["#", "item_id", "title"], label="History (oldest first)")
                    user_recs = gr.Dataframe(headers=headers, label="Recommended next")
                user.change(user_view, [user, user_k], [user_history, user_recs])
    return demo
