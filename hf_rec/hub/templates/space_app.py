"""A Gradio demo of an hf_rec recommender that runs without hf_rec (a Hugging Face Space, or `python app.py`).

Written next to the model by `hf-rec push --with-app`. It loads the model's own modeling code
(`trust_remote_code=True`: torch + transformers only) and `item_tokenizer.json` from the model repo named by
$HF_REC_MODEL (default: the repo it was pushed to; a local folder works too).
"""

import json
import os
from pathlib import Path

import gradio as gr
import torch
from huggingface_hub import hf_hub_download
from transformers import AutoModel

MODEL = os.environ.get("HF_REC_MODEL", "{repo_id}")


def load_item_tokenizer(source: str) -> dict:
    path = Path(source) / "item_tokenizer.json" if Path(source).is_dir() else hf_hub_download(source, "item_tokenizer.json")
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    ids, num_base = data["item_ids"], data["num_base_items"]
    # index of position p: 1..num_base for the trained items, then after the mask token for items added later
    indices = [p + 1 if p < num_base else p + 2 for p in range(len(ids))]
    texts = data.get("item_texts") or [None] * len(ids)
    return {"index": dict(zip(ids, indices)), "id": dict(zip(indices, ids)), "text": dict(zip(indices, texts))}


model = AutoModel.from_pretrained(MODEL, trust_remote_code=True).eval()
items = load_item_tokenizer(MODEL)


def recommend_items(raw_ids: list, k: int = 10) -> list:
    """Raw item ids (oldest first) -> [[rank, item_id, title, score], ...]; unknown ids are dropped."""
    history = [items["index"][str(raw)] for raw in raw_ids if str(raw) in items["index"]]
    if not history:
        raise gr.Error("No item of the history is known to the model.")
    with torch.inference_mode():
        indices, scores = model.recommend([history], k=int(k))
    return [[rank, items["id"][i], items["text"].get(i) or "", round(s, 4)]
            for rank, (i, s) in enumerate(zip(indices[0].tolist(), scores[0].tolist()), 1) if i >= 0]


def on_click(history: str, k: float) -> list:
    return recommend_items([part.strip() for part in (history or "").split(",") if part.strip()], k)


with gr.Blocks(title=f"{MODEL}: next-item recommendations") as demo:
    gr.Markdown(f"## Next-item recommendations from `{MODEL}`\nType raw item ids, oldest first, comma-separated.")
    history_box = gr.Textbox(label="History", elem_id="history")
    k_slider = gr.Slider(1, 50, value=10, step=1, label="k")
    button = gr.Button("Recommend", variant="primary")
    table = gr.Dataframe(headers=["rank", "item_id", "title", "score"], label="Recommendations")
    button.click(on_click, [history_box, k_slider], table)

if __name__ == "__main__":
    demo.launch()
